package sink

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func send(addr, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout = 5 * time.Second
	return c.SendMail("dev@campus.test", []string{"alice@campus.test"}, strings.NewReader(body))
}

// startAndDial starts a sink with opt and connects a client to it; both
// close with t.
func startAndDial(t *testing.T, opt Options) (*Sink, *smtp.Client) {
	t.Helper()
	s, err := Start("127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

// transfer sends one small message to rcpt over c and returns the reply
// to its final dot.
func transfer(t *testing.T, c *smtp.Client, mail *smtp.MailOptions, rcpt string) string {
	t.Helper()
	if err := c.Mail("dev@campus.test", mail); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: one\r\n\r\nx\r\n"))
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusText
}

// Stop drops the listener, Restart comes back at the same address, and the
// messages received before the stop are kept.
func TestStopRestart(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr()
	if err := send(addr, "Subject: one\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a stopped sink still accepts connections")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("restarted at %s, was %s", s.Addr(), addr)
	}
	if err := send(addr, "Subject: two\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("%d messages kept across the restart, want 2", n)
	}
}

// The reply to DATA names the sink's queue ID, as a campus relay's does.
func TestQueuedAsReply(t *testing.T) {
	s, c := startAndDial(t, Options{})
	reply := transfer(t, c, nil, "alice@campus.test")
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].ID != "S000001" || reply != "2.0.0 OK: queued as S000001" {
		t.Fatalf("reply %q, messages %+v", reply, msgs)
	}
}

// Cut drops the connection without a reply and records nothing.
func TestCut(t *testing.T) {
	for _, stage := range []string{"mail", "rcpt:alice@campus.test", "data"} {
		t.Run(stage, func(t *testing.T) {
			var cut atomic.Bool
			cut.Store(true)
			s, err := Start("127.0.0.1:0", Options{Cut: func(st string) bool { return st == stage && cut.Load() }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = send(s.Addr(), "Subject: cut\r\n\r\n"+strings.Repeat("y", 2000)+"\r\n")
			var se *smtp.SMTPError
			if err == nil || errors.As(err, &se) {
				t.Fatalf("send = %v, want a connection error (no reply)", err)
			}
			if n := len(s.Messages()); n != 0 {
				t.Fatalf("%d messages recorded from a cut session", n)
			}
			cut.Store(false)
			if err := send(s.Addr(), "Subject: ok\r\n\r\nz\r\n"); err != nil {
				t.Fatalf("after the cut: %v", err)
			}
		})
	}
}

// Discard keeps nothing but still hands each message to OnMessage.
func TestDiscard(t *testing.T) {
	var seen atomic.Int64
	s, err := Start("127.0.0.1:0", Options{Discard: true, OnMessage: func(Message) { seen.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if err := send(s.Addr(), "Subject: d\r\n\r\nx\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	if seen.Load() != 3 || len(s.Messages()) != 0 {
		t.Fatalf("OnMessage saw %d (want 3), kept %d (want 0)", seen.Load(), len(s.Messages()))
	}
}

// A Stop straight after Start stops it too: go-smtp's Serve may not have
// registered the listener yet when Close runs.
func TestStopRightAfterStart(t *testing.T) {
	for i := range 200 {
		s, err := Start("127.0.0.1:0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			c.Close()
			t.Fatalf("round %d: a sink stopped right after its start still accepts connections", i)
		}
	}
}

// With User set, MAIL waits for a PLAIN or LOGIN login with the right
// password; Trace keeps the dialogue, and each message its MAIL parameters.
func TestPasswordAuthAndTrace(t *testing.T) {
	s, c := startAndDial(t, Options{AuthMechs: []string{"PLAIN", "LOGIN"}, User: "alice", Password: "pw",
		InsecureAuth: true, Trace: true})
	var se *smtp.SMTPError
	if err := c.Mail("dev@campus.test", nil); !errors.As(err, &se) || se.Code != 502 {
		t.Fatalf("MAIL before login = %v, want 502", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("wrong password = %v, want 535", err)
	}
	if err := c.Auth(sasl.NewLoginClient("alice", "pw")); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	transfer(t, c, &smtp.MailOptions{Size: 20}, "bob@campus.test")
	want := []string{"ehlo tls=no", "mail dev@campus.test tls=no", "auth PLAIN alice", "auth LOGIN alice",
		"mail dev@campus.test tls=no", "rcpt bob@campus.test", "data"}
	// go-smtp may reset the session after the client has its reply: a
	// "reset" may follow or not yet.
	if got := s.Events(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("events = %q\nwant     %q", got, want)
	}
	if m := s.Messages(); len(m) != 1 || m[0].Mail.Size != 20 || s.Conns() != 1 {
		t.Errorf("messages %+v over %d connections", m, s.Conns())
	}
}
