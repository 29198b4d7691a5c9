package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// startTLSServer runs a Server with TLS from profile: Serve on one
// loopback listener, ServeTLS on another. It returns the spool, the log and
// both addresses.
func startTLSServer(t *testing.T, profile string) (sp *spool.Spool, log *lockedBuffer, plain, implicit string) {
	t.Helper()
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir(), Hostname: "relay.test", Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	log = &lockedBuffer{}
	sp, srv := newTestServer(t, defaultTranscriptConfig(), func(o *Options) {
		o.TLS, o.Logger = cfg, slog.New(slog.NewTextHandler(log, nil))
	})
	return sp, log, serveLoopback(t, srv.Serve), serveLoopback(t, srv.ServeTLS)
}

func clientTLS(maxVersion uint16) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}
}

// upgrade sends STARTTLS on d and returns the dialog inside TLS.
func (d *authDialog) upgrade(cfg *tls.Config) *authDialog {
	d.t.Helper()
	if got := d.cmd("STARTTLS"); !strings.HasPrefix(got, "220") {
		d.t.Fatalf("STARTTLS = %q", got)
	}
	tc := tls.Client(d.conn, cfg)
	if err := tc.Handshake(); err != nil {
		d.t.Fatalf("handshake after STARTTLS: %v", err)
	}
	return &authDialog{t: d.t, conn: tc, r: bufio.NewReader(tc)}
}

// sendMail runs one transaction on d and returns the reply to the body.
func (d *authDialog) sendMail(body string) string {
	d.t.Helper()
	for _, c := range []string{"MAIL FROM:<scanner@campus.test>", "RCPT TO:<user@campus.test>"} {
		if got := d.cmd(c); !strings.HasPrefix(got, "250") {
			d.t.Fatalf("%s = %q", c, got)
		}
	}
	if got := d.cmd("DATA"); !strings.HasPrefix(got, "354") {
		d.t.Fatalf("DATA = %q", got)
	}
	return d.cmd(body + "\r\n.")
}

// storedHeaders returns the headers of the only queued message.
func storedHeaders(t *testing.T, sp *spool.Spool) string {
	t.Helper()
	ms, err := sp.List(spool.StateQueued)
	if err != nil || len(ms) != 1 {
		t.Fatalf("queued = %d, %v; want 1", len(ms), err)
	}
	h, err := sp.Headers(ms[0].ID, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestSTARTTLSOfferedAndStoredAsESMTPS(t *testing.T) {
	sp, _, plain, _ := startTLSServer(t, ProfileModern)
	d := dialAuth(t, plain)
	if _, err := io.WriteString(d.conn, "EHLO dev\r\n"); err != nil {
		t.Fatal(err)
	}
	ehlo, err := readReply(d.r)
	if err != nil || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO = %q, %v; want STARTTLS offered", ehlo, err)
	}
	td := d.upgrade(clientTLS(0))
	if got := td.conn.(*tls.Conn).ConnectionState().Version; got < tls.VersionTLS12 {
		t.Errorf("negotiated %s", tls.VersionName(got))
	}
	if got := td.cmd("EHLO dev"); !strings.HasPrefix(got, "250") {
		t.Fatalf("EHLO inside TLS = %q", got)
	}
	if got := td.sendMail("Subject: over TLS\r\n\r\nhello"); !strings.HasPrefix(got, "250") {
		t.Fatalf("end of data = %q", got)
	}
	if h := storedHeaders(t, sp); !strings.Contains(h, "with ESMTPS") {
		t.Errorf("stored headers lack \"with ESMTPS\":\n%s", h)
	}
}

func TestSTARTTLSPipelinedCommandNotAnsweredInsideTLS(t *testing.T) {
	_, log, plain, _ := startTLSServer(t, ProfileModern)
	d := dialAuth(t, plain)
	if got := d.cmd("EHLO dev"); !strings.HasPrefix(got, "250") {
		t.Fatalf("EHLO = %q", got)
	}
	// One write: the RSET is plaintext sent before the handshake and must
	// never be taken as a command sent inside TLS (CVE-2011-0411).
	if _, err := io.WriteString(d.conn, "STARTTLS\r\nRSET\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := d.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("STARTTLS = %q", got)
	}
	tc := tls.Client(d.conn, clientTLS(0))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v (the pipelined RSET went into it)", err)
	}
	td := &authDialog{t: t, conn: tc, r: bufio.NewReader(tc)}
	// The first reply inside TLS must answer NOOP with its own text,
	// not RSET's 250 "Session reset".
	if _, err := io.WriteString(tc, "NOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	all, err := readReply(td.r)
	if err != nil || !strings.HasPrefix(all, "250") || strings.Contains(strings.ToLower(all), "reset") {
		t.Fatalf("first reply inside TLS = %q, %v; want only the answer to NOOP", all, err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if extra, _ := td.r.ReadString('\n'); extra != "" {
		t.Errorf("extra reply inside TLS: %q", extra)
	}
	if !strings.Contains(log.String(), "pipelined commands after STARTTLS") {
		t.Errorf("log lacks the dropped-commands warning:\n%s", log.String())
	}
}

func TestSTARTTLSFailedHandshakeCloses(t *testing.T) {
	_, _, plain, _ := startTLSServer(t, ProfileModern)
	d := dialAuth(t, plain)
	if got := d.cmd("STARTTLS"); !strings.HasPrefix(got, "220") {
		t.Fatalf("STARTTLS = %q", got)
	}
	// Not a TLS record: the handshake fails, and the session must end
	// rather than go on in plaintext after the client asked for TLS.
	if _, err := io.WriteString(d.conn, "EHLO dev\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := d.reply(); !strings.HasPrefix(got, "550") {
		t.Fatalf("after a failed handshake = %q; want go-smtp's 550", got)
	}
	_, _ = io.WriteString(d.conn, "NOOP\r\n")
	_ = d.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	// A reset also means closed: the server did not read the NOOP.
	rest, err := io.ReadAll(d.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || len(rest) > 0 && !bytes.HasPrefix(rest, []byte("421 ")) {
		t.Errorf("after a failed handshake: read %q, %v; want a 421 at most, then the connection closed", rest, err)
	}
}

func TestImplicitTLSListener(t *testing.T) {
	sp, _, _, implicit := startTLSServer(t, ProfileModern)
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", implicit, clientTLS(0))
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	d := &authDialog{t: t, conn: tc, r: bufio.NewReader(tc)}
	if got := d.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting inside TLS = %q", got)
	}
	if _, err := io.WriteString(tc, "EHLO dev\r\n"); err != nil {
		t.Fatal(err)
	}
	ehlo, err := readReply(d.r)
	if err != nil || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO inside implicit TLS = %q, %v; want no STARTTLS offered", ehlo, err)
	}
	if got := d.sendMail("Subject: implicit\r\n\r\nline"); !strings.HasPrefix(got, "250") {
		t.Fatalf("end of data = %q", got)
	}
	if h := storedHeaders(t, sp); !strings.Contains(h, "with ESMTPS") {
		t.Errorf("stored headers lack \"with ESMTPS\":\n%s", h)
	}

	// A plaintext client on the implicit-TLS port gets no SMTP greeting.
	c, err := net.Dial("tcp", implicit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "EHLO dev\r\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if bytes.Contains(got, []byte("220")) || bytes.Contains(got, []byte("250")) {
		t.Errorf("plaintext client on the TLS port got %q", got)
	}
}

// A client outside the allowed networks costs an implicit-TLS listener no
// handshake: the connection is closed at once (and logged), so thousands of
// them cannot tie up goroutines, file descriptors and CPU.
func TestImplicitTLSRefusesOutsideNetworksBeforeTLS(t *testing.T) {
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := defaultTranscriptConfig()
	c.networks = []string{"192.0.2.0/24"}
	var logs lockedBuffer
	_, srv := newTestServer(t, c, func(o *Options) {
		o.TLS = cfg
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	addr := serveLoopback(t, srv.ServeTLS)
	d := &net.Dialer{Timeout: 5 * time.Second}
	start := time.Now()
	tc, err := tls.DialWithDialer(d, "tcp", addr, clientTLS(0))
	if err == nil {
		tc.Close()
		t.Fatal("TLS handshake completed for a client outside the allowed networks")
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("refusal took %v; want the connection closed at once", el)
	}
	if !strings.Contains(logs.String(), "refused client outside allowed networks") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
}

func TestTLSProfiles(t *testing.T) {
	for _, tt := range []struct {
		profile string
		ok      bool
	}{{ProfileLegacy, true}, {ProfileModern, false}} {
		t.Run(tt.profile, func(t *testing.T) {
			_, _, _, implicit := startTLSServer(t, tt.profile)
			tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", implicit, clientTLS(tls.VersionTLS10))
			if !tt.ok {
				if err == nil {
					tc.Close()
					t.Fatal("a TLS 1.0 client got through the modern profile")
				}
				return
			}
			if err != nil {
				t.Fatalf("TLS 1.0 client: %v", err)
			}
			defer tc.Close()
			if v := tc.ConnectionState().Version; v != tls.VersionTLS10 {
				t.Errorf("negotiated %s; want TLS 1.0", tls.VersionName(v))
			}
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if line, _ := bufio.NewReader(tc).ReadString('\n'); !strings.HasPrefix(line, "220") {
				t.Errorf("greeting over TLS 1.0 = %q", line)
			}
		})
	}
}

func TestLoadTLSAutoCertKeptAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f := TLSFiles{Cert: CertAuto, Dir: dir, Hostname: "relay.lab.test"}
	first, err := LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cert.pem", "key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v; want 0600", name, fi.Mode().Perm())
		}
	}
	leaf, err := x509.ParseCertificate(first.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "relay.lab.test" {
		t.Errorf("DNS names %v; want the hostname", leaf.DNSNames)
	}
	second, err := LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]) {
		t.Error("second start made a new certificate; want the kept one reused")
	}
	// Near expiry it is renewed.
	f.Now = func() time.Time { return leaf.NotAfter.Add(-24 * time.Hour) }
	third, err := LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Certificates[0].Certificate[0], third.Certificates[0].Certificate[0]) {
		t.Error("a certificate a day from expiry was reused")
	}
}

func TestLoadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	// Borrow an auto pair as the admin's own files.
	if _, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg, err := LoadTLS(TLSFiles{Cert: cert, Key: key, Profile: ProfileLegacy})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS10 {
		t.Errorf("legacy MinVersion = %x", cfg.MinVersion)
	}
	if _, err := LoadTLS(TLSFiles{Cert: cert, Key: cert}); err == nil || !strings.Contains(err.Error(), "tls_key") {
		t.Errorf("certificate as key: %v; want an error naming tls_key", err)
	}
	if _, err := LoadTLS(TLSFiles{Cert: cert, Key: key, Profile: "old"}); err == nil {
		t.Error("unknown profile accepted")
	}
}

// Inside TLS, after AUTH, the Received header says ESMTPSA (RFC 3848).
func TestReceivedESMTPSA(t *testing.T) {
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir(), Hostname: "relay.test", Profile: ProfileModern})
	if err != nil {
		t.Fatal(err)
	}
	sp, srv := newTestServer(t, defaultTranscriptConfig(), func(o *Options) {
		o.TLS, o.Auth = cfg, AuthOptions{Mode: "any"}
	})
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", serveLoopback(t, srv.ServeTLS), clientTLS(0))
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	d := &authDialog{t: t, conn: tc, r: bufio.NewReader(tc)}
	if got := d.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting = %q", got)
	}
	if got := d.cmd("EHLO dev"); !strings.HasPrefix(got, "250") {
		t.Fatalf("EHLO = %q", got)
	}
	if got := d.cmd("AUTH PLAIN AHNjYW5uZXIAc2VjcmV0"); !strings.HasPrefix(got, "235") {
		t.Fatalf("AUTH = %q", got)
	}
	if got := d.sendMail("Subject: signed in\r\n\r\nline"); !strings.HasPrefix(got, "250") {
		t.Fatalf("end of data = %q", got)
	}
	if h := storedHeaders(t, sp); !strings.Contains(h, "with ESMTPSA id") {
		t.Errorf("stored headers lack \"with ESMTPSA\":\n%s", h)
	}
}
