// Command bootsink is the upstream for scripts/boot-bench.sh: internal/sink
// on a loopback port with STARTTLS and a certificate made at start (its PEM
// written to -cert-out for relaybox's ca_file). It discards what arrives,
// exits once -n messages have arrived, and prints how long that took from
// the moment it was listening.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:2600", "address to listen on")
	certOut := flag.String("cert-out", "", "write the certificate (PEM) here")
	n := flag.Int64("n", 0, "exit after this many messages")
	flag.Parse()
	cert, err := selfsign.New([]string{"127.0.0.1", "localhost"}, time.Now(), 24*time.Hour)
	if err != nil {
		fail(err)
	}
	if *certOut != "" {
		if err := os.WriteFile(*certOut, cert.CertPEM, 0o644); err != nil {
			fail(err)
		}
	}
	var got atomic.Int64
	done := make(chan struct{})
	s, err := sink.Start(*addr, sink.Options{
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
		Discard: true,
		OnMessage: func(sink.Message) {
			if got.Add(1) == *n {
				close(done)
			}
		},
	})
	if err != nil {
		fail(err)
	}
	start := time.Now()
	fmt.Println("listening", s.Addr())
	<-done
	fmt.Printf("received %d messages in %.2f s\n", *n, time.Since(start).Seconds())
	s.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bootsink:", err)
	os.Exit(1)
}
