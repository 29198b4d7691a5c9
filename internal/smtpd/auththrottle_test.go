package smtpd

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"relaybox/internal/clocktest"
	"relaybox/internal/throttle"
)

// dialFrom is dialAuth from a chosen loopback address: 127.0.0.0/8 all
// routes to lo on Linux, so each address is a distinct client.
func dialFrom(t *testing.T, local, addr string) *authDialog {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	d := &authDialog{t: t, conn: c, r: bufio.NewReader(c)}
	if got := d.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting %q", got)
	}
	return d
}

// Reconnecting gives no fresh guesses: failures are counted per client
// address across connections, and past the budget AUTH is answered 454
// without the password being checked. A device on another address is not
// affected.
func TestAuthGuessesLimitedAcrossConnections(t *testing.T) {
	needLoopbackAddrs(t)
	const pw = "Scan-Pass-1"
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	guard := throttle.New(throttle.Options{Now: clk.Now, Burst: 4, Delay: time.Millisecond, MaxDelay: time.Millisecond})
	var checks atomic.Int32
	c := defaultTranscriptConfig()
	c.auth = AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"scanner": hashPassword(t, pw)}}
	_, srv, addr := startTestServer(t, c, func(o *Options) { o.AuthGuard = guard })
	real := srv.cur.Load().auth.compare
	srv.cur.Load().auth.compare = func(h, p []byte) error { checks.Add(1); return real(h, p) }

	refused := 0
	for range 10 { // ten connections, three guesses each
		d := dialFrom(t, "127.0.0.66", addr)
		d.cmd("EHLO attacker")
		for range 3 {
			got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00guess"))
			if strings.HasPrefix(got, "454 4.7.0") {
				refused++
			} else if !strings.HasPrefix(got, "535") && !strings.HasPrefix(got, "421") {
				t.Fatalf("guess answered %q", got)
			}
		}
		d.conn.Close()
	}
	if n := checks.Load(); n != 4 {
		t.Errorf("%d passwords checked over 10 connections, want the budget of 4", n)
	}
	if refused == 0 {
		t.Error("no guess was answered 454")
	}

	d := dialFrom(t, "127.0.0.7", addr)
	d.cmd("EHLO scanner")
	if got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00"+pw)); !strings.HasPrefix(got, "235") {
		t.Fatalf("device on another address: %q", got)
	}
	d.cmd("MAIL FROM:<scan@campus.test>")
	d.cmd("RCPT TO:<a@campus.test>")
	if got := d.cmd("DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
	if got := d.cmd("Subject: x\r\n\r\nbody\r\n."); !strings.HasPrefix(got, "250") {
		t.Fatalf("device's message: %q", got)
	}

	// After the cooldown the attacker has a check back, one at a time.
	clk.Add(11 * time.Second)
	d = dialFrom(t, "127.0.0.66", addr)
	d.cmd("EHLO attacker")
	if got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00"+pw)); !strings.HasPrefix(got, "235") {
		t.Fatalf("right password after the cooldown: %q", got)
	}
}

// needLoopbackAddrs skips where 127.0.0.2 and up are not local addresses
// (they are on Linux; macOS has only 127.0.0.1 unless aliased).
func needLoopbackAddrs(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.66:0")
	if err != nil {
		t.Skipf("needs 127.0.0.0/8 on lo: %v", err)
	}
	l.Close()
}
