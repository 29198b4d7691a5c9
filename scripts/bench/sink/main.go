// Command benchsink is the benchmark's stand-in for the campus relay: it
// accepts any mail over STARTTLS (-listen) and implicit TLS (-tls-listen)
// with a self-signed certificate it writes to -cert-out, keeps nothing, and
// counts what arrived. scripts/bench/run.sh reads the counters over HTTP:
//
//	GET /stats                 {"messages", "bytes", "tls_messages", "first_ns", "last_ns"}
//	GET /reset                 zero the counters
//	GET /wait?count=N&timeout=S  block until N messages arrived (408 on timeout)
//
// By default it is internal/sink (the demo's and the tests' upstream, on
// go-smtp) with counters. With -fast it serves SMTP with a minimal server
// of its own (fast.go) that counts the same messages and bytes for a small
// part of the CPU, so that on a small box the sink takes less of the cores
// the relay under test needs; the benchmark scripts use -fast by default.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
)

// counters are what a benchmark case reads after its load.
type counters struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every message
	Messages    int64         `json:"messages"`
	Bytes       int64         `json:"bytes"`
	TLSMessages int64         `json:"tls_messages"`
	FirstNS     int64         `json:"first_ns"` // Unix nanoseconds of the first message since reset
	LastNS      int64         `json:"last_ns"`  // and of the latest
}

func newCounters() *counters { return &counters{changed: make(chan struct{})} }

// add counts one message of size bytes (as go-smtp's DATA reader hands
// it on: dot-unstuffed, without the end marker).
func (c *counters) add(size int64, tls bool, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Messages++
	c.Bytes += size
	if tls {
		c.TLSMessages++
	}
	ns := at.UnixNano()
	if c.FirstNS == 0 {
		c.FirstNS = ns
	}
	c.LastNS = ns
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *counters) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Messages, c.Bytes, c.TLSMessages, c.FirstNS, c.LastNS = 0, 0, 0, 0, 0
}

// snapshot returns the counters as JSON and a channel closed at the next message.
func (c *counters) snapshot() ([]byte, int64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(c)
	return b, c.Messages, c.changed
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2600", "STARTTLS listener")
	tlsListen := flag.String("tls-listen", "127.0.0.1:2465", "implicit-TLS listener (\"\" for none)")
	httpAddr := flag.String("http", "127.0.0.1:2601", "counters over HTTP")
	certOut := flag.String("cert-out", "sink-cert.pem", "where to write the certificate (the relay's ca_file)")
	fast := flag.Bool("fast", false, "serve SMTP with the minimal line-based server instead of go-smtp (far less CPU per MiB)")
	flag.Parse()
	for _, a := range []string{*listen, *tlsListen, *httpAddr} {
		if a == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(host).IsLoopback() {
			log.Fatalf("benchsink: %s: only loopback addresses are allowed", a)
		}
	}

	cert, err := selfsign.New([]string{"127.0.0.1", "localhost"}, time.Now(), 24*time.Hour)
	if err != nil {
		log.Fatalf("benchsink: %v", err)
	}
	if err := os.WriteFile(*certOut, cert.CertPEM, 0o644); err != nil {
		log.Fatalf("benchsink: %v", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
	c := newCounters()
	_, stop, err := startSMTP(*fast, *listen, *tlsListen, tc, c)
	if err != nil {
		log.Fatalf("benchsink: %v", err)
	}
	defer stop()

	mux := newMux(c)
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatalf("benchsink: http: %v", err)
		}
	}()
	mode := "go-smtp"
	if *fast {
		mode = "-fast"
	}
	log.Printf("benchsink (%s): STARTTLS on %s, implicit TLS on %s, counters on http://%s, certificate in %s",
		mode, *listen, *tlsListen, *httpAddr, *certOut)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
}

// startSMTP serves SMTP on listen (STARTTLS offered) and, unless tlsListen
// is "", implicit TLS on tlsListen, counting into c: with the -fast server
// when fast is set, with internal/sink (go-smtp) otherwise. stop closes
// the listeners. addrs are the bound addresses (listen's first), for ports
// given as 0.
func startSMTP(fast bool, listen, tlsListen string, tc *tls.Config, c *counters) (addrs []string, stop func(), err error) {
	const hostname = "benchsink.localhost"
	var closers []func() error
	stop = func() {
		for _, f := range closers {
			_ = f()
		}
	}
	want := []string{listen}
	if tlsListen != "" {
		want = append(want, tlsListen)
	}
	// server is what both modes start: one listener, closed by Close.
	type server interface {
		Addr() string
		Close() error
	}
	start := func(a string, implicit bool) (server, error) {
		opt := sink.Options{Hostname: hostname, TLS: tc, Implicit: implicit, Discard: true,
			OnMessage: func(m sink.Message) { c.add(int64(len(m.Body)), m.TLS, m.At) }}
		return sink.Start(a, opt)
	}
	if fast {
		seq := new(atomic.Int64)
		start = func(a string, implicit bool) (server, error) {
			return startFast(a, fastOptions{Hostname: hostname, TLS: tc, Implicit: implicit, OnMessage: c.add}, seq)
		}
	}
	for i, a := range want {
		s, err := start(a, i == 1)
		if err != nil {
			stop()
			return nil, nil, err
		}
		closers = append(closers, s.Close)
		addrs = append(addrs, s.Addr())
	}
	return addrs, stop, nil
}

// newMux serves the counters: /stats, /reset and /wait.
func newMux(c *counters) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		b, _, _ := c.snapshot()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, _ *http.Request) {
		c.reset()
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("count"), 10, 64)
		secs, _ := strconv.ParseFloat(r.URL.Query().Get("timeout"), 64)
		if secs <= 0 {
			secs = 60
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(secs*float64(time.Second)))
		defer cancel()
		for {
			b, got, changed := c.snapshot()
			if got >= n {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(b)
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				w.WriteHeader(http.StatusRequestTimeout)
				_, _ = w.Write(b)
				return
			}
		}
	})
	return mux
}
