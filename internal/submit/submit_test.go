package submit

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/sink"
)

func startSink(t *testing.T, opt sink.Options) *sink.Sink {
	t.Helper()
	s, err := sink.Start("127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSendDelivers(t *testing.T) {
	s := startSink(t, sink.Options{})
	reply, err := Send(context.Background(), Options{Addr: s.Addr(), Hello: "pc.test"},
		Envelope{From: "a@x.test", To: []string{"b@y.test", "c@y.test"}}, strings.NewReader("Subject: s\n\n.dot\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reply, "250 ") {
		t.Errorf("reply %q", reply)
	}
	m := s.Messages()
	if len(m) != 1 || m[0].From != "a@x.test" || strings.Join(m[0].To, ",") != "b@y.test,c@y.test" {
		t.Fatalf("got %+v", m)
	}
	if string(m[0].Body) != "Subject: s\r\n\r\n.dot\r\nbody\r\n" {
		t.Errorf("body %q", m[0].Body)
	}
}

// One refused recipient sends nothing: a retry cannot duplicate the mail
// for the others.
func TestSendRefusedRecipientSendsNothing(t *testing.T) {
	s := startSink(t, sink.Options{Reject: func(stage string) error {
		if stage == "rcpt:bad@y.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relay denied"}
		}
		return nil
	}})
	_, err := Send(context.Background(), Options{Addr: s.Addr(), Hello: "pc.test"},
		Envelope{From: "a@x.test", To: []string{"ok@y.test", "bad@y.test"}}, strings.NewReader("x\n"))
	var se *Error
	if !errors.As(err, &se) || se.Stage != StageRcpt || se.Recipient != "bad@y.test" || se.Code != 550 || se.Temporary() {
		t.Fatalf("err %#v", err)
	}
	if !strings.Contains(se.Error(), "5.7.1 relay denied") {
		t.Errorf("message %q lacks the reply", se.Error())
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages sent after a refused recipient", n)
	}
}

func TestSendTemporaryFailures(t *testing.T) {
	// Nobody listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Send(context.Background(), Options{Addr: addr, Hello: "pc.test"}, Envelope{To: []string{"b@y.test"}}, strings.NewReader("x\n"))
	var se *Error
	if !errors.As(err, &se) || se.Stage != StageConnect || !se.Temporary() {
		t.Fatalf("no server: %#v", err)
	}

	// Spool full at the end of DATA.
	s := startSink(t, sink.Options{Reject: func(stage string) error {
		if stage == "data" {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "spool full"}
		}
		return nil
	}})
	_, err = Send(context.Background(), Options{Addr: s.Addr(), Hello: "pc.test"}, Envelope{To: []string{"b@y.test"}}, strings.NewReader("x\n"))
	if !errors.As(err, &se) || se.Stage != StageEnd || se.Code != 452 || !se.Temporary() {
		t.Fatalf("452: %#v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

func TestSendBodyReadErrorSendsNothing(t *testing.T) {
	s := startSink(t, sink.Options{})
	_, err := Send(context.Background(), Options{Addr: s.Addr(), Hello: "pc.test", Timeout: 30 * time.Second},
		Envelope{To: []string{"b@y.test"}}, io.MultiReader(strings.NewReader("Subject: half\n"), failingReader{}))
	if !errors.Is(err, ErrBody) {
		t.Fatalf("err %v, want ErrBody", err)
	}
	time.Sleep(100 * time.Millisecond) // the server sees the connection drop
	if n := len(s.Messages()); n != 0 {
		t.Errorf("a half-read message was delivered")
	}
}
