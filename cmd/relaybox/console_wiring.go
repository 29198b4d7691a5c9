package main

// Wiring for the serial console: it gets the daemon's own command layer,
// status model, upstream client and listener, so `upstream` and
// `send-test` on the console do exactly what the CLI commands of the same
// name do.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/config"
	"relaybox/internal/console"
	"relaybox/internal/deliver"
	"relaybox/internal/submit"
)

// startConsole runs the serial console on console.device until ctx ends.
// It does nothing when no device is configured. A device that is missing
// or fails is retried by console.Run, so the relay starts either way.
func (d *daemon) startConsole(ctx context.Context, cmds *admin.Server) {
	cfg := d.cfg()
	if cfg.Console.Device == "" {
		return
	}
	c := console.New(console.Options{
		Commands: cmds,
		Status:   d.status,
		Upstream: d.upstreamCheck,
		SendTest: d.sendTest,
		Version:  version,
		Hostname: cfg.Hostname,
	})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := c.Run(ctx, cfg.Console.Device, cfg.Console.Baud, d.log); err != nil {
			d.log.Error("console stopped", "err", err.Error())
		}
	}()
}

// upstreamCheck is the console's `upstream`: the check of the upstreams
// configured now (a reload may have changed them).
func (d *daemon) upstreamCheck(ctx context.Context, report func(name, result string)) error {
	b := d.cur.Load()
	check := upstreamCheck(b.cfg, b.client)
	if check == nil {
		report("upstream", "none configured: mail is held until one is added")
		return nil
	}
	return check(ctx, report)
}

// upstreamCheck is `relaybox upstream-check` for the console: every
// upstream in order, each step reported as it finishes. nil when no
// upstream is configured.
func upstreamCheck(cfg config.Config, client *deliver.Client) func(context.Context, func(name, result string)) error {
	if len(cfg.Upstream) == 0 || client == nil {
		return nil
	}
	return func(ctx context.Context, report func(name, result string)) error {
		return client.CheckAll(ctx, deliver.CheckReport{
			Begin: func(i int) { report("upstream", fmt.Sprintf("%s (tls=%s)", client.Name(i), cfg.Upstream[i].TLS)) },
			Step:  func(_ int, s deliver.Step) { report(s.Name, s.Result()) },
		})
	}
}

// sendTest sends one test message through the relay's first listener,
// as `relaybox send-test` does from outside.
func (d *daemon) sendTest(ctx context.Context, to string) (string, error) {
	d.reloadMu.Lock()
	if len(d.listeners) == 0 {
		d.reloadMu.Unlock()
		return "", errors.New("no SMTP listener is open")
	}
	addr := dialable(d.listeners[0].l.Addr().String())
	d.reloadMu.Unlock()
	host := d.cfg().Hostname
	return sendTestMessage(ctx, addr, host, "relaybox-test@"+host, to, time.Now())
}

// sendTestMessage sends the test message to the relay at addr and returns
// its final reply. ctx bounds the whole dialog.
func sendTestMessage(ctx context.Context, addr, hello, from, to string, now time.Time) (string, error) {
	body := fmt.Sprintf("From: relaybox test <%s>\r\nTo: <%s>\r\nSubject: relaybox test message %s\r\n"+
		"Date: %s\r\n\r\nThis is a test message sent by relaybox's send-test at %s.\r\n"+
		"If you can read it, the relay accepted and forwarded it.\r\n",
		from, to, now.Format(time.RFC3339), now.Format(time.RFC1123Z), now.Format(time.RFC3339))
	reply, err := submit.Send(ctx, submit.Options{Addr: addr, Hello: hello, Timeout: time.Minute},
		submit.Envelope{From: from, To: []string{to}}, strings.NewReader(body))
	var se *submit.Error
	switch {
	case err == nil:
		return reply, nil
	case errors.As(err, &se) && se.Stage == submit.StageConnect:
		return "", fmt.Errorf("connect %s: %w (is relaybox listening? check listen.smtp)", addr, se.Err)
	case errors.As(err, &se) && se.Stage == submit.StageRcpt:
		return "", fmt.Errorf("RCPT TO:<%s>: %w (is its domain in policy.recipient_domains?)", to, err)
	}
	return "", err
}
