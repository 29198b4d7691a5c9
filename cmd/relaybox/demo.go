package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"relaybox/internal/config"
	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
)

// cmdDemo runs the whole path on one machine: the real relay on
// 127.0.0.1:2525 and, standing in for the campus relay, an in-process
// upstream on loopback that speaks STARTTLS with a certificate made now and
// trusted for this run only. It prints every message the upstream receives.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:2525", "where devices (and curl) connect")
	dataDir := fs.String("data", "relaybox-demo-data", "spool directory for the demo")
	adminAddr := fs.String("admin", "127.0.0.1:8025", `admin API address ("" for none)`)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	cert, err := selfsign.New([]string{"localhost", "127.0.0.1"}, time.Now(), 24*time.Hour)
	if err != nil {
		return err
	}
	var printMu sync.Mutex
	up, err := sink.Start("127.0.0.1:0", sink.Options{
		Hostname: "campus-relay.demo",
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12},
		OnMessage: func(m sink.Message) {
			printMu.Lock()
			defer printMu.Unlock()
			fmt.Fprintf(stdout, "\n=== upstream received a message (TLS: %v) from <%s> to %v ===\n%s=== end of message ===\n",
				m.TLS, m.From, m.To, m.Body)
		},
	})
	if err != nil {
		return err
	}
	defer up.Close()

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("demo data dir: %w", err)
	}
	caFile := filepath.Join(*dataDir, "demo-upstream-ca.pem")
	if err := os.WriteFile(caFile, cert.CertPEM, 0o600); err != nil {
		return fmt.Errorf("demo CA file: %w", err)
	}
	cfg := config.Default()
	cfg.DataDir = *dataDir
	cfg.Listen.SMTP = []string{*listen}
	cfg.Admin.Listen = *adminAddr
	cfg.Policy.RecipientDomains = []string{"example.edu", "*.example.edu"}
	cfg.Delivery.MinBackoff = config.Duration(5 * time.Second)
	cfg.Upstream = []config.Upstream{{Address: up.Addr(), TLS: "starttls", CAFile: caFile, ServerName: "127.0.0.1"}}
	if err := cfg.Validate(); err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(cfg.Log))
	log := newLogger(cfg.Log, level, stderr, os.Getenv)
	b, err := build(cfg, config.Source{}, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDaemon(b, log, runOptions{level: level, fixed: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `relaybox demo: relay on %[1]s, campus relay stand-in (STARTTLS, verified) on %[2]s
Recipients in example.edu (and its subdomains) are relayed; others are refused.
Send a message from another terminal:

  printf 'Subject: hello from a scanner\r\n\r\nscan attached\r\n' > /tmp/msg.txt
  curl --url smtp://%[1]s --mail-from scanner@lab.example.edu --mail-rcpt someone@example.edu --upload-file /tmp/msg.txt

Watch it: relaybox status -admin %[3]s   relaybox queue list -admin %[3]s
Press Ctrl-C to stop.
`, *listen, up.Addr(), *adminAddr)
	<-ctx.Done()
	stop()
	return d.shutdown()
}
