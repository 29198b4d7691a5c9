package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/deliver"
)

// cmdSendTest sends one plain test message to a relay (by default the one
// this config listens on), as a device would.
func cmdSendTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("send-test", stderr)
	path := fs.String("config", "", "config file: the server defaults to its first listen.smtp")
	to := fs.String("to", "", "recipient address (required)")
	from := fs.String("from", "", "sender address (default relaybox-test@<hostname>)")
	server := fs.String("server", "", "relay to send to, HOST:PORT (default: listen.smtp, else 127.0.0.1:2525)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageError{errors.New("-to ADDR is required, e.g. relaybox send-test -to you@example.edu")}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	addr := *server
	if addr == "" {
		addr = dialable(cfg.Listen.SMTP[0])
	}
	sender := *from
	if sender == "" {
		sender = "relaybox-test@" + cfg.Hostname
	}
	now := time.Now()
	body := fmt.Sprintf("From: relaybox test <%s>\r\nTo: <%s>\r\nSubject: relaybox test message %s\r\n"+
		"Date: %s\r\n\r\nThis is a test message sent by `relaybox send-test` at %s.\r\n"+
		"If you can read it, the relay accepted and forwarded it.\r\n",
		sender, *to, now.Format(time.RFC3339), now.Format(time.RFC1123Z), now.Format(time.RFC3339))

	fmt.Fprintf(stdout, "connecting to %s\n", addr)
	c, err := smtp.Dial(addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w (is relaybox running? check listen.smtp)", addr, err)
	}
	defer c.Close()
	if err := c.Hello(cfg.Hostname); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail(sender, nil); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", sender, err)
	}
	if err := c.Rcpt(*to, nil); err != nil {
		return fmt.Errorf("RCPT TO:<%s>: %w (is its domain in policy.recipient_domains?)", *to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	_ = c.Quit()
	fmt.Fprintf(stdout, "accepted: 250 %s\n", resp.StatusText)
	return nil
}

// dialable turns a listen address into one a client can dial (0.0.0.0 and
// :: mean "this machine").
func dialable(listen string) string {
	switch {
	case strings.HasPrefix(listen, "0.0.0.0:"):
		return "127.0.0.1" + strings.TrimPrefix(listen, "0.0.0.0")
	case strings.HasPrefix(listen, "[::]:"):
		return "[::1]" + strings.TrimPrefix(listen, "[::]")
	case strings.HasPrefix(listen, ":"):
		return "127.0.0.1" + listen
	}
	return listen
}

// cmdUpstreamCheck connects to every upstream and reports each step.
func cmdUpstreamCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("upstream-check", stderr)
	path := fs.String("config", "", "config file")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if len(cfg.Upstream) == 0 {
		return usageError{errors.New("no [[upstream]] in the config: add one (address, tls) and run this again")}
	}
	client, err := deliver.NewClient(deliver.ClientOptions{
		Hostname: cfg.Hostname, Upstreams: cfg.Upstream, Delivery: cfg.Delivery,
		Logger: newLogger(cfg.Log, stderr),
	})
	if err != nil {
		return usageError{err}
	}
	failed := 0
	for i := range cfg.Upstream {
		fmt.Fprintf(stdout, "upstream[%d] %s (tls=%s)\n", i, client.Name(i), cfg.Upstream[i].TLS)
		ctx, cancel := context.WithTimeout(context.Background(), 2*cfg.Delivery.ConnectTimeout.D()+cfg.Delivery.CommandTimeout.D())
		err := client.Check(ctx, i, func(s deliver.Step) {
			res := "ok"
			if s.Err != nil {
				res = "FAILED: " + s.Err.Error()
			}
			detail := ""
			if s.Detail != "" {
				detail = " (" + s.Detail + ")"
			}
			fmt.Fprintf(stdout, "  %-10s %s%s  [%s]\n", s.Name, res, detail, s.Took.Round(time.Millisecond))
		})
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "  result: FAILED\n")
		} else {
			fmt.Fprintf(stdout, "  result: ok, nothing was sent\n")
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d upstreams failed the check", failed, len(cfg.Upstream))
	}
	return nil
}
