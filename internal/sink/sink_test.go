package sink

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	s, err := Start("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("dev@campus.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@campus.test", nil); err != nil {
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
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].ID != "S000001" || resp.StatusText != "2.0.0 OK: queued as S000001" {
		t.Fatalf("reply %q, messages %+v", resp.StatusText, msgs)
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
