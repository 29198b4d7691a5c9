// Package sink is a small upstream SMTP server that keeps what it receives:
// `relaybox demo` uses it as the campus relay stand-in, and end-to-end tests
// use it to count and compare what arrived. It speaks STARTTLS or implicit
// TLS with the certificate it is given.
package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message as the sink received it.
type Message struct {
	From string
	To   []string
	Body []byte
	TLS  bool // the session was encrypted when DATA was sent
	At   time.Time
}

// Options configure a Sink.
type Options struct {
	Hostname string
	TLS      *tls.Config // nil: plain only
	Implicit bool        // TLS from the first byte (port 465 style)
	// OnMessage, when set, sees each message as it arrives (the demo prints).
	OnMessage func(Message)
	// Reject, when set, may refuse a stage: it gets "mail", "rcpt:<addr>"
	// or "data" and returns an *smtp.SMTPError or nil.
	Reject func(stage string) error
}

// Sink is a running upstream.
type Sink struct {
	opt  Options
	srv  *smtp.Server
	ln   net.Listener
	mu   sync.Mutex
	msgs []Message
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves.
func Start(addr string, opt Options) (*Sink, error) {
	if opt.Hostname == "" {
		opt.Hostname = "sink.localhost"
	}
	s := &Sink{opt: opt}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = opt.Hostname
	srv.TLSConfig = opt.TLS
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = nopLogger{}
	var ln net.Listener
	var err error
	if opt.Implicit {
		if opt.TLS == nil {
			return nil, errors.New("sink: implicit TLS needs a TLS config")
		}
		ln, err = tls.Listen("tcp", addr, opt.TLS)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("sink: listen %s: %w", addr, err)
	}
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return s, nil
}

// Addr is the listening address.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Messages returns a copy of what arrived so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait blocks until at least n messages arrived or ctx ends.
func (s *Sink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		if m := s.Messages(); len(m) >= n {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return s.Messages(), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the sink.
func (s *Sink) Close() error { return s.srv.Close() }

type session struct {
	s    *Sink
	conn *smtp.Conn
	from string
	to   []string
}

func (se *session) reject(stage string) error {
	if se.s.opt.Reject == nil {
		return nil
	}
	return se.s.opt.Reject(stage)
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := se.reject("mail"); err != nil {
		return err
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := se.reject("rcpt:" + to); err != nil {
		return err
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if err := se.reject("data"); err != nil {
		return err
	}
	_, isTLS := se.conn.TLSConnectionState()
	m := Message{From: se.from, To: append([]string(nil), se.to...), Body: buf.Bytes(), TLS: isTLS, At: time.Now()}
	se.s.mu.Lock()
	se.s.msgs = append(se.s.msgs, m)
	se.s.mu.Unlock()
	if se.s.opt.OnMessage != nil {
		se.s.opt.OnMessage(m)
	}
	return nil
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
