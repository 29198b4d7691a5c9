package main

// Config reload (SIGHUP, `relaybox reload`, POST /api/reload) and the
// systemd watchdog: the parts of the daemon's life after start-up.

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/config"
	"relaybox/internal/deliver"
)

// reload re-reads the config file and applies it: policy, devices, auth
// users, flood and duplicate limits, upstreams, delivery, queue limits and
// log level at once; listeners whose address changed are rebound. A file
// that does not load, or an address that does not bind, leaves the running
// config in place. Keys that apply only at the next start are named in the
// result and the log.
func (d *daemon) reload() (admin.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	started := time.Now()
	res := admin.ReloadResult{File: d.opts.path}
	if d.stopping {
		return res, errors.New("relaybox is shutting down; the config is read at the next start")
	}

	b, err := d.loadForReload()
	var added []*boundListener
	if err == nil {
		added, err = d.bindNew(b)
	}
	if err == nil {
		err = d.apply(b)
		if err != nil {
			for _, bl := range added {
				_ = bl.l.Close()
			}
		}
	}
	if err != nil {
		d.log.Error("config reload failed; still running on the previous config", "file", d.fileName(), "err", err.Error())
		d.status.ConfigError(err)
		return res, err
	}
	old := d.cur.Swap(b)
	d.restartTokenRefresh(b)
	removed := d.swapListeners(b, added)
	res.RestartNeeded = restartNeeded(old.cfg, b.cfg)
	for _, bl := range added {
		d.serve(bl)
	}
	for _, bl := range removed {
		d.log.Info("stopped listening (removed from the config)", "addr", bl.addr, "key", bl.key)
		_ = bl.l.Close()
	}
	d.status.Reconfigured(b.upstreamNames(), warnings(b.cfg))
	for _, w := range warnings(b.cfg) {
		d.log.Warn(w)
	}
	attrs := []any{"file", d.fileName(), "took", time.Since(started).Round(time.Millisecond).String(),
		"upstreams", len(b.cfg.Upstream), "recipient_domains", strings.Join(b.cfg.Policy.RecipientDomains, ",")}
	if len(res.RestartNeeded) > 0 {
		d.log.Warn("config reloaded; some changes apply only after a restart (systemctl restart relaybox)",
			append(attrs, "restart_needed", strings.Join(res.RestartNeeded, ","))...)
	} else {
		d.log.Info("config reloaded", attrs...)
	}
	return res, nil
}

func (d *daemon) fileName() string {
	if d.opts.path == "" {
		return "built-in defaults"
	}
	return d.opts.path
}

// loadForReload reads and builds the config the way `run` does. An OAuth
// upstream whose settings did not change keeps its token source: its
// cached access token stays valid, and two sources never rotate one
// refresh token file at once.
func (d *daemon) loadForReload() (*built, error) {
	if d.opts.fixed {
		return nil, errors.New("this relaybox runs a config built in (relaybox demo): there is no file to reload; restart it instead")
	}
	cfg, src, err := loadConfigSource(d.opts.path)
	if err != nil {
		return nil, err
	}
	b, err := build(cfg, src, d.log)
	if err != nil {
		return nil, err
	}
	if reuseTokenSources(d.cur.Load(), b) {
		if b.client, err = deliver.NewClient(upstreamOptions(cfg, cfg.Upstream, b.tokens, d.log)); err != nil {
			return nil, src.KeyError("upstream", err)
		}
	}
	return b, nil
}

// reuseTokenSources gives b's OAuth upstreams old's token sources where the
// upstream is configured exactly as before; it reports whether it did.
func reuseTokenSources(old, b *built) bool {
	reused := false
	for i, u := range b.cfg.Upstream {
		if b.oauth[i] == nil {
			continue
		}
		for j, ou := range old.cfg.Upstream {
			if old.oauth[j] != nil && reflect.DeepEqual(u, ou) {
				b.tokens[i], b.oauth[i] = old.tokens[j], old.oauth[j]
				reused = true
				break
			}
		}
	}
	return reused
}

// bindNew opens the listen addresses of b that are not open yet. On error
// it closes what it opened.
func (d *daemon) bindNew(b *built) ([]*boundListener, error) {
	var added []*boundListener
	fail := func(err error) ([]*boundListener, error) {
		for _, bl := range added {
			_ = bl.l.Close()
		}
		return nil, err
	}
	for _, want := range wantedListeners(b.cfg) {
		if d.findListener(want.key, want.addr) != nil {
			continue
		}
		if want.implicit && !d.inTLS {
			return fail(b.src.KeyError(want.key, fmt.Errorf("%s needs inbound TLS, which was off at start: restart relaybox to add an SMTPS listener", want.addr)))
		}
		bl, err := bind(b.src, want.key, want.i, want.addr, want.implicit)
		if err != nil {
			return fail(err)
		}
		added = append(added, bl)
	}
	return added, nil
}

type wantedListener struct {
	key, addr string
	i         int
	implicit  bool
}

func wantedListeners(cfg config.Config) []wantedListener {
	var out []wantedListener
	for i, a := range cfg.Listen.SMTP {
		out = append(out, wantedListener{"listen.smtp", a, i, false})
	}
	for i, a := range cfg.Listen.SMTPS {
		out = append(out, wantedListener{"listen.smtps", a, i, true})
	}
	return out
}

func (d *daemon) findListener(key, addr string) *boundListener {
	for _, bl := range d.listeners {
		if bl.key == key && bl.addr == addr {
			return bl
		}
	}
	return nil
}

// swapListeners makes d.listeners what b asks for, with added in it, and
// returns the listeners b no longer lists.
func (d *daemon) swapListeners(b *built, added []*boundListener) (removed []*boundListener) {
	keep := map[*boundListener]bool{}
	for _, want := range wantedListeners(b.cfg) {
		if bl := d.findListener(want.key, want.addr); bl != nil {
			keep[bl] = true
		}
	}
	var next []*boundListener
	for _, bl := range d.listeners {
		if keep[bl] {
			next = append(next, bl)
		} else {
			removed = append(removed, bl)
		}
	}
	d.listeners = append(next, added...)
	return removed
}

// apply hands the new policy to the listener, the upstreams and delivery
// settings to the scheduler, the quota to the spool and the level to the
// logger. Each part was checked by build; if the scheduler still refuses,
// the listener gets its old policy back so the two never disagree.
func (d *daemon) apply(b *built) error {
	old := d.cur.Load()
	if err := d.smtp.Reconfigure(b.listenerOptions()); err != nil {
		return err
	}
	if err := d.sched.Reconfigure(d.withHooks(b.schedulerOptions())); err != nil {
		_ = d.smtp.Reconfigure(old.listenerOptions())
		return err
	}
	d.spool.SetMaxSize(int64(b.cfg.Queue.MaxSize))
	d.spool.SetPrepay(deliver.Prepay(b.schedulerOptions()))
	d.opts.level.Set(logLevel(b.cfg.Log))
	return nil
}

// restartNeeded lists the keys that differ between old and next and that
// only a restart applies: what the listener, admin API, console and LED
// were built with. Listen addresses are rebound and are not in the list.
func restartNeeded(old, next config.Config) []string {
	var keys []string
	diff := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	diff("hostname", old.Hostname, next.Hostname)
	diff("data_dir", old.DataDir, next.DataDir)
	diff("listen.max_message_size", old.Listen.MaxMessageSize, next.Listen.MaxMessageSize)
	diff("listen.max_recipients", old.Listen.MaxRecipients, next.Listen.MaxRecipients)
	diff("listen.max_connections", old.Listen.MaxConnections, next.Listen.MaxConnections)
	diff("listen.idle_timeout", old.Listen.IdleTimeout, next.Listen.IdleTimeout)
	diff("listen.command_timeout", old.Listen.CommandTimeout, next.Listen.CommandTimeout)
	diff("listen.session_timeout", old.Listen.SessionTimeout, next.Listen.SessionTimeout)
	diff("listen.min_data_rate", old.Listen.MinDataRate, next.Listen.MinDataRate)
	diff("listen.stress_timeout", old.Listen.StressTimeout, next.Listen.StressTimeout)
	diff("listen.tls_cert", old.Listen.TLSCert, next.Listen.TLSCert)
	diff("listen.tls_key", old.Listen.TLSKey, next.Listen.TLSKey)
	diff("listen.tls_profile", old.Listen.TLSProfile, next.Listen.TLSProfile)
	diff("admin.listen", old.Admin.Listen, next.Admin.Listen)
	diff("admin.password_file", old.Admin.PasswordFile, next.Admin.PasswordFile)
	diff("led", old.LED, next.LED)
	diff("console", old.Console, next.Console)
	diff("log.format", old.Log.Format, next.Log.Format)
	return keys
}

// watchReloadSignal reloads on SIGHUP (caught since startDaemon began), as
// postfix and most daemons do; Go's default for SIGHUP would stop the relay.
func (d *daemon) watchReloadSignal() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for range d.hup {
			d.log.Info("SIGHUP: reloading the config", "file", d.fileName())
			_, _ = d.reload() // reload logs either way
		}
	}()
}

// cmdReload is `relaybox reload`: the running daemon re-reads its config.
func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reload", stderr)
	af := newAdminFlags(fs)
	words, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("reload takes no words, got %q", strings.Join(words, " "))}
	}
	c, err := af.client()
	var ce *config.Error
	if errors.As(err, &ce) {
		// -config names the file the daemon would read; it is broken, so
		// asking the daemon could only fail the same way.
		return usageError{fmt.Errorf("%w\nthe daemon was not asked to reload and keeps its running config; fix the file and run reload again", err)}
	}
	if err != nil {
		return err
	}
	res, err := c.Reload()
	if err != nil {
		return err
	}
	if *af.json {
		return printJSON(stdout, res)
	}
	file := res.File
	if file == "" {
		file = "built-in defaults"
	}
	fmt.Fprintf(stdout, "config reloaded from %s\n", file)
	if len(res.RestartNeeded) > 0 {
		slices.Sort(res.RestartNeeded)
		fmt.Fprintf(stdout, "restart needed to apply: %s\n", strings.Join(res.RestartNeeded, ", "))
	}
	return nil
}
