package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"relaybox/internal/text"
)

// ClientOptions configures the upstream client.
type ClientOptions struct {
	Hostname  string     // our EHLO name
	Upstreams []Upstream // tried in order by the scheduler
	// Timeouts for dial + TLS + greeting, each command, and the final dot;
	// zero means the default below.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
	// NetDial opens the TCP connection; default (&net.Dialer{}).DialContext.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger  *slog.Logger
	// Tokens holds the token source of each upstream whose auth is
	// xoauth2 or oauthbearer, by index as in Upstreams (nil elsewhere).
	Tokens []TokenSource
}

// Defaults for timeouts left at zero, the same as the config's defaults.
const (
	defaultConnectTimeout = 30 * time.Second
	defaultCommandTimeout = 5 * time.Minute  // RFC 5321 4.5.3.2
	defaultDataTimeout    = 10 * time.Minute // RFC 5321 4.5.3.2.6
	quitTimeout           = 5 * time.Second  // QUIT is a courtesy, never worth a long wait
)

// Client opens verified sessions with the configured upstream relays.
type Client struct {
	hostname string
	ups      []upstream
	connect  time.Duration
	command  time.Duration
	data     time.Duration
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	log      *slog.Logger
}

// upstream is one relay with its secrets and TLS settings loaded.
type upstream struct {
	cfg      Upstream
	key      string // "upstream[0]", to name settings in messages
	mode     TLSMode
	tls      *tls.Config
	verified string // how the certificate is checked, for Check
	password string
	mech     AuthMech    // lower case; "" = PLAIN else LOGIN
	tokens   TokenSource // for the bearer mechanisms
}

var _ Dialer = (*Client)(nil)

// NewClient loads every upstream's CA file, password file and client
// certificate now, so a bad setting fails at start-up, not at 3 a.m.
func NewClient(opt ClientOptions) (*Client, error) {
	if opt.Hostname == "" || strings.ContainsAny(opt.Hostname, " \r\n") {
		return nil, fmt.Errorf("deliver: hostname %q is not a valid EHLO name", opt.Hostname)
	}
	c := &Client{
		hostname: opt.Hostname,
		connect:  orDefault(opt.ConnectTimeout, defaultConnectTimeout),
		command:  orDefault(opt.CommandTimeout, defaultCommandTimeout),
		data:     orDefault(opt.DataTimeout, defaultDataTimeout),
		dial:     opt.NetDial,
		log:      opt.Logger,
	}
	if c.dial == nil {
		c.dial = (&net.Dialer{}).DialContext
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	roots := &rootSource{}
	for i, u := range opt.Upstreams {
		up, err := loadUpstream(i, u, roots)
		if err != nil {
			return nil, err
		}
		if i < len(opt.Tokens) {
			up.tokens = opt.Tokens[i]
		}
		if err := up.checkAuth(); err != nil {
			return nil, err
		}
		if u.Insecure {
			c.log.Warn("UPSTREAM TLS VERIFICATION IS OFF: anyone on the network path can read and change mail and see the upstream password; remove insecure = true once the relay has a valid certificate",
				"upstream", u.Address, "key", up.key+".insecure", "tls", up.mode)
		}
		if up.mode == TLSNone {
			c.log.Warn("UPSTREAM CONNECTION IS NOT ENCRYPTED (tls = \"none\"): mail crosses the network in clear text",
				"upstream", u.Address, "key", up.key+".tls")
		}
		c.ups = append(c.ups, up)
	}
	return c, nil
}

func loadUpstream(i int, u Upstream, roots *rootSource) (upstream, error) {
	up := upstream{cfg: u, key: fmt.Sprintf("upstream[%d]", i), mode: u.TLS}
	if up.mode == "" {
		up.mode = TLSStartTLS
	}
	host, _, err := net.SplitHostPort(u.Address)
	if err != nil {
		return up, fmt.Errorf("deliver: %s.address %q: want host:port, e.g. \"smtp.example.edu:587\": %w", up.key, u.Address, err)
	}
	switch up.mode {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !u.Insecure {
			return up, fmt.Errorf("deliver: %s.tls = \"none\" sends mail unencrypted and needs insecure = true in so many words", up.key)
		}
	default:
		return up, fmt.Errorf("deliver: %s.tls = %q: want \"starttls\", \"tls\" or \"none\"", up.key, u.TLS)
	}
	serverName := u.ServerName
	if serverName == "" {
		serverName = host
	}
	if up.mode != TLSNone {
		up.tls, up.verified, err = tlsConfig(up.key, u, serverName, roots)
		if err != nil {
			return up, err
		}
	}
	up.mech = AuthMech(strings.ToLower(string(u.Auth)))
	if u.Username != "" && !isBearerMech(up.mech) {
		if u.PasswordFile == "" {
			return up, fmt.Errorf("deliver: %s.password_file is required when username is set", up.key)
		}
		b, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return up, fmt.Errorf("deliver: %s.password_file: %w", up.key, err)
		}
		up.password = strings.TrimRight(string(b), "\r\n")
		if up.password == "" {
			return up, fmt.Errorf("deliver: %s.password_file %s is empty", up.key, u.PasswordFile)
		}
	}
	return up, nil
}

// checkAuth refuses a bearer mechanism without its token source, or on a
// connection whose TLS is not verified: the token is as good as a
// password for the whole mailbox.
func (up *upstream) checkAuth() error {
	if err := checkAuthMode(up.key, up.mech, up.cfg.Username != "", up.tokens != nil); err != nil {
		return err
	}
	if isBearerMech(up.mech) && (up.cfg.Insecure || up.mode == TLSNone) {
		return fmt.Errorf("deliver: %s.auth = %q sends a bearer token and needs verified TLS; remove insecure = true / tls = \"none\"", up.key, up.mech)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Count implements Dialer.
func (c *Client) Count() int { return len(c.ups) }

// Name implements Dialer: the upstream's address.
func (c *Client) Name(i int) string {
	if i < 0 || i >= len(c.ups) {
		return fmt.Sprintf("upstream[%d]", i)
	}
	return c.ups[i].cfg.Address
}

// Dial implements Dialer: it returns a session that is connected, verified,
// greeted and authenticated, ready for Send.
func (c *Client) Dial(ctx context.Context, i int) (Conn, error) {
	k, err := c.open(ctx, i, nil)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Step is one stage of Check, reported as it finishes.
type Step struct {
	Name   string // token | dial | greeting | ehlo | starttls | tls | auth | quit
	Detail string
	Err    error
	Took   time.Duration
}

// Check runs the field technician's check against upstream i: dial, TLS and
// verification, greeting, EHLO, AUTH if configured, QUIT. It sends no mail.
// report (may be nil) sees every step in order, the failing one last.
func (c *Client) Check(ctx context.Context, i int, report func(Step)) error {
	k, err := c.open(ctx, i, report)
	if err != nil {
		return err
	}
	defer k.raw.Close()
	stop := k.watch(ctx)
	defer stop()
	if e := step(report, "quit", func() (string, *Error) {
		if err := k.sc.Quit(); err != nil {
			return "", k.fail(ctx, "quit", err, c.command)
		}
		return "session closed", nil
	}); e != nil {
		return e
	}
	return nil
}

func step(report func(Step), name string, f func() (string, *Error)) *Error {
	start := time.Now()
	detail, e := f()
	if report != nil {
		s := Step{Name: name, Detail: detail, Took: time.Since(start)}
		if e != nil {
			s.Err = e
		}
		report(s)
	}
	return e
}

// open runs dial, TLS, greeting, EHLO and AUTH. Nothing but EHLO and
// STARTTLS is sent before the certificate is verified.
func (c *Client) open(ctx context.Context, i int, report func(Step)) (_ *conn, retErr error) {
	if i < 0 || i >= len(c.ups) {
		return nil, fmt.Errorf("deliver: no upstream %d (%d configured)", i, len(c.ups))
	}
	up := &c.ups[i]
	addr := up.cfg.Address
	k := &conn{client: c, up: up}
	newErr := func(op, text string, err error) *Error {
		if ctx.Err() != nil {
			text, err = "interrupted: "+ctx.Err().Error(), ctx.Err()
		}
		return &Error{Upstream: addr, Op: op, Text: text, Err: err}
	}

	start := time.Now()
	if up.tokens != nil && isBearerMech(up.mech) {
		// Fetched before dialling: a revoked grant is reported as such,
		// not as whatever the relay makes of a stale token.
		if e := step(report, "token", func() (string, *Error) { return c.token(ctx, k) }); e != nil {
			return nil, e
		}
	}
	deadline := time.Now().Add(c.connect)
	var raw net.Conn
	if e := step(report, "dial", func() (string, *Error) {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		var err error
		raw, err = c.dial(dctx, "tcp", addr)
		if err != nil {
			return "", newErr("dial", "cannot connect: "+describeNet(addr, "no connection", c.connect, err), err)
		}
		return fmt.Sprintf("connected to %s from %s", raw.RemoteAddr(), raw.LocalAddr()), nil
	}); e != nil {
		return nil, e
	}
	// Until the session is handed over, cancelling ctx closes the socket so
	// every blocked read or handshake below returns at once.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	defer func() {
		if retErr != nil {
			raw.Close()
		}
	}()
	raw.SetDeadline(deadline)
	k.raw = raw
	// TLS writes the body through batchConn, in one socket write per
	// body write (tlswrite.go); the socket itself stays k.raw, to abort.
	bc := &batchConn{Conn: raw}

	var nc net.Conn = raw
	handshake := func(tc *tls.Conn, budget time.Duration) *Error {
		return step(report, "tls", func() (string, *Error) {
			if err := tc.HandshakeContext(ctx); err != nil {
				return "", newErr("tls", describeTLS(up.key, up.tls.ServerName, up.mode, budget, err), err)
			}
			return tlsDetail(tc.ConnectionState(), up.verified), nil
		})
	}
	if up.mode == TLSImplicit {
		tc := tls.Client(bc, up.tls)
		k.batch = bc
		if e := handshake(tc, c.connect); e != nil {
			return nil, e
		}
		nc = tc
	}

	tp := textproto.NewConn(nc)
	if e := step(report, "greeting", func() (string, *Error) {
		code, msg, err := tp.ReadResponse(220)
		if err != nil {
			e := k.protoFail(ctx, "greeting", err, "no greeting", c.connect)
			if up.mode == TLSStartTLS && e.Code == 0 && isTimeout(err) {
				e.Text += `; if the relay expects TLS from the first byte, as on port 465, set tls = "tls"`
			}
			return "", e
		}
		return fmt.Sprintf("%d %s", code, text.OneLine(msg)), nil
	}); e != nil {
		return nil, e
	}

	// reader is where the go-smtp client reads from; the plain-text buffer
	// is only reusable when no TLS layer starts underneath it.
	var reader io.Reader = tp.R
	if up.mode == TLSStartTLS {
		if e := c.startTLS(ctx, k, tp, raw, report); e != nil {
			return nil, e
		}
		tc := tls.Client(bc, up.tls)
		k.batch = bc
		raw.SetDeadline(time.Now().Add(c.connect))
		if e := handshake(tc, c.connect); e != nil {
			return nil, e
		}
		nc, reader = tc, tc
	}
	raw.SetDeadline(time.Time{})

	// go-smtp's client insists on reading the greeting itself and cannot
	// STARTTLS with our EHLO name or an explicit handshake, so it gets the
	// session after those steps with a stand-in greeting. What this relies
	// on is third_party/go-smtp/RELAYBOX.md §5 items 13 and 14.
	k.nc = &greetedConn{Conn: nc, r: io.MultiReader(strings.NewReader("220 greeting already read\r\n"), reader)}
	k.sc = smtp.NewClient(k.nc)
	k.sc.CommandTimeout = c.command
	k.sc.SubmissionTimeout = c.data
	if e := step(report, "ehlo", func() (string, *Error) {
		if err := k.sc.Hello(c.hostname); err != nil {
			return "", k.fail(ctx, "ehlo", err, c.command)
		}
		return joinExtensions(k.sc.Extension) + missingExtensions(k.sc.Extension), nil
	}); e != nil {
		return nil, e
	}

	if up.cfg.Username != "" {
		if e := step(report, "auth", func() (string, *Error) { return c.auth(ctx, k, nc) }); e != nil {
			return nil, e
		}
	}
	if !stop() { // ctx ended at the last moment and closed the socket
		return nil, newErr("dial", "interrupted", ctx.Err())
	}
	c.log.Debug("upstream session open", "upstream", addr, "took", time.Since(start).Round(time.Millisecond))
	return k, nil
}

// startTLS runs the plain-text EHLO and STARTTLS over tp on raw. They are
// written by hand, not by go-smtp's client, so that the handshake is ours:
// its deadline, its verification report, and the check for bytes injected
// before it (third_party/go-smtp/RELAYBOX.md §5 item 14).
func (c *Client) startTLS(ctx context.Context, k *conn, tp *textproto.Conn, raw net.Conn, report func(Step)) *Error {
	var ext map[string]string
	if e := step(report, "ehlo", func() (string, *Error) {
		raw.SetDeadline(time.Now().Add(c.command))
		if err := tp.PrintfLine("EHLO %s", c.hostname); err != nil {
			return "", k.protoFail(ctx, "ehlo", err, "no reply to EHLO", c.command)
		}
		_, msg, err := tp.ReadResponse(250)
		if err != nil {
			return "", k.protoFail(ctx, "ehlo", err, "no reply to EHLO", c.command)
		}
		ext = parseExtensions(msg)
		return "before TLS: " + joinExtensions(func(name string) (bool, string) {
			v, ok := ext[name]
			return ok, v
		}), nil
	}); e != nil {
		return e
	}
	return step(report, "starttls", func() (string, *Error) {
		if _, ok := ext["STARTTLS"]; !ok {
			return "", &Error{Upstream: k.up.cfg.Address, Op: "starttls",
				Text: "upstream does not offer STARTTLS; set tls = \"tls\" for port 465 or fix the upstream"}
		}
		if err := tp.PrintfLine("STARTTLS"); err != nil {
			return "", k.protoFail(ctx, "starttls", err, "no reply to STARTTLS", c.command)
		}
		code, msg, err := tp.ReadResponse(220)
		if err != nil {
			return "", k.protoFail(ctx, "starttls", err, "no reply to STARTTLS", c.command)
		}
		// Bytes already waiting were sent before the handshake by someone
		// who hoped we would read them as if they came over TLS.
		if tp.R.Buffered() > 0 {
			return "", &Error{Upstream: k.up.cfg.Address, Op: "starttls",
				Text: "the upstream sent data right after agreeing to STARTTLS (possible injection by a middlebox); refusing the session"}
		}
		return fmt.Sprintf("%d %s", code, text.OneLine(msg)), nil
	})
}

// auth logs in with upstream.auth's mechanism; by default PLAIN, or LOGIN
// where PLAIN is not offered.
func (c *Client) auth(ctx context.Context, k *conn, nc net.Conn) (string, *Error) {
	up := k.up
	authErr := func(text string) *Error {
		return &Error{Upstream: up.cfg.Address, Op: "auth", Text: text}
	}
	if _, isTLS := nc.(*tls.Conn); !isTLS && !up.cfg.Insecure {
		return "", authErr("refusing to send the password over an unencrypted connection")
	}
	ok, mechs := k.sc.Extension("AUTH")
	if !ok {
		return "", authErr(fmt.Sprintf("upstream does not offer AUTH; remove %s.username or check the relay (many offer AUTH only on port 587)", up.key))
	}
	if isBearerMech(up.mech) {
		return c.bearerAuth(ctx, k, nc, mechs)
	}
	var client sasl.Client
	mech := ""
	switch {
	case up.mech == AuthLogin && hasWord(mechs, sasl.Login):
		client, mech = &loginClient{user: up.cfg.Username, pass: up.password}, sasl.Login
	case up.mech == AuthLogin:
		return "", authErr(fmt.Sprintf("upstream offers AUTH %s, not LOGIN (%s.auth = \"login\")", mechs, up.key))
	case up.mech == AuthPlain && !hasWord(mechs, sasl.Plain):
		return "", authErr(fmt.Sprintf("upstream offers AUTH %s, not PLAIN (%s.auth = \"plain\")", mechs, up.key))
	case hasWord(mechs, sasl.Plain):
		client, mech = sasl.NewPlainClient("", up.cfg.Username, up.password), sasl.Plain
	case hasWord(mechs, sasl.Login):
		client, mech = &loginClient{user: up.cfg.Username, pass: up.password}, sasl.Login
	default:
		return "", authErr(fmt.Sprintf("upstream offers AUTH %s but relaybox speaks only PLAIN and LOGIN", mechs))
	}
	if err := k.sc.Auth(client); err != nil {
		e := k.fail(ctx, "auth", err, c.command)
		if e.Code == 535 {
			e.Text += fmt.Sprintf(" (check %s.username and the password in %s.password_file)", up.key, up.key)
		}
		return "", e
	}
	return fmt.Sprintf("%s as %s", mech, up.cfg.Username), nil
}

// conn is one session; it implements Conn.
type conn struct {
	client *Client
	up     *upstream
	sc     *smtp.Client
	nc     net.Conn   // what sc talks over (TLS, if any), for deadlines and a polite close
	raw    net.Conn   // the socket, closed directly to abort: no close_notify to a stuck peer
	batch  *batchConn // between nc's TLS and raw; nil without TLS
	// broken is set once the session is in an unknown state (network error,
	// cancelled, 421); the scheduler then drops it. Atomic because a
	// context's AfterFunc sets it from another goroutine.
	broken atomic.Bool
	closed bool
	token  string // the bearer token this session logs in with
}

var _ Conn = (*conn)(nil)

// Upstream implements Conn.
func (k *conn) Upstream() string { return k.up.cfg.Address }

// watch closes the socket when ctx ends, which unblocks any read or write
// in go-smtp; the caller defers the returned stop.
func (k *conn) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		k.broken.Store(true)
		k.raw.Close()
	})
}

// fail maps any error from a step to an Error and decides whether the
// session survives it: an SMTP reply leaves it usable (but 421, by which
// the server announces it is closing), anything else does not.
func (k *conn) fail(ctx context.Context, op string, err error, timeout time.Duration) *Error {
	return k.protoFail(ctx, op, err, "no reply", timeout)
}

func (k *conn) protoFail(ctx context.Context, op string, err error, what string, timeout time.Duration) *Error {
	addr := k.up.cfg.Address
	var pe *textproto.Error
	if errors.As(err, &pe) {
		err = fromProto(pe)
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if se.Code == 421 { // RFC 5321 3.8: the server is closing the channel
			k.broken.Store(true)
		}
		return replyError(addr, op, se)
	}
	k.broken.Store(true)
	if ctx.Err() != nil {
		return &Error{Upstream: addr, Op: op, Text: "interrupted: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	var garbled textproto.ProtocolError
	if errors.As(err, &garbled) {
		return &Error{Upstream: addr, Op: op, Text: "garbled reply: " + err.Error() + " (is this an SMTP server?)", Err: err}
	}
	return &Error{Upstream: addr, Op: op, Text: describeNet(addr, what, timeout, err), Err: err}
}

func (k *conn) unusable(op string) *Error {
	return &Error{Upstream: k.up.cfg.Address, Op: op, Text: "session is unusable after an earlier error"}
}

// Send implements Conn. Before MAIL it refuses, without uploading, what
// the upstream said in its EHLO it will not take: a message over its SIZE
// limit, an 8-bit body without 8BITMIME, a UTF-8 address without SMTPUTF8.
// Those are permanent (RFC 1870, 6152, 6531: never silently downgraded).
func (k *conn) Send(ctx context.Context, msg Outgoing, body io.Reader) ([]RcptResult, error) {
	if k.broken.Load() || k.closed {
		return nil, k.unusable("mail")
	}
	addr := k.up.cfg.Address
	from, rcpts := msg.From, msg.Rcpts
	if len(rcpts) == 0 {
		return nil, &Error{Upstream: addr, Op: "rcpt", Text: "no recipients to send to"}
	}
	// A CR or LF in an address would inject commands; go-smtp refuses such
	// lines too, but only after part of the transaction is on the wire.
	addrs := append([]string{from}, rcpts...)
	for _, a := range addrs {
		if strings.ContainsAny(a, "\r\n") {
			return nil, &Error{Upstream: addr, Op: "mail", Text: fmt.Sprintf("address %q contains CR or LF; not sent", a)}
		}
	}
	if e := k.refuseBeforeMail(msg); e != nil {
		return nil, e
	}
	stop := k.watch(ctx)
	defer stop()

	// go-smtp adds BODY=8BITMIME whenever the upstream offers it, and
	// SIZE= when the upstream offers SIZE.
	opts := &smtp.MailOptions{Size: msg.Size}
	utf8, _ := k.sc.Extension("SMTPUTF8")
	opts.UTF8 = utf8 && (msg.SMTPUTF8 || !allASCII(addrs))

	results := make([]RcptResult, len(rcpts))
	var firstTemp, firstPerm *Error
	sendable := 0
	for i, to := range rcpts {
		results[i].Address = to
		if !utf8 && !allASCII([]string{to}) {
			e := k.localRefusal("rcpt", 553, "5.6.7", fmt.Sprintf(
				"not sent to %s: the address is UTF-8 and %s does not offer SMTPUTF8 (RFC 6531 allows no downgrade); ask the relay's admin to enable SMTPUTF8, or use an ASCII address",
				to, addr))
			results[i].Err = e
			if firstPerm == nil {
				firstPerm = e
			}
			continue
		}
		sendable++
	}
	if sendable == 0 {
		return results, firstPerm // nothing to open a transaction for
	}
	if err := k.sc.Mail(from, opts); err != nil {
		return nil, k.fail(ctx, "mail", err, k.client.command)
	}

	accepted := 0
	for i, to := range rcpts {
		if results[i].Err != nil {
			continue // refused above
		}
		if err := k.sc.Rcpt(to, nil); err != nil {
			e := k.fail(ctx, "rcpt", err, k.client.command)
			if k.broken.Load() {
				// The rest were never asked: they share the session's fate.
				for j := i; j < len(rcpts); j++ {
					results[j] = RcptResult{Address: rcpts[j], Err: e}
				}
				return results, e
			}
			results[i].Err = e
			if e.Permanent && firstPerm == nil {
				firstPerm = e
			} else if !e.Permanent && firstTemp == nil {
				firstTemp = e
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		// A temporary refusal among them means retrying may still help.
		if firstTemp != nil {
			return results, firstTemp
		}
		return results, firstPerm
	}

	w, err := k.sc.Data()
	if err != nil {
		return results, k.fail(ctx, "data", err, k.client.command)
	}
	// The body goes straight to the connection, dot-stuffed by us in large
	// writes (see dotStuffer); go-smtp's DotWriter has written nothing, so
	// its buffer is empty and Close below adds the final "\r\n.\r\n".
	// go-smtp sets no deadline while the body streams, so each write gets
	// one here; a relay that stops reading cannot hang us forever.
	dw := &deadlineWriter{nc: k.nc, batch: k.batch, d: k.client.command}
	ds := newDotStuffer(dw)
	defer ds.release()
	// io.Copy takes the spool reader's WriteTo: its steps go straight into
	// the stuffer, with no copy through an intermediate buffer.
	_, err = io.Copy(ds, body)
	if err == nil {
		err = ds.Finish()
	}
	if err != nil {
		// The dot is never sent after a partial body: that would deliver a
		// truncated message. Dropping the session aborts the transaction.
		k.broken.Store(true)
		k.raw.Close()
		if dw.err == nil { // every write went out: reading the body failed
			return results, &Error{Upstream: addr, Op: "data", Text: "reading the message body: " + err.Error(), Err: err}
		}
		return results, k.fail(ctx, "data", err, k.client.command)
	}
	k.nc.SetWriteDeadline(time.Now().Add(k.client.command))
	resp, err := w.CloseWithResponse()
	if err != nil {
		return results, k.fail(ctx, "dot", err, k.client.data)
	}
	// go-smtp has checked the code (250) and hands back the text after it.
	reply := "250 " + text.OneLine(resp.StatusText)
	for i := range results {
		if results[i].Err == nil {
			results[i].Reply = reply
		}
	}
	return results, nil
}

// refuseBeforeMail checks msg against what the upstream's EHLO offered.
func (k *conn) refuseBeforeMail(msg Outgoing) *Error {
	addr := k.up.cfg.Address
	if ok, v := k.sc.Extension("SIZE"); ok && msg.Size > 0 {
		// RFC 1870: SIZE without a number, or 0, means no fixed limit.
		if limit, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && limit > 0 && msg.Size > limit {
			return k.localRefusal("mail", 552, "5.3.4", fmt.Sprintf(
				"not sent: the message is %d bytes and %s accepts at most %d (its EHLO SIZE); nothing was uploaded. Send a smaller file, or ask the relay's admin to raise the limit",
				msg.Size, addr, limit))
		}
	}
	if ok, _ := k.sc.Extension("8BITMIME"); msg.EightBit && !ok {
		return k.localRefusal("mail", 554, "5.6.3", fmt.Sprintf(
			"not sent: the message holds 8-bit text and %s does not offer 8BITMIME; relaybox does not convert it (RFC 6152). Ask the relay's admin to enable 8BITMIME, or set the device to encode its mail (quoted-printable or base64)",
			addr))
	}
	if ok, _ := k.sc.Extension("SMTPUTF8"); !ok && !allASCII([]string{msg.From}) {
		return k.localRefusal("mail", 553, "5.6.7", fmt.Sprintf(
			"not sent: the sender %s is a UTF-8 address and %s does not offer SMTPUTF8 (RFC 6531 allows no downgrade); set an ASCII sender (policy.sender) or ask the relay's admin to enable SMTPUTF8",
			msg.From, addr))
	}
	return nil
}

// localRefusal is a permanent failure relaybox decides from the upstream's
// EHLO, reported like the reply the upstream would have given.
func (k *conn) localRefusal(op string, code int, enhanced, text string) *Error {
	return &Error{Upstream: k.up.cfg.Address, Op: op, Code: code, Enhanced: enhanced, Text: text, Permanent: true}
}

// Reset implements Conn. After any error that left the session in an
// unknown state it refuses, so the caller drops the session.
func (k *conn) Reset(ctx context.Context) error {
	if k.broken.Load() || k.closed {
		return k.unusable("rset")
	}
	stop := k.watch(ctx)
	defer stop()
	if err := k.sc.Reset(); err != nil {
		e := k.fail(ctx, "rset", err, k.client.command)
		k.broken.Store(true) // a relay that refuses RSET is not worth another message
		return e
	}
	return nil
}

// Close implements Conn: QUIT when the session is healthy, then close.
func (k *conn) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	c := k.raw
	if !k.broken.Load() {
		k.sc.CommandTimeout = min(k.client.command, quitTimeout)
		_ = k.sc.Quit() // best effort: the message outcomes are already known
		c = k.nc
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("deliver: close %s: %w", k.up.cfg.Address, err)
	}
	return nil
}
