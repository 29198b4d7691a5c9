// Package smtpd is the LAN listener devices talk to: a go-smtp backend that
// checks each client's network and each recipient against the relay policy,
// and streams DATA, normalised to CRLF and with the headers a device forgot,
// into the spool. It answers 250 only after the spool has committed and
// fsynced the message.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/policy"
	"relaybox/internal/spool"
	"relaybox/internal/throttle"
)

// Store is the part of the spool the listener needs (SpoolStore adapts a
// *spool.Spool to it).
type Store interface {
	Create(env spool.Envelope) (MessageWriter, error)
}

// MessageWriter is the part of *spool.Writer a session uses: it takes the
// body and commits or aborts it. An interface so that the receive path can
// be measured without a disk (BenchmarkReceive).
type MessageWriter interface {
	io.Writer
	ID() string
	MarkEightBit()
	Hold(reason string)
	Commit() (*spool.Message, error)
	Abort() error
}

// SpoolStore is the Store of a spool.
func SpoolStore(sp *spool.Spool) Store { return spoolStore{sp} }

type spoolStore struct{ sp *spool.Spool }

func (s spoolStore) Create(env spool.Envelope) (MessageWriter, error) {
	w, err := s.sp.Create(env)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Options configure a Server. Rules, Networks and Store are required.
type Options struct {
	Hostname       string
	Rules          *policy.Rules
	Networks       *policy.Networks
	Store          Store
	Sender         string // policy.sender: rewrite every envelope sender to this
	MaxMessageSize int64
	MaxRecipients  int
	MaxConnections int
	IdleTimeout    time.Duration
	// Time limits on slow clients (deadline.go); zero values take the
	// defaults there.
	CommandTimeout time.Duration // one command line
	SessionTimeout time.Duration // a whole session, plus its bytes at MinDataRate
	MinDataRate    int64         // bytes a second a DATA body must keep up
	StressTimeout  time.Duration // every limit when all slots are taken
	Now            func() time.Time
	Logger         *slog.Logger
	Auth           AuthOptions // device AUTH; the zero value is mode off
	// AuthRequired: clients in these networks must AUTH before MAIL
	// (530 5.7.0 otherwise); nil requires it of no one.
	AuthRequired *policy.Networks
	// AuthGuard limits password checks per client address across
	// connections; nil builds one with throttle's defaults and Now.
	AuthGuard *throttle.Guard
	// Devices name known devices (matched by network or AUTH user) and
	// may give each its own sender rewrite.
	Devices []Device
	// RewriteFromHeader: when the envelope sender was rewritten, a From:
	// header with an unqualified address (root@localhost, scanner@printer)
	// gets the rewritten address too, keeping its display name.
	RewriteFromHeader bool

	// Flood limits per client address; zero values mean no limit.
	PerClientConnections int     // open connections; one more gets 421 4.7.0
	PerClientRate        float64 // messages (MAIL commands) per second, sustained
	PerClientBurst       int     // messages allowed at once; 1 if PerClientRate is set and this is not
	// Duplicates: a client's copies of one message (same sender,
	// recipients and body) past DuplicateMax within DuplicateWindow are
	// stored with state held instead of queued. A zero DuplicateWindow or
	// DuplicateMax switches this off.
	DuplicateMax    int
	DuplicateWindow time.Duration
	// TLS, when set, offers STARTTLS on Serve's listeners and is what
	// ServeTLS handshakes with (LoadTLS builds it).
	TLS *tls.Config
	// InTransaction, when set, counts the sessions between an accepted MAIL
	// and the end of their transaction; the spool reads it to let
	// concurrent commits share one fsync.
	InTransaction *atomic.Int32
	// OnAccepted runs after a message is committed (wake the scheduler,
	// count it). It must not block.
	OnAccepted func(*spool.Message)
}

// Server is the LAN SMTP listener.
type Server struct {
	opt     Options // as New got them; the fields Reconfigure changes are read from cur
	smtp    *smtp.Server
	log     *slog.Logger
	cur     atomic.Pointer[live]
	guard   *throttle.Guard
	slots   *slots
	reports *throttle.Reports

	// inData counts sessions inside DATA, so Shutdown can wait for their
	// commits before the caller closes the spool.
	inData sync.WaitGroup
}

// live is the part of a Server that Reconfigure replaces. Each session
// takes the one current when it connects and keeps it to its end, so a
// reload never changes the rules under a transaction in flight.
type live struct {
	opt     Options
	auth    *authenticator
	devices devices
	rate    *rateLimiter
	dupes   *dupTracker
}

// newLive checks the options Reconfigure may change and builds their state.
// prev, when set, lends its rate buckets and duplicate history to a new
// live whose limits did not change, so a reload does not forgive a flood.
func newLive(opt Options, prev *live) (*live, error) {
	if opt.Rules == nil || opt.Networks == nil {
		return nil, errors.New("smtpd: Rules and Networks are required")
	}
	auth, err := newAuthenticator(opt.Auth)
	if err != nil {
		return nil, err
	}
	devs, err := newDevices(opt.Devices)
	if err != nil {
		return nil, err
	}
	if opt.Sender != "" {
		if _, err := policy.ParseAddress(opt.Sender); err != nil {
			return nil, fmt.Errorf("smtpd: sender %q: %w", opt.Sender, err)
		}
	}
	if opt.PerClientRate < 0 || opt.PerClientBurst < 0 || opt.PerClientConnections < 0 ||
		opt.DuplicateMax < 0 || opt.DuplicateWindow < 0 {
		return nil, errors.New("smtpd: flood and duplicate limits must not be negative")
	}
	l := &live{opt: opt, auth: auth, devices: devs}
	if prev != nil && prev.opt.PerClientRate == opt.PerClientRate && prev.opt.PerClientBurst == opt.PerClientBurst {
		l.rate = prev.rate
	} else {
		l.rate = newRateLimiter(opt.PerClientRate, opt.PerClientBurst, opt.Now)
	}
	if prev != nil && prev.opt.DuplicateMax == opt.DuplicateMax && prev.opt.DuplicateWindow == opt.DuplicateWindow {
		l.dupes = prev.dupes
	} else {
		l.dupes = newDupTracker(opt.DuplicateMax, opt.DuplicateWindow, opt.Now)
	}
	return l, nil
}

// Reconfigure replaces the policy while the listener runs: Rules, Networks,
// Sender, RewriteFromHeader, Devices, Auth, AuthRequired, the flood limits
// and the duplicate limits of opt. New connections get them; open sessions finish
// under the ones they started with. The other fields (Hostname, Store,
// TLS, sizes, timeouts, hooks) stay as New set them.
func (s *Server) Reconfigure(opt Options) error {
	cur := s.cur.Load()
	next := cur.opt
	next.Rules, next.Networks = opt.Rules, opt.Networks
	next.Sender, next.RewriteFromHeader = opt.Sender, opt.RewriteFromHeader
	next.Devices, next.Auth, next.AuthRequired = opt.Devices, opt.Auth, opt.AuthRequired
	next.PerClientConnections, next.PerClientRate, next.PerClientBurst = opt.PerClientConnections, opt.PerClientRate, opt.PerClientBurst
	next.DuplicateMax, next.DuplicateWindow = opt.DuplicateMax, opt.DuplicateWindow
	l, err := newLive(next, cur)
	if err != nil {
		return err
	}
	s.slots.perClient.Store(int64(next.PerClientConnections))
	s.cur.Store(l)
	return nil
}

// New checks the options and builds a Server.
func New(opt Options) (*Server, error) {
	if opt.Rules == nil || opt.Networks == nil || opt.Store == nil {
		return nil, errors.New("smtpd: Rules, Networks and Store are required")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.MaxConnections <= 0 {
		opt.MaxConnections = 100
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 5 * time.Minute
	}
	if opt.Hostname == "" {
		opt.Hostname = "relaybox"
	}
	if opt.AuthGuard == nil {
		opt.AuthGuard = throttle.New(throttle.Options{Now: opt.Now})
	}
	l, err := newLive(opt, nil)
	if err != nil {
		return nil, err
	}
	reports := throttle.NewReports(time.Minute, opt.Now)
	t := Timeouts{Idle: opt.IdleTimeout, Command: opt.CommandTimeout, Session: opt.SessionTimeout,
		MinDataRate: opt.MinDataRate, Stress: opt.StressTimeout}
	t.defaults()
	s := &Server{opt: opt, log: opt.Logger, guard: opt.AuthGuard, reports: reports,
		slots: &slots{t: t, max: opt.MaxConnections, log: opt.Logger, reports: reports, now: opt.Now}}
	s.slots.perClient.Store(int64(opt.PerClientConnections))
	s.cur.Store(l)
	srv := smtp.NewServer(&backend{s: s})
	// The LAN listener is plaintext by design and devices send their
	// credentials in clear; without this go-smtp refuses AUTH with 523.
	srv.AllowInsecureAuth = true
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = opt.MaxMessageSize
	// Body lines have no length limit of their own: nothing on the way to
	// the spool holds a line in memory, max_message_size bounds the whole,
	// and deliver folds lines over 998 octets for the upstream. Devices
	// send long lines (a 5,000-character line is common in HTML mail).
	srv.MaxDataLineLength = -1
	// SMTPUTF8 (RFC 6531): UTF-8 local parts once MAIL says so (the policy
	// checks domains in their A-label form); deliver never downgrades.
	srv.EnableSMTPUTF8 = true
	srv.MaxRecipients = opt.MaxRecipients
	// Read deadlines are renewed per read by deviceConn; go-smtp only needs
	// a bound on writes to a client that stopped reading.
	srv.WriteTimeout = opt.IdleTimeout
	srv.ErrorLog = slogPrinter{opt.Logger}
	srv.TLSConfig = opt.TLS
	s.smtp = srv
	return s, nil
}

// Serve accepts devices on l until Shutdown. It wraps l with the network
// gate, the connection limit and the idle timeout.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, nil) }

// ServeTLS accepts devices speaking implicit TLS (port 465) on l, through
// the same gate as Serve. Options.TLS must be set.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opt.TLS == nil {
		return errors.New("smtpd: ServeTLS needs Options.TLS")
	}
	return s.serve(l, s.opt.TLS)
}

// serve runs go-smtp on l behind the gate; with implicit set, every
// accepted connection is a *tls.Conn, which go-smtp handshakes and reports
// as TLS.
func (s *Server) serve(l net.Listener, implicit *tls.Config) error {
	g := &gateListener{
		tls:      implicit,
		Listener: l,
		allowed:  func(ip netip.Addr) bool { return s.cur.Load().opt.Networks.Allowed(ip) },
		slots:    s.slots,
		idle:     s.opt.IdleTimeout,
		host:     s.opt.Hostname,
		log:      s.log,
		reports:  s.reports,
		refusing: make(chan struct{}, maxRefusing),
	}
	if implicit != nil {
		g.handshakes = newHandshakeSlots(maxHandshakes)
	}
	err := s.smtp.Serve(g)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets open sessions finish until ctx is done,
// then cuts the rest; it returns once no session is inside DATA, so the
// caller may close the spool. A session cut before its 250 loses nothing:
// the device still has the message and will send it again.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if err != nil {
		_ = s.smtp.Close()
	}
	s.inData.Wait()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("smtpd: sessions still open at shutdown were closed: %w", err)
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ip := netip.Addr{}
	if nc := c.Conn(); nc != nil {
		ip = remoteIP(nc)
	}
	return &session{
		s:      b.s,
		l:      b.s.cur.Load(),
		conn:   c,
		client: ip,
		helo:   policy.SanitizeHelo(c.Hostname()),
	}, nil
}

// slogPrinter adapts go-smtp's Printf logger to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.l.Info(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.l.Info(fmt.Sprint(v...)) }
