package deliver

// The fake campus relay for tests is internal/sink (the one the demo and
// the end-to-end tests use) with a self-signed certificate; a raw listener
// plays relays that misbehave before go-smtp would let them (bad greeting,
// no greeting).

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost, usable
// as server and client certificate, with its files for the config.
type testCert struct {
	TLS      tls.Certificate
	Pool     *x509.CertPool
	CAFile   string // the certificate as PEM, for ca_file
	CertFile string // certificate and key files, for cert_file / key_file
	KeyFile  string
}

func newTestCert(t testing.TB) testCert {
	t.Helper()
	c, err := selfsign.New([]string{"localhost", "127.0.0.1"}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tc := testCert{TLS: c.TLS, Pool: x509.NewCertPool(),
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	tc.Pool.AppendCertsFromPEM(c.CertPEM)
	for name, b := range map[string][]byte{tc.CAFile: c.CertPEM, tc.CertFile: c.CertPEM, tc.KeyFile: c.KeyPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// testUpstream is a running sink playing the campus relay, with the
// certificate a client must trust to reach it.
type testUpstream struct {
	*sink.Sink
	Addr string
	Cert testCert
	mode TLSMode
}

// startUpstream starts a STARTTLS relay shaped by opt (see startUpstreamMode).
func startUpstream(t testing.TB, opt sink.Options) *testUpstream {
	t.Helper()
	return startUpstreamMode(t, TLSStartTLS, opt)
}

// startUpstreamMode starts a relay for mode: STARTTLS or implicit TLS with
// a fresh self-signed certificate (added to opt.TLS when that is given,
// e.g. to require client certificates), or plain text with AUTH allowed in
// clear for TLSNone. It traces the dialogue (Events, Saw) and stops with t.
func startUpstreamMode(t testing.TB, mode TLSMode, opt sink.Options) *testUpstream {
	t.Helper()
	u := &testUpstream{Cert: newTestCert(t), mode: mode}
	if opt.Hostname == "" {
		opt.Hostname = "relay.test"
	}
	opt.Trace = true
	switch mode {
	case TLSNone:
		opt.TLS, opt.InsecureAuth = nil, true
	default:
		if opt.TLS == nil {
			opt.TLS = &tls.Config{}
		}
		opt.TLS.Certificates = []tls.Certificate{u.Cert.TLS}
		opt.Implicit = mode == TLSImplicit
	}
	s, err := sink.Start("127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u.Sink, u.Addr = s, s.Addr()
	return u
}

// Upstream is a config entry for this relay that trusts its certificate.
func (u *testUpstream) Upstream() Upstream {
	up := Upstream{Address: u.Addr, TLS: u.mode, CAFile: u.Cert.CAFile}
	if u.mode == TLSNone {
		up.Insecure, up.CAFile = true, ""
	}
	return up
}

// startRawUpstream accepts TCP connections on 127.0.0.1 and hands each to
// serve, for relays that misbehave before go-smtp would let them.
func startRawUpstream(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// greetWith answers the greeting with line and hangs up.
func greetWith(line string) func(net.Conn) {
	return func(c net.Conn) {
		c.Write([]byte(line + "\r\n"))
		io.Copy(io.Discard, io.LimitReader(c, 512))
		c.Close()
	}
}

// neverGreet holds the connection open and says nothing.
func neverGreet(c net.Conn) { io.Copy(io.Discard, c) }

// testBody is CRLF text with lines that need dot-stuffing.
func testBody(extra int) []byte {
	var b bytes.Buffer
	b.WriteString("From: scanner@lab.example.edu\r\nTo: prof@example.edu\r\nSubject: scan\r\n\r\n")
	b.WriteString(".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n")
	for i := 0; b.Len() < extra; i++ {
		b.WriteString("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n")
	}
	b.WriteString("end\r\n")
	return b.Bytes()
}
