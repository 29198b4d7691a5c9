package main

import (
	"context"
	"crypto/tls"
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
	"relaybox/internal/policy"
	"relaybox/internal/service"
	"relaybox/internal/smtpd"
	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/throttle"
)

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "", "config file (default: built-in defaults)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if !service.Interactive() {
		// Started by systemd or the Windows service manager.
		if h, err := service.LogHandler(log.Handler(), logLevel(cfg.Log)); err == nil {
			log = slog.New(h)
		} else {
			log.Warn("service log unavailable", "err", err.Error())
		}
		var d *daemon
		return service.RunService(func() (err error) { d, err = startDaemon(cfg, log); return err },
			func() error {
				if d == nil {
					return nil
				}
				return d.shutdown()
			})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDaemon(cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop() // a second signal now kills the process the usual way
	return d.shutdown()
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(c)}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logLevel is log.level as slog's level; validation has refused any other
// word, so the zero value (info) never stands in for a typo.
func logLevel(c config.Log) slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	return lvl
}

// daemon is the wired relay: spool, scheduler and listener.
type daemon struct {
	cfg       config.Config
	log       *slog.Logger
	spool     *spool.Spool
	sched     *deliver.Scheduler
	smtp      *smtpd.Server
	listeners []net.Listener
	status    *status.Model
	admin     *http.Server // nil when admin.listen is ""
	adminL    net.Listener

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// startDaemon opens the spool, starts delivery and listens. On error it
// undoes what it started.
func startDaemon(cfg config.Config, log *slog.Logger) (d *daemon, err error) {
	d = &daemon{cfg: cfg, log: log}
	var upNames []string
	for _, u := range cfg.Upstream {
		upNames = append(upNames, u.Address)
	}
	warns := warnings(cfg)
	d.status = status.New(status.Options{Upstreams: upNames, Version: version, Hostname: cfg.Hostname, Warnings: warns, Queue: d.queueStats})
	log = slog.New(d.status.Handler(log.Handler())) // every log record also lands in the ring of recent events
	d.log = log
	rules, err := policy.NewRules(cfg.Policy.RecipientDomains)
	if err != nil {
		return nil, usageError{fmt.Errorf("policy.recipient_domains: %w", err)}
	}
	nets, err := policy.NetworkRules(cfg.Listen.AllowedNetworks)
	if err != nil {
		return nil, usageError{fmt.Errorf("listen.allowed_networks: %w", err)}
	}
	var authReq *policy.Networks
	if len(cfg.Auth.Required) > 0 {
		if authReq, err = policy.NetworkRules(cfg.Auth.Required); err != nil {
			return nil, usageError{fmt.Errorf("auth.required: %w", err)}
		}
	}
	for _, w := range warns {
		log.Warn(w)
	}
	if soft, hard, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open file limit", "soft", soft, "hard", hard, "err", err.Error(),
			"hint", "set LimitNOFILE in the service unit")
	} else if soft > 0 && soft < 4096 {
		log.Warn("open file limit is low: a burst of clients may exhaust it", "limit", soft,
			"hint", "raise the hard limit (LimitNOFILE=65536 in the systemd unit, or ulimit -Hn)")
	}
	tokens, tokenSrcs, err := tokenSources(cfg, log)
	if err != nil {
		return nil, usageError{err}
	}
	client, err := deliver.NewClient(deliver.ClientOptions{
		Hostname:  cfg.Hostname,
		Upstreams: cfg.Upstream,
		Delivery:  cfg.Delivery,
		Logger:    log,
		Tokens:    tokens,
	})
	if err != nil {
		return nil, usageError{err}
	}

	// Sessions mid-transaction, counted by the listener and read by the
	// spool's committer so that concurrent commits share an fsync.
	inTx := new(atomic.Int32)
	sp, err := spool.Open(cfg.SpoolPath(), spool.Options{MaxSize: int64(cfg.Queue.MaxSize), Logger: log,
		Concurrent: func() int { return int(inTx.Load()) }})
	if err != nil {
		return nil, err
	}
	d.spool = sp
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()
	st := sp.Stats()
	log.Info("spool open", "path", cfg.SpoolPath(), "messages", st.Messages, "bytes", st.Bytes, "dead", st.Dead)

	d.sched, err = deliver.NewScheduler(deliver.SchedulerOptions{
		Store:        deliver.SpoolStore(sp),
		Dialer:       client,
		Connections:  cfg.Delivery.Connections,
		MinBackoff:   cfg.Delivery.MinBackoff.D(),
		MaxBackoff:   cfg.Delivery.MaxBackoff.D(),
		IdleClose:    cfg.Delivery.IdleClose.D(),
		UpstreamHold: cfg.Delivery.UpstreamHold.D(),
		MaxAge:       cfg.Queue.MaxAge.D(),
		Notify:       cfg.Queue.Notify,
		Hostname:     cfg.Hostname,
		Logger:       log,
		OnEvent:      func(ev deliver.Event) { d.status.Delivery(ev.Kind) },
		OnUpstream:   d.status.UpstreamResult,
	})
	if err != nil {
		return nil, err
	}

	var inTLS *tls.Config
	if cfg.Listen.TLSCert != "" {
		inTLS, err = smtpd.LoadTLS(smtpd.TLSFiles{Cert: cfg.Listen.TLSCert, Key: cfg.Listen.TLSKey, Dir: cfg.TLSDir(),
			Hostname: cfg.Hostname, Profile: cfg.Listen.TLSProfile})
		if err != nil {
			return nil, usageError{err}
		}
		if cfg.Listen.TLSProfile == config.TLSProfileLegacy {
			log.Warn("listen.tls_profile = legacy: devices may use TLS 1.0 and 1.1, which are broken; use modern once no device needs them")
		}
	}
	d.smtp, err = smtpd.New(smtpd.Options{
		TLS:            inTLS,
		Hostname:       cfg.Hostname,
		Rules:          rules,
		Networks:       nets,
		Store:          sp,
		Sender:         cfg.Policy.Sender,
		MaxMessageSize: int64(cfg.Listen.MaxMessageSize),
		MaxRecipients:  cfg.Listen.MaxRecipients,
		MaxConnections: cfg.Listen.MaxConnections,
		IdleTimeout:    cfg.Listen.IdleTimeout.D(),
		CommandTimeout: cfg.Listen.CommandTimeout.D(),
		SessionTimeout: cfg.Listen.SessionTimeout.D(),
		MinDataRate:    int64(cfg.Listen.MinDataRate),
		StressTimeout:  cfg.Listen.StressTimeout.D(),
		Auth:           authOptions(cfg.Auth),
		AuthRequired:   authReq,
		AuthGuard:      throttle.New(throttle.Options{Now: time.Now}),
		InTransaction:  inTx,
		Logger:         log,

		RewriteFromHeader:    cfg.Policy.RewriteFromHeader,
		Devices:              smtpdDevices(cfg.Devices),
		PerClientConnections: cfg.Listen.PerClientConnections,
		PerClientRate:        cfg.Listen.PerClientRate,
		PerClientBurst:       cfg.Listen.PerClientBurst,
		DuplicateMax:         cfg.Duplicates.MaxRepeats,
		DuplicateWindow:      cfg.Duplicates.Window.D(),
		OnAccepted:           func(*spool.Message) { d.status.Accepted(); d.sched.Kick() },
	})
	if err != nil {
		return nil, err
	}
	for _, addr := range cfg.Listen.SMTP {
		l, lerr := net.Listen("tcp", addr)
		if lerr != nil {
			err = fmt.Errorf("listen.smtp %s: %w%s", addr, lerr, listenHint(lerr))
			return nil, err
		}
		d.listeners = append(d.listeners, l)
	}
	for _, addr := range cfg.Listen.SMTPS {
		l, lerr := net.Listen("tcp", addr)
		if lerr != nil {
			err = fmt.Errorf("listen.smtps %s: %w%s", addr, lerr, listenHint(lerr))
			return nil, err
		}
		d.listeners = append(d.listeners, smtpsListener{l})
	}
	adminPass := ""
	if cfg.Admin.Listen != "" {
		d.adminL, adminPass, err = admin.Listen(cfg.Admin.Listen, cfg.Admin.PasswordFile)
		if err != nil {
			err = fmt.Errorf("%w%s", err, listenHint(err))
			return nil, err
		}
	}
	// One command layer for the admin API and the serial console.
	cmds := admin.NewServer(admin.Options{Status: d.status, Queue: sp, Kick: d.sched.Kick, Password: adminPass, Logger: log,
		Hostname: cfg.Hostname, Guard: throttle.New(throttle.Options{Now: time.Now})})
	if d.adminL != nil {
		// admin.listen may name the box ("relaybox.lab:8025"): clients
		// then send that name as Host.
		listenHost, _, _ := net.SplitHostPort(cfg.Admin.Listen)
		d.admin = cmds.HTTPServer(d.adminL.Addr(), listenHost)
	}

	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.startConsole(ctx, cmds, client)
	d.startLED(ctx)
	d.startTokenRefresh(ctx, tokenSrcs)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.sched.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("delivery stopped", "err", err.Error())
		}
	}()
	for _, l := range d.listeners {
		d.wg.Add(1)
		go func(l net.Listener) {
			defer d.wg.Done()
			serve := d.smtp.Serve
			if sl, ok := l.(smtpsListener); ok {
				serve, l = d.smtp.ServeTLS, sl.Listener
			}
			if err := serve(l); err != nil {
				log.Error("listener stopped", "addr", l.Addr().String(), "err", err.Error())
			}
		}(l)
		_, implicit := l.(smtpsListener)
		log.Info("listening", "addr", l.Addr().String(), "tls", implicit, "starttls", inTLS != nil && !implicit)
	}
	if d.admin != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.admin.Serve(d.adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin API stopped", "err", err.Error())
			}
		}()
		log.Info("admin API listening", "addr", d.adminL.Addr().String(), "auth", adminPass != "")
	}
	d.status.Started()
	log.Info("relaybox started", "version", version, "hostname", cfg.Hostname,
		"upstreams", len(cfg.Upstream), "recipient_domains", strings.Join(cfg.Policy.RecipientDomains, ","))
	return d, nil
}

// smtpsListener marks a listen.smtps listener in daemon.listeners: it is
// served with implicit TLS.
type smtpsListener struct{ net.Listener }

func listenHint(err error) string {
	switch {
	case errors.Is(err, syscall.EACCES):
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE; the service unit grants it)"
	case errors.Is(err, syscall.EADDRINUSE):
		return " (another program, perhaps another relaybox or a system MTA, already listens there)"
	}
	return ""
}

// shutdown stops accepting, lets sessions finish within listen.shutdown_grace,
// stops delivery and closes the spool.
func (d *daemon) shutdown() error {
	d.shutOnce.Do(func() {
		d.status.Stopping()
		d.log.Info("shutting down", "grace", d.cfg.Listen.ShutdownGrace.D().String())
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Listen.ShutdownGrace.D())
		defer cancel()
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

func (d *daemon) closeAll() error {
	for _, l := range d.listeners {
		_ = l.Close()
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
		Dead: s.Dead, DeadBytes: s.DeadBytes, Quota: int64(d.cfg.Queue.MaxSize)}
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
// A missing pin is reported once and the relay carries on without it.
func (d *daemon) startLED(ctx context.Context) {
	if d.cfg.LED.Pin == "" {
		return
	}
	pin, err := led.OpenPin(d.cfg.LED.Pin)
	if err != nil {
		d.log.Warn("status LED disabled", "err", err.Error())
		return
	}
	l := led.New(pin, d.cfg.LED.ActiveLow, led.RealClock{})
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		l.Follow(ctx, 250*time.Millisecond, func() (string, bool) {
			s := d.status.Snapshot()
			return string(s.State), s.Queue.Messages > 0
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
