// Command benchsink is the benchmark's stand-in for the campus relay: it
// accepts any mail over STARTTLS (-listen) and implicit TLS (-tls-listen)
// with a self-signed certificate it writes to -cert-out, keeps nothing, and
// counts what arrived. scripts/bench/run.sh reads the counters over HTTP:
//
//	GET /stats                 {"messages", "bytes", "tls_messages", "first_ns", "last_ns"}
//	GET /reset                 zero the counters
//	GET /wait?count=N&timeout=S  block until N messages arrived (408 on timeout)
//
// It is internal/sink (the demo's and the tests' upstream) with counters,
// so the figures measure the same SMTP server code the tests trust.
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

func (c *counters) add(m sink.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Messages++
	c.Bytes += int64(len(m.Body))
	if m.TLS {
		c.TLSMessages++
	}
	ns := m.At.UnixNano()
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
	opt := sink.Options{Hostname: "benchsink.localhost", TLS: tc, Discard: true, OnMessage: c.add}
	plain, err := sink.Start(*listen, opt)
	if err != nil {
		log.Fatalf("benchsink: %v", err)
	}
	defer plain.Close()
	if *tlsListen != "" {
		opt.Implicit = true
		implicit, err := sink.Start(*tlsListen, opt)
		if err != nil {
			log.Fatalf("benchsink: %v", err)
		}
		defer implicit.Close()
	}

	mux := newMux(c)
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatalf("benchsink: http: %v", err)
		}
	}()
	log.Printf("benchsink: STARTTLS on %s, implicit TLS on %s, counters on http://%s, certificate in %s",
		*listen, *tlsListen, *httpAddr, *certOut)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
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
