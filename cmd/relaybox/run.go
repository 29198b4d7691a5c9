package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/config"
	"relaybox/internal/deliver"
	"relaybox/internal/led"
	"relaybox/internal/service"
	"relaybox/internal/smtpd"
	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/systemd"
	"relaybox/internal/throttle"
)

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "", "config file (default: built-in defaults)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	b, log, opts, err := prepareRun(*path, stderr)
	if err != nil {
		return err
	}
	if !service.Interactive() {
		// Started by systemd or the Windows service manager.
		if h, err := service.LogHandler(log.Handler(), opts.level); err == nil {
			log = slog.New(h)
		} else {
			log.Warn("service log unavailable", "err", err.Error())
		}
		var d *daemon
		return service.RunService(func() (err error) { d, err = startDaemon(b, log, opts); return err },
			func() error {
				if d == nil {
					return nil
				}
				return d.shutdown()
			})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDaemon(b, log, opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop() // a second signal now kills the process the usual way
	return d.shutdown()
}

// prepareRun is everything `run` does before it binds a port: load and
// validate the file, build the daemon's parts from it, set up logging.
// Every error here is the config's (exit 2).
func prepareRun(path string, stderr io.Writer) (*built, *slog.Logger, runOptions, error) {
	cfg, src, err := loadConfigSource(path)
	if err != nil {
		return nil, nil, runOptions{}, err
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Log))
	log := newLogger(cfg.Log, level, stderr, os.Getenv)
	b, err := build(cfg, src, log)
	if err != nil {
		return nil, nil, runOptions{}, usageError{err}
	}
	return b, log, runOptions{path: path, level: level, notify: systemd.NewNotifier(os.Getenv)}, nil
}

// newLogger writes log lines to w at the level in level (a reload changes
// it). When w is the journal stream systemd connected to stderr, every line
// carries its syslog priority, so `journalctl -p warning` works.
func newLogger(c config.Log, level slog.Leveler, w io.Writer, getenv func(string) string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	mk := func(w io.Writer) slog.Handler {
		if c.Format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if f, ok := w.(*os.File); ok && systemd.IsJournal(f, getenv) {
		return slog.New(systemd.PriorityHandler(w, mk))
	}
	return slog.New(mk(w))
}

// logLevel is log.level as slog's level; validation has refused any other
// word, so the zero value (info) never stands in for a typo.
func logLevel(c config.Log) slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	return lvl
}

// runOptions are what `run` hands the daemon besides its config.
type runOptions struct {
	path   string            // -config, re-read by a reload; "" = built-in defaults
	level  *slog.LevelVar    // log.level, changed by a reload
	notify *systemd.Notifier // nil outside systemd's Type=notify
	// fixed: the config was built in code (demo), so there is no file to
	// reload and a reload refuses instead of falling back to defaults.
	fixed bool
}

// daemon is the wired relay: spool, scheduler and listeners.
type daemon struct {
	opts      runOptions
	cur       atomic.Pointer[built] // the config running now; a reload swaps it
	log       *slog.Logger
	spool     *spool.Spool
	sched     *deliver.Scheduler
	smtp      *smtpd.Server
	listeners []*boundListener // guarded by reloadMu once started
	status    *status.Model
	admin     *http.Server // nil when admin.listen is ""
	adminL    net.Listener
	inTLS     bool // inbound TLS is on (listen.tls_cert set)

	reloadMu sync.Mutex
	stopping bool // guarded by reloadMu: shutdown has begun, no more reloads
	// ctx lives as long as the daemon; tokenCancel stops the background
	// refresh of the current OAuth token sources (a reload builds new ones).
	ctx         context.Context
	tokenCancel context.CancelFunc
	hup         chan os.Signal

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// boundListener is one open SMTP or SMTPS listener and the setting it
// came from, so a reload can tell which addresses changed.
type boundListener struct {
	key      string // "listen.smtp" or "listen.smtps"
	addr     string // as configured
	implicit bool   // SMTPS: TLS from the first byte
	l        net.Listener
}

// cfg is the config running now.
func (d *daemon) cfg() config.Config { return d.cur.Load().cfg }

// startDaemon binds the listeners, opens the spool, starts delivery and
// serves. On error it undoes what it started and returns one line naming
// what failed; it never returns a half-started daemon.
func startDaemon(b *built, log *slog.Logger, opts runOptions) (_ *daemon, err error) {
	d := &daemon{opts: opts}
	d.cur.Store(b)
	// Caught from the start: a SIGHUP that comes while the spool opens must
	// not stop the relay (Go's default); it reloads once start-up is done.
	d.hup = make(chan os.Signal, 1)
	signal.Notify(d.hup, syscall.SIGHUP)
	d.startLogging(b, log)
	defer func() {
		if err != nil {
			signal.Stop(d.hup)
			d.closeAll()
		}
	}()

	// Addresses first: a port taken is the commonest start-up failure,
	// and finding it costs nothing.
	adminPass, err := d.bindAll(b)
	if err != nil {
		return nil, err
	}
	// Sessions mid-transaction, counted by the listener and read by the
	// spool's committer so that concurrent commits share an fsync.
	inTx := new(atomic.Int32)
	if err := d.openSpool(b, inTx); err != nil {
		return nil, err
	}
	if d.sched, err = deliver.NewScheduler(d.withHooks(b.schedulerOptions())); err != nil {
		return nil, usageError{err}
	}
	if err := d.newSMTP(b, inTx); err != nil {
		return nil, err
	}
	// One command layer for the admin API and the serial console.
	cmds := admin.NewServer(admin.Options{Status: d.status, Queue: d.spool, Kick: d.sched.Retry, Password: adminPass, Logger: d.log,
		Hostname: b.cfg.Hostname, Guard: throttle.New(throttle.Options{Now: time.Now}), Reload: d.reload})
	if d.adminL != nil {
		// admin.listen may name the box ("relaybox.lab:8025"): clients
		// then send that name as Host.
		listenHost, _, _ := net.SplitHostPort(b.cfg.Admin.Listen)
		d.admin = cmds.HTTPServer(d.adminL.Addr(), listenHost)
	}
	d.launch(b, cmds, adminPass != "")
	return d, nil
}

// startLogging makes the status model, whose ring of recent events sees
// every log record from here on, and warns about the config and the open
// file limit.
func (d *daemon) startLogging(b *built, log *slog.Logger) {
	cfg := b.cfg
	warns := warnings(cfg)
	d.status = status.New(status.Options{Upstreams: b.upstreamNames(), Version: version, Hostname: cfg.Hostname, Warnings: warns,
		Queue: d.queueStats, ClockSynced: status.KernelClockSynced})
	d.log = slog.New(d.status.Handler(log.Handler()))
	for _, w := range warns {
		d.log.Warn(w)
	}
	if soft, hard, err := raiseFileLimit(); err != nil {
		d.log.Warn("could not raise the open file limit", "soft", soft, "hard", hard, "err", err.Error(),
			"hint", "set LimitNOFILE in the service unit")
	} else if soft > 0 && soft < 4096 {
		d.log.Warn("open file limit is low: a burst of clients may exhaust it", "limit", soft,
			"hint", "raise the hard limit (LimitNOFILE=65536 in the systemd unit, or ulimit -Hn)")
	}
}

// bindAll opens the SMTP and SMTPS listeners and the admin API's, and
// returns the admin password ("" when there is none).
func (d *daemon) bindAll(b *built) (adminPass string, err error) {
	cfg := b.cfg
	for i, addr := range cfg.Listen.SMTP {
		bl, err := bind(b.src, "listen.smtp", i, addr, false)
		if err != nil {
			return "", err
		}
		d.listeners = append(d.listeners, bl)
	}
	for i, addr := range cfg.Listen.SMTPS {
		bl, err := bind(b.src, "listen.smtps", i, addr, true)
		if err != nil {
			return "", err
		}
		d.listeners = append(d.listeners, bl)
	}
	if cfg.Admin.Listen == "" {
		return "", nil
	}
	d.adminL, adminPass, err = admin.Listen(cfg.Admin.Listen, cfg.Admin.PasswordFile)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return "", listenError(b.src, "admin.listen", "admin.listen", cfg.Admin.Listen, err)
		}
		return "", startError{b.src.KeyError("admin.password_file", err)}
	}
	return adminPass, nil
}

func (d *daemon) openSpool(b *built, inTx *atomic.Int32) error {
	cfg := b.cfg
	sp, err := spool.Open(cfg.SpoolPath(), spool.Options{MaxSize: int64(cfg.Queue.MaxSize), Logger: d.log,
		Concurrent: func() int { return int(inTx.Load()) }, Prepay: deliver.Prepay(b.schedulerOptions())})
	if err != nil {
		return spoolError(b.src, cfg.SpoolPath(), err)
	}
	d.spool = sp
	st := sp.Stats()
	d.log.Info("spool open", "path", cfg.SpoolPath(), "messages", st.Messages, "bytes", st.Bytes, "dead", st.Dead)
	return nil
}

// newSMTP builds the SMTP server over the spool, with the inbound
// certificate (made now when listen.tls_cert is "auto").
func (d *daemon) newSMTP(b *built, inTx *atomic.Int32) error {
	cfg := b.cfg
	inTLS := b.tls
	if cfg.Listen.TLSCert == config.TLSCertAuto {
		var err error
		if inTLS, err = smtpd.LoadTLS(inboundTLSFiles(cfg)); err != nil {
			return startError{b.src.KeyError("listen.tls_cert", err)}
		}
	}
	if inTLS != nil && cfg.Listen.TLSProfile == config.TLSProfileLegacy {
		d.log.Warn("listen.tls_profile = legacy: devices may use TLS 1.0 and 1.1, which are broken; use modern once no device needs them")
	}
	d.inTLS = inTLS != nil
	lopt := b.listenerOptions()
	lopt.TLS = inTLS
	lopt.Store = smtpd.SpoolStore(d.spool)
	lopt.InTransaction = inTx
	lopt.Logger = d.log
	lopt.AuthGuard = throttle.New(throttle.Options{Now: time.Now})
	lopt.OnAccepted = func(*spool.Message) { d.status.Accepted(); d.sched.Kick() }
	var err error
	if d.smtp, err = smtpd.New(lopt); err != nil {
		return usageError{err}
	}
	return nil
}

// launch starts everything that runs until shutdown: the console, the LED,
// token refresh, delivery, the listeners, the admin API, the reload
// signal and the watchdog; then it tells systemd the relay is ready.
func (d *daemon) launch(b *built, cmds *admin.Server, adminAuth bool) {
	cfg, log := b.cfg, d.log
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.startConsole(ctx, cmds)
	d.startLED(ctx)
	d.ctx = ctx
	d.restartTokenRefresh(b)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.sched.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("delivery stopped", "err", err.Error())
		}
	}()
	for _, bl := range d.listeners {
		d.serve(bl)
	}
	if d.admin != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.admin.Serve(d.adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin API stopped", "err", err.Error())
			}
		}()
		log.Info("admin API listening", "addr", d.adminL.Addr().String(), "auth", adminAuth)
	}
	d.watchReloadSignal()
	d.startWatchdog(ctx, d.stalled)
	d.status.Started()
	log.Info("relaybox started", "version", version, "hostname", cfg.Hostname,
		"upstreams", len(cfg.Upstream), "recipient_domains", strings.Join(cfg.Policy.RecipientDomains, ","))
	d.notify(systemd.Ready, "STATUS=relaying")
}

// withHooks adds the spool and the daemon's callbacks to the scheduler's
// options from the config.
func (d *daemon) withHooks(o deliver.SchedulerOptions) deliver.SchedulerOptions {
	o.Store = deliver.SpoolStore(d.spool)
	o.Logger = d.log
	o.OnEvent = func(ev deliver.Event) { d.status.Delivery(ev.Kind, ev.Reply) }
	o.OnUpstream = d.status.UpstreamResult
	return o
}

// bind opens entry i of the listen.smtp or listen.smtps list.
func bind(src config.Source, key string, i int, addr string, implicit bool) (*boundListener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(src, fmt.Sprintf("%s[%d]", key, i), key, addr, err)
	}
	return &boundListener{key: key, addr: addr, implicit: implicit, l: &onceListener{Listener: l}}, nil
}

// serve runs the listener on bl until it is closed.
func (d *daemon) serve(bl *boundListener) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		serve := d.smtp.Serve
		if bl.implicit {
			serve = d.smtp.ServeTLS
		}
		if err := serve(bl.l); err != nil {
			d.log.Error("listener stopped", "addr", bl.l.Addr().String(), "err", err.Error())
		}
	}()
	d.log.Info("listening", "addr", bl.l.Addr().String(), "tls", bl.implicit, "starttls", d.inTLS && !bl.implicit)
}

func (d *daemon) notify(states ...string) {
	if err := d.opts.notify.Notify(states...); err != nil {
		d.log.Warn("cannot tell systemd", "state", strings.Join(states, " "), "err", err.Error())
	}
}

// shutdown stops accepting, lets sessions finish within listen.shutdown_grace,
// stops delivery and closes the spool.
func (d *daemon) shutdown() error {
	d.shutOnce.Do(func() {
		d.notify(systemd.Stopping)
		d.status.Stopping()
		// Ignored, not reset to the default: a SIGHUP while sessions
		// drain must not kill the relay either.
		signal.Ignore(syscall.SIGHUP)
		close(d.hup)
		// A reload in progress finishes first; later ones are refused, so
		// the listener list below stays as it is.
		d.reloadMu.Lock()
		d.stopping = true
		d.reloadMu.Unlock()
		grace := d.cfg().Listen.ShutdownGrace.D()
		d.log.Info("shutting down", "grace", grace.String())
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		// Closed here too, not only by the server's Shutdown: a serve
		// goroutine not yet in Serve when a signal comes at start-up would
		// register its listener after Shutdown and accept for ever.
		for _, bl := range d.listeners {
			_ = bl.l.Close()
		}
		if err := d.smtp.Shutdown(ctx); err != nil {
			d.log.Warn("listener shutdown", "err", err.Error())
		}
		if d.admin != nil && d.admin.Shutdown(ctx) != nil {
			d.admin.Close()
		}
		d.cancel()
		d.wg.Wait()
		d.shutErr = d.closeAll()
		d.log.Info("stopped")
	})
	return d.shutErr
}

// closeAll releases what startDaemon opened; it is safe on a daemon that
// failed half-way.
func (d *daemon) closeAll() error {
	for _, bl := range d.listeners {
		_ = bl.l.Close()
	}
	if d.adminL != nil {
		_ = d.adminL.Close() // already closed by Shutdown when it was serving
	}
	var errs []error
	if d.sched != nil {
		errs = append(errs, d.sched.Close())
	}
	if d.spool != nil {
		errs = append(errs, d.spool.Close())
	}
	return errors.Join(errs...)
}

// queueStats feeds the status model from the spool's in-memory figures.
func (d *daemon) queueStats() status.QueueStats {
	if d.spool == nil {
		return status.QueueStats{}
	}
	s := d.spool.Stats()
	return status.QueueStats{Messages: s.Messages, Bytes: s.Bytes, Oldest: s.Oldest, Held: s.Held, HeldBytes: s.HeldBytes,
		Dead: s.Dead, DeadBytes: s.DeadBytes, Quota: int64(d.cfg().Queue.MaxSize)}
}

// authOptions turns auth.* into the listener's form (smtpd does not import
// config).
func authOptions(a config.Auth) smtpd.AuthOptions {
	users := make(map[string][]byte, len(a.Users))
	for _, u := range a.Users {
		users[u.Name] = []byte(u.PasswordHash)
	}
	return smtpd.AuthOptions{Mode: a.Mode, Users: users}
}

// startLED drives the status LED from the status model, when led.pin is set.
// A missing pin is reported in one line and the relay carries on without
// it: mail matters more than a light (check-config -probe finds it first).
func (d *daemon) startLED(ctx context.Context) {
	cfg := d.cfg()
	if cfg.LED.Pin == "" {
		return
	}
	pin, err := led.OpenPin(cfg.LED.Pin)
	if err != nil {
		d.log.Warn("status LED disabled: cannot open led.pin "+cfg.LED.Pin+"; fix led.pin or leave it empty", "pin", cfg.LED.Pin, "err", err.Error())
		return
	}
	l := led.New(pin, cfg.LED.ActiveLow, led.RealClock{})
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		l.Follow(ctx, 250*time.Millisecond, func() (status.State, bool) {
			s := d.status.Snapshot()
			return s.State, s.Queue.Messages > 0
		})
	}()
	go func() {
		defer d.wg.Done()
		if err := l.Run(ctx); err != nil {
			d.log.Warn("status LED stopped", "err", err.Error())
		}
	}()
}

func smtpdDevices(ds []config.Device) []smtpd.Device {
	out := make([]smtpd.Device, 0, len(ds))
	for _, d := range ds {
		out = append(out, smtpd.Device{Name: d.Name, Networks: d.Networks, AuthUser: d.AuthUser, Sender: d.Sender})
	}
	return out
}
