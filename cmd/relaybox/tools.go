package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
	fmt.Fprintf(stdout, "connecting to %s\n", addr)
	reply, err := sendTestMessage(context.Background(), addr, cfg.Hostname, sender, *to, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accepted: %s\n", reply)
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
	cfg, src, err := loadConfigSource(*path)
	if err != nil {
		return err
	}
	if len(cfg.Upstream) == 0 {
		return usageError{errors.New("no [[upstream]] in the config: add one (address, tls) and run this again")}
	}
	b, err := build(cfg, src, newLogger(cfg.Log, logLevel(cfg.Log), stderr, os.Getenv))
	if err != nil {
		return usageError{err}
	}
	return b.client.CheckAll(context.Background(), deliver.CheckReport{
		Begin: func(i int) {
			auth := ""
			if u := cfg.Upstream[i]; u.Auth != "" {
				auth = ", auth=" + u.Auth
				if u.IsOAuth() {
					auth += ", oauth flow=" + u.OAuth.Flow
				}
			}
			fmt.Fprintf(stdout, "upstream[%d] %s (tls=%s%s)\n", i, b.client.Name(i), cfg.Upstream[i].TLS, auth)
		},
		Step: func(_ int, s deliver.Step) { fmt.Fprintf(stdout, "  %-10s %s\n", s.Name, s.Result()) },
		End: func(_ int, err error) {
			if err != nil {
				fmt.Fprintf(stdout, "  result: FAILED\n")
			} else {
				fmt.Fprintf(stdout, "  result: ok, nothing was sent\n")
			}
		},
	})
}
