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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message as the sink received it.
type Message struct {
	From string
	To   []string
	Body []byte
	TLS  bool // the session was encrypted when DATA was sent
	At   time.Time
	// ID is the sink's queue ID, given in its reply ("250 2.0.0 OK:
	// queued as S000001") as a real relay gives its own.
	ID string
	// Mail holds the parameters of the MAIL command (SIZE=, BODY=,
	// SMTPUTF8), for tests of what a client announces.
	Mail smtp.MailOptions
}

// Options configure a Sink.
type Options struct {
	Hostname string
	TLS      *tls.Config // nil: plain only
	Implicit bool        // TLS from the first byte (port 465 style)
	// OnMessage, when set, sees each message as it arrives (the demo prints).
	OnMessage func(Message)
	// Discard, when set, keeps nothing (Messages and Wait see none):
	// long runs count what arrives in OnMessage instead of holding every
	// body in memory.
	Discard bool
	// Reject, when set, may refuse a stage: it gets "mail", "rcpt:<addr>"
	// or "data" and returns an *smtp.SMTPError or nil. It may also sleep,
	// to play a slow relay.
	Reject func(stage string) error
	// Cut, when set and true for a stage (same names as Reject), drops the
	// TCP connection without a reply, as a relay that crashes or a
	// middlebox that times out would. At "data" part of the body is read
	// first, so the cut lands mid-transfer. Nothing is recorded.
	Cut func(stage string) bool
	// Bearer, when set, makes the sink a relay like smtp.office365.com:
	// it offers AUTH XOAUTH2 OAUTHBEARER (after STARTTLS), accepts the
	// tokens Bearer approves, and refuses MAIL before a login with 530.
	// OnLogin (optional) sees each login attempt.
	Bearer  func(user, token string) bool
	OnLogin func(BearerLogin)
	// Extensions the relay offers, to play a particular real one:
	// SMTPUTF8 (off by default, as on many relays), a SIZE limit in bytes
	// (0: SIZE without a limit) and 8BITMIME (NoEightBitMIME switches it off).
	SMTPUTF8       bool
	MaxSize        int64
	NoEightBitMIME bool
	// AuthMechs lists the SASL mechanisms offered: PLAIN and LOGIN check
	// User and Password, XOAUTH2 and OAUTHBEARER ask Bearer. Empty: the
	// bearer mechanisms when Bearer is set, no AUTH otherwise. With User
	// set, MAIL before a login gets go-smtp's ErrAuthRequired (502 5.7.0).
	AuthMechs      []string
	User, Password string
	// InsecureAuth offers AUTH without TLS, as a relay in a closed lab
	// network might (go-smtp refuses it by default).
	InsecureAuth bool
	// Trace keeps the dialogue as events for Events, for tests that check
	// what a client sent and in which order.
	Trace bool
}

// Sink is a running upstream.
type Sink struct {
	opt  Options
	addr string // fixed at the first Start, so Restart comes back where it was

	srvMu sync.Mutex
	srv   *smtp.Server // nil while stopped
	// ln is closed by Stop too: go-smtp's Close misses a listener its
	// Serve goroutine has not registered yet (Stop right after Start).
	ln net.Listener

	mu     sync.Mutex
	msgs   []Message
	seq    int // messages taken, for their IDs
	events []string
	logins []BearerLogin
	conns  int
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves.
func Start(addr string, opt Options) (*Sink, error) {
	if opt.Hostname == "" {
		opt.Hostname = "sink.localhost"
	}
	if opt.Implicit && opt.TLS == nil {
		return nil, errors.New("sink: implicit TLS needs a TLS config")
	}
	s := &Sink{opt: opt, addr: addr}
	if err := s.serve(); err != nil {
		return nil, err
	}
	return s, nil
}

// serve listens on s.addr with a fresh server: a go-smtp Server cannot
// serve again once closed.
func (s *Sink) serve() error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return nil
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		s.trace("ehlo tls=" + yesNo(isTLS))
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = s.opt.Hostname
	srv.TLSConfig = s.opt.TLS
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = nopLogger{}
	srv.EnableSMTPUTF8 = s.opt.SMTPUTF8
	srv.MaxMessageBytes = s.opt.MaxSize
	srv.Disable8BITMIME = s.opt.NoEightBitMIME
	srv.AllowInsecureAuth = s.opt.InsecureAuth
	raw, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("sink: listen %s: %w", s.addr, err)
	}
	s.addr = raw.Addr().String()
	var ln net.Listener = &countingListener{Listener: raw, s: s}
	if s.opt.Implicit {
		ln = tls.NewListener(ln, s.opt.TLS)
	}
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Addr is the listening address (also while stopped).
func (s *Sink) Addr() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.addr
}

// Stop closes the listener and drops every open session, as a relay that
// goes down would; what arrived so far is kept. Stopping a stopped sink
// does nothing.
func (s *Sink) Stop() error {
	s.srvMu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	ln.Close()
	if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Restart listens again at the same address with the same options after
// Stop (or Close); on a running sink it does nothing.
func (s *Sink) Restart() error { return s.serve() }

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

// Events returns the dialogue so far when Options.Trace is set, in order:
// "ehlo tls=no" (each new session, again after STARTTLS), "auth PLAIN
// alice", "mail a@b tls=yes", "rcpt c@d", "data", "reset".
func (s *Sink) Events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// Saw reports whether any event starts with prefix (Options.Trace).
func (s *Sink) Saw(prefix string) bool {
	for _, e := range s.Events() {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// Logins returns the bearer logins seen so far.
func (s *Sink) Logins() []BearerLogin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]BearerLogin(nil), s.logins...)
}

// Conns is the number of TCP connections accepted so far.
func (s *Sink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *Sink) trace(ev string) {
	if !s.opt.Trace {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

type countingListener struct {
	net.Listener
	s *Sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
	}
	return c, err
}

// Close stops the sink; it is Stop, kept for existing callers.
func (s *Sink) Close() error { return s.Stop() }

type session struct {
	s    *Sink
	conn *smtp.Conn
	from string
	to   []string
	mail smtp.MailOptions
	// authed is per session: a login on another connection must not count.
	authed bool
}

// AuthMechanisms implements smtp.AuthSession: Options.AuthMechs, else the
// bearer mechanisms when Options.Bearer is set, else nothing (no AUTH).
func (se *session) AuthMechanisms() []string {
	if se.s.opt.AuthMechs != nil {
		return se.s.opt.AuthMechs
	}
	if se.s.opt.Bearer == nil {
		return nil
	}
	return []string{XOAuth2, OAuthBearer}
}

// Auth implements smtp.AuthSession.
func (se *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(se.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(user, pass string) error {
		se.s.trace("auth " + mech + " " + user)
		if user != se.s.opt.User || pass != se.s.opt.Password {
			return smtp.ErrAuthFailed
		}
		se.authed = true
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	case XOAuth2, OAuthBearer:
		if se.s.opt.Bearer == nil {
			break
		}
		return NewBearerServer(mech, se.s.opt.Bearer, func(l BearerLogin) {
			se.s.trace("auth " + mech + " " + l.User)
			se.authed = l.Accepted
			se.s.mu.Lock()
			se.s.logins = append(se.s.logins, l)
			se.s.mu.Unlock()
			if se.s.opt.OnLogin != nil {
				se.s.opt.OnLogin(l)
			}
		}), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (se *session) reject(stage string) error {
	if se.s.opt.Cut != nil && se.s.opt.Cut(stage) {
		return se.cut()
	}
	if se.s.opt.Reject == nil {
		return nil
	}
	return se.s.opt.Reject(stage)
}

// errCut is returned after the connection was dropped; no reply reaches
// the client.
var errCut = errors.New("sink: connection cut")

func (se *session) cut() error {
	_ = se.conn.Conn().Close()
	return errCut
}

func (se *session) Reset() {
	se.from, se.to, se.mail = "", nil, smtp.MailOptions{}
	se.s.trace("reset")
}

func (se *session) Logout() error { return nil }

func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	_, isTLS := se.conn.TLSConnectionState()
	se.s.trace("mail " + from + " tls=" + yesNo(isTLS))
	if se.s.opt.Bearer != nil && !se.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57}, Message: "Client not authenticated to send mail"}
	}
	if se.s.opt.User != "" && !se.authed {
		return smtp.ErrAuthRequired
	}
	if err := se.reject("mail"); err != nil {
		return err
	}
	se.from = from
	if opts != nil {
		se.mail = *opts
	}
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.trace("rcpt " + to)
	if err := se.reject("rcpt:" + to); err != nil {
		return err
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	se.s.trace("data")
	if se.s.opt.Cut != nil && se.s.opt.Cut("data") {
		_, _ = io.CopyN(io.Discard, r, 256)
		return se.cut()
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if se.s.opt.Reject != nil {
		if err := se.s.opt.Reject("data"); err != nil {
			return err
		}
	}
	_, isTLS := se.conn.TLSConnectionState()
	m := Message{From: se.from, To: append([]string(nil), se.to...), Body: buf.Bytes(), TLS: isTLS, At: time.Now(), Mail: se.mail}
	se.s.mu.Lock()
	se.s.seq++
	m.ID = fmt.Sprintf("S%06d", se.s.seq)
	if !se.s.opt.Discard {
		se.s.msgs = append(se.s.msgs, m)
	}
	se.s.mu.Unlock()
	if se.s.opt.OnMessage != nil {
		se.s.opt.OnMessage(m)
	}
	// go-smtp sends a 250 "error" as the reply it is.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + m.ID}
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch {
	case l.step == 1 && resp == nil:
		return []byte("Username:"), false, nil
	case l.step == 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case l.step == 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
