package smtpd

import (
	"bufio"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"relaybox/internal/policy"
)

// Reconfigure changes the policy for new connections; a session that was
// open before finishes under the rules it started with, and a bad policy
// leaves the running one in place.
func TestReconfigure(t *testing.T) {
	c := defaultTranscriptConfig()
	_, srv, addr := startTestServer(t, c, nil)

	before := dialAuth(t, addr)
	if got := before.cmd("EHLO dev"); !strings.HasPrefix(got, "250") {
		t.Fatalf("EHLO: %q", got)
	}

	rules, err := policy.NewRules([]string{"other.test"})
	if err != nil {
		t.Fatal(err)
	}
	opt := c.options(t, nil)
	opt.Rules = rules
	if err := srv.Reconfigure(opt); err != nil {
		t.Fatal(err)
	}

	after := dialAuth(t, addr)
	after.cmd("EHLO dev")
	after.cmd("MAIL FROM:<dev@campus.test>")
	if got := after.cmd("RCPT TO:<a@campus.test>"); !strings.HasPrefix(got, "550") {
		t.Errorf("new session, old domain: %q, want 550", got)
	}
	if got := after.cmd("RCPT TO:<a@other.test>"); !strings.HasPrefix(got, "250") {
		t.Errorf("new session, new domain: %q, want 250", got)
	}

	before.cmd("MAIL FROM:<dev@campus.test>")
	if got := before.cmd("RCPT TO:<a@campus.test>"); !strings.HasPrefix(got, "250") {
		t.Errorf("session open across the reload lost its rules: %q, want 250", got)
	}

	bad := opt
	bad.Auth = AuthOptions{Mode: "users"} // no users: refused
	if err := srv.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure accepted auth mode users without users")
	}
	again := dialAuth(t, addr)
	again.cmd("EHLO dev")
	again.cmd("MAIL FROM:<dev@campus.test>")
	if got := again.cmd("RCPT TO:<a@other.test>"); !strings.HasPrefix(got, "250") {
		t.Errorf("after a refused Reconfigure: %q, want the last good rules", got)
	}
}

// A narrower allowed network applies to the next connection at the gate.
func TestReconfigureNetworks(t *testing.T) {
	c := defaultTranscriptConfig()
	_, srv, addr := startTestServer(t, c, nil)
	nets, err := policy.NetworkRules([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	opt := c.options(t, nil)
	opt.Networks = nets
	if err := srv.Reconfigure(opt); err != nil {
		t.Fatal(err)
	}
	d := &authDialog{t: t}
	conn, err := dialRaw(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d.conn, d.r = conn, newReader(conn)
	if got := d.reply(); !strings.HasPrefix(got, "554") {
		t.Errorf("greeting after the network was removed: %q, want 554", got)
	}
}

func dialRaw(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// A client that matches no [[device]] gets no device key in the log (not
// device=""); a known one is named.
func TestDeviceLogAttr(t *testing.T) {
	for _, tt := range []struct {
		devices []Device
		want    string
	}{
		{nil, ""},
		{[]Device{{Name: "copier-2", Networks: []string{"127.0.0.0/8"}}}, "device=copier-2"},
	} {
		var logs lockedBuffer
		c := defaultTranscriptConfig()
		c.devices = tt.devices
		_, _, addr := startTestServer(t, c, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		d := dialAuth(t, addr)
		d.cmd("EHLO dev")
		d.cmd("MAIL FROM:<dev@campus.test>")
		d.cmd("RCPT TO:<a@campus.test>")
		d.cmd("DATA")
		if got := d.cmd("Subject: x\r\n\r\nbody\r\n."); !strings.HasPrefix(got, "250") {
			t.Fatalf("DATA: %q", got)
		}
		var accepted string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "event=accepted") {
				accepted = l
			}
		}
		switch {
		case accepted == "":
			t.Fatalf("no accepted line:\n%s", logs.String())
		case tt.want == "" && strings.Contains(accepted, "device="):
			t.Errorf("unknown device logged as %q", accepted)
		case tt.want != "" && !strings.Contains(accepted, tt.want):
			t.Errorf("accepted line %q lacks %s", accepted, tt.want)
		}
	}
}

// A lower per_client_connections applies to the next connection.
func TestReconfigurePerClientConnections(t *testing.T) {
	c := defaultTranscriptConfig()
	_, srv, addr := startTestServer(t, c, nil)
	opt := c.options(t, nil)
	opt.PerClientConnections = 1
	if err := srv.Reconfigure(opt); err != nil {
		t.Fatal(err)
	}
	first := dialAuth(t, addr)
	first.cmd("EHLO dev")
	conn, err := dialRaw(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := &authDialog{t: t, conn: conn, r: newReader(conn)}
	if got := d.reply(); !strings.HasPrefix(got, "421") {
		t.Errorf("second connection with per_client_connections = 1: %q, want 421", got)
	}
}
