package deliver

// A fake campus relay for tests: a real go-smtp server on 127.0.0.1 with a
// self-signed certificate, recording what it receives, with hooks to refuse,
// delay or cut at each stage. Also a raw listener for relays that misbehave
// before go-smtp would let them (bad greeting, no greeting).

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"relaybox/internal/config"
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

// upstreamMsg is one message the fake relay accepted.
type upstreamMsg struct {
	From string
	To   []string
	Body []byte
}

// upstreamOpts shapes the fake relay. The zero value is a STARTTLS relay
// that accepts everything without AUTH.
type upstreamOpts struct {
	Mode       string // "starttls" (default), "tls" (implicit, as on 465), "none"
	NoSTARTTLS bool   // Mode "starttls" but STARTTLS is not offered
	Cert       *testCert
	ClientCAs  *x509.CertPool // require a client certificate signed by these

	AuthMechs      []string // "PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"; none: no AUTH offered
	User, Password string
	// Bearer decides XOAUTH2 / OAUTHBEARER logins (internal/sink's
	// server side, error challenge included); logins are kept in Logins.
	Bearer func(user, token string) bool

	// Hooks run before the reply; a returned *smtp.SMTPError is the reply.
	// They may sleep to simulate a slow relay. nil accepts.
	OnMail func(from string) error
	OnRcpt func(to string) error
	OnData func(body []byte) error // the reply after the final dot

	CutDuringData bool // close the connection after reading part of the body

	MaxSize    int64 // advertised as SIZE and enforced; 0: SIZE without a limit
	No8BITMIME bool  // 8BITMIME not offered
	SMTPUTF8   bool  // SMTPUTF8 offered
}

// testUpstream is a running fake relay.
type testUpstream struct {
	Addr string
	Cert testCert
	opts upstreamOpts

	mu     sync.Mutex
	mails  []smtp.MailOptions // MAIL parameters, in order
	logins []sink.BearerLogin
	msgs   []upstreamMsg
	events []string
	conns  int
}

func startUpstream(t testing.TB, opts upstreamOpts) *testUpstream {
	t.Helper()
	u := &testUpstream{opts: opts}
	if opts.Cert != nil {
		u.Cert = *opts.Cert
	} else {
		u.Cert = newTestCert(t)
	}
	if u.opts.Mode == "" {
		u.opts.Mode = "starttls"
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		u.record("ehlo tls=" + boolWord(isTLS))
		return &fakeSession{u: u, conn: c}, nil
	}))
	srv.Domain = "relay.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.AllowInsecureAuth = u.opts.Mode == "none"
	srv.MaxMessageBytes = opts.MaxSize
	srv.Disable8BITMIME = opts.No8BITMIME
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{u.Cert.TLS}}
	if opts.ClientCAs != nil {
		tlsCfg.ClientCAs = opts.ClientCAs
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if u.opts.Mode == "starttls" && !u.opts.NoSTARTTLS {
		srv.TLSConfig = tlsCfg
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Addr = l.Addr().String()
	var ln net.Listener = &countingListener{Listener: l, u: u}
	if u.opts.Mode == "tls" {
		ln = tls.NewListener(ln, tlsCfg)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// Upstream is a config entry for this relay that trusts its certificate.
func (u *testUpstream) Upstream() config.Upstream {
	up := config.Upstream{Address: u.Addr, TLS: u.opts.Mode, CAFile: u.Cert.CAFile}
	if u.opts.Mode == "none" {
		up.Insecure, up.CAFile = true, ""
	}
	return up
}

// Logins are the bearer logins seen so far.
func (u *testUpstream) Logins() []sink.BearerLogin {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]sink.BearerLogin(nil), u.logins...)
}

func (u *testUpstream) record(ev string) {
	u.mu.Lock()
	u.events = append(u.events, ev)
	u.mu.Unlock()
}

// Messages returns the accepted messages so far.
func (u *testUpstream) Messages() []upstreamMsg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamMsg(nil), u.msgs...)
}

// Events returns what the relay saw, in order: "ehlo tls=yes", "auth PLAIN
// alice", "mail a@b tls=yes", "rcpt c@d", "data", "reset".
func (u *testUpstream) Events() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.events...)
}

// Mails returns the parameters of every MAIL so far.
func (u *testUpstream) Mails() []smtp.MailOptions {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]smtp.MailOptions(nil), u.mails...)
}

// Conns is the number of TCP connections accepted.
func (u *testUpstream) Conns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// Saw reports whether any event starts with prefix.
func (u *testUpstream) Saw(prefix string) bool {
	for _, e := range u.Events() {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

type countingListener struct {
	net.Listener
	u *testUpstream
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.u.mu.Lock()
		l.u.conns++
		l.u.mu.Unlock()
	}
	return c, err
}

type fakeSession struct {
	u    *testUpstream
	conn *smtp.Conn
	from string
	to   []string
	// authOK is per session: a login on another connection must not count.
	authOK bool
}

func (s *fakeSession) AuthMechanisms() []string { return s.u.opts.AuthMechs }

func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		s.u.record("auth " + mech + " " + user)
		if user != s.u.opts.User || pass != s.u.opts.Password {
			return smtp.ErrAuthFailed
		}
		s.authOK = true
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	case sink.XOAuth2, sink.OAuthBearer:
		if s.u.opts.Bearer != nil {
			return sink.NewBearerServer(mech, s.u.opts.Bearer, func(l sink.BearerLogin) {
				s.u.record("auth " + mech + " " + l.User)
				s.authOK = l.Accepted
				s.u.mu.Lock()
				s.u.logins = append(s.u.logins, l)
				s.u.mu.Unlock()
			}), nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *fakeSession) Mail(from string, opts *smtp.MailOptions) error {
	_, isTLS := s.conn.TLSConnectionState()
	s.u.record("mail " + from + " tls=" + boolWord(isTLS))
	s.u.mu.Lock()
	s.u.mails = append(s.u.mails, *opts)
	s.u.mu.Unlock()
	if s.u.opts.User != "" && !s.authOK {
		return smtp.ErrAuthRequired
	}
	if s.u.opts.OnMail != nil {
		if err := s.u.opts.OnMail(from); err != nil {
			return err
		}
	}
	s.from = from
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.u.record("rcpt " + to)
	if s.u.opts.OnRcpt != nil {
		if err := s.u.opts.OnRcpt(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	s.u.record("data")
	if s.u.opts.CutDuringData {
		io.CopyN(io.Discard, r, 1024)
		s.conn.Conn().Close()
		return errors.New("cut")
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.u.opts.OnData != nil {
		if err := s.u.opts.OnData(body); err != nil {
			return err
		}
	}
	s.u.mu.Lock()
	s.u.msgs = append(s.u.msgs, upstreamMsg{From: s.from, To: s.to, Body: body})
	s.u.mu.Unlock()
	return nil
}

func (s *fakeSession) Reset() {
	s.from, s.to = "", nil
	s.u.record("reset")
}

func (s *fakeSession) Logout() error { return nil }

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

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

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
