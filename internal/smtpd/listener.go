package smtpd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"relaybox/internal/throttle"
)

// gateListener sits between net.Listener and go-smtp: go-smtp greets with
// 220 before any backend hook runs, so refusing a client outside
// listen.allowed_networks with 554, or one connection too many with 421,
// has to happen here, before the connection reaches it.
type gateListener struct {
	net.Listener
	// tls: an implicit-TLS listener. Accepted connections come out as
	// *tls.Conn over a raw idleConn; refused ones are closed before any
	// TLS work, since a refusal is only readable after a handshake that
	// costs the box more than the client.
	tls     *tls.Config
	allowed func(netip.Addr) bool
	slots   *slots // shared by all listeners of a Server
	idle    time.Duration
	host    string
	log     *slog.Logger
	reports *throttle.Reports
	// refusing bounds the goroutines writing refusals at once; past it a
	// refused connection is closed without a reply.
	refusing chan struct{}
	// handshakes bounds implicit-TLS handshakes in progress (handshake.go).
	handshakes *handshakeSlots
}

// maxRefusing: refusals being written at once. Each waits at most
// refuseTimeout for a client that does not read.
const (
	maxRefusing   = 64
	refuseTimeout = 5 * time.Second
)

func (g *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !g.allowed(ip) {
			if r := g.reports.Note("outside", ip); r.Log {
				g.log.Warn("refused client outside allowed networks", "client", ip.String(), "not_logged", r.Suppressed,
					"hint", "add its network to listen.allowed_networks if it is a device of yours")
			}
			g.refuse(c, fmt.Sprintf("554 5.7.1 %s: %s is not allowed to use this relay\r\n", g.host, ip))
			continue
		}
		verdict, open := g.slots.admit(ip)
		switch verdict {
		case refusedFull:
			if r := g.reports.Note("full", ip); r.Log {
				g.log.Warn("refused client: too many connections", "client", ip.String(), "max", g.slots.max,
					"not_logged", r.Suppressed)
			}
			g.refuse(c, fmt.Sprintf("421 4.7.0 %s: too many connections, try again later\r\n", g.host))
			continue
		case refusedClient, refusedShare:
			if r := g.reports.Note("client", ip); r.Log {
				limit := int(g.slots.perClient.Load())
				hint := "a device stuck in a reconnect loop; raise listen.per_client_connections if it is only busy"
				if verdict == refusedShare {
					limit = max(1, g.slots.max/4)
					hint = "stress mode: every slot was taken, so one address may hold a quarter of them"
				}
				g.log.Warn("refused client: too many connections from this client", "client", ip.String(),
					"open", open, "max", limit, "not_logged", r.Suppressed, "hint", hint)
			}
			g.refuse(c, fmt.Sprintf("421 4.7.0 %s: too many connections from %s, try again later\r\n", g.host, ip))
			continue
		}
		ic := newIdleConn(c, ip, g.idle, nil, g.log)
		ic.host = g.host
		ic.limits = g.slots
		ic.release = func() { g.slots.release(ic) }
		g.slots.track(ic)
		if g.tls == nil {
			return ic, nil
		}
		if ic.hs = g.handshakes.try(ip); ic.hs == nil {
			if r := g.reports.Note("handshakes", ip); r.Log {
				g.log.Warn("refused client: too many TLS handshakes in progress", "client", ip.String(),
					"max", maxHandshakes, "not_logged", r.Suppressed)
			}
			_ = ic.Close()
			continue
		}
		// Raw from the first byte: no ClientHello probe, no line-ending
		// learning and no command mending below TLS; go-smtp handshakes.
		ic.stream.phase, ic.started, ic.mode = phaseRaw, true, eolCRLF
		return tls.Server(ic, g.tls), nil
	}
}

// refuse answers one line and closes, without waiting long on a client
// that does not read. On an implicit-TLS listener, or when maxRefusing
// refusals are already being written, it closes at once.
func (g *gateListener) refuse(c net.Conn, line string) {
	if g.tls != nil {
		_ = c.Close()
		return
	}
	select {
	case g.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-g.refusing }()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		_, _ = c.Write([]byte(line))
		_ = c.Close()
	}()
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// idleConn wraps each device connection. It renews the read deadline on
// every read, so the idle timeout measures silence, not the length of a slow
// 50 MiB upload (go-smtp's own ReadTimeout is set once per command and would
// cut a long DATA short). It learns the client's line ending from its first
// line, refuses a TLS handshake sent to this plaintext port, and mends the
// commands of devices that go-smtp would refuse (stream.go).
type idleConn struct {
	net.Conn
	idle    time.Duration
	release func()
	once    sync.Once
	log     *slog.Logger
	client  netip.Addr
	host    string // our name, for a reply idleConn writes itself

	started bool // at least one byte read
	mode    eolMode
	readCR  bool // while learning mode: the last byte read was a CR
	prevCR  bool // lfOnly: the last byte handed on by handOnText was a CR

	in   byteQueue // client bytes, as sent, not yet handed on
	out  []byte    // a mended command line, handed on before in
	rerr error     // the read error to return once in is drained

	stream streamState
	reply  replyState

	limits *slots // nil: only the idle timeout applies
	clock  clock
	hs     *handshake // implicit TLS: the handshake's slot until it is over
}

func newIdleConn(c net.Conn, ip netip.Addr, idle time.Duration, release func(), log *slog.Logger) *idleConn {
	return &idleConn{Conn: c, idle: idle, release: release, log: log, client: ip}
}

type eolMode int

const (
	eolUnknown eolMode = iota
	eolCRLF
	// eolLFOnly: the client ended its first line with a bare LF. Such
	// devices end every line, the final "." included, with LF alone, and
	// go-smtp only ends DATA on CR+ LF "." CR+ LF, so for this session
	// every bare LF in a command line or DATA body becomes CRLF before
	// go-smtp sees it (handOnText), and "\n.\n" ends DATA. A client that
	// speaks CRLF never gets this treatment, so "\n.\n" cannot end its
	// DATA (that is the SMTP smuggling hole; Exim 4.97.1 draws the same
	// line). Smuggling inside an LF session is stopped by the pipelining
	// rule instead (dropPipelinedAfterBody). A BDAT chunk, counted in
	// bytes, and everything after STARTTLS (phaseRaw) pass untranslated.
	eolLFOnly
)

func (c *idleConn) Close() error {
	c.hs.done()
	c.once.Do(c.release)
	return c.Conn.Close()
}

// byteQueue is a FIFO of bytes that reuses its array once drained.
type byteQueue struct {
	b   []byte
	off int
}

func (q *byteQueue) bytes() []byte { return q.b[q.off:] }
func (q *byteQueue) len() int      { return len(q.b) - q.off }

func (q *byteQueue) consume(n int) {
	q.off += n
	if q.off >= len(q.b) {
		q.b, q.off = q.b[:0], 0
	}
}

func (q *byteQueue) push(p []byte) {
	q.compact()
	q.b = append(q.b, p...)
}

// room returns at least n bytes of free space after the queued bytes, to
// read into; queued then adds the bytes read.
func (q *byteQueue) room(n int) []byte {
	q.compact()
	q.b = slices.Grow(q.b, n)
	return q.b[len(q.b):cap(q.b)]
}

func (q *byteQueue) queued(n int) { q.b = q.b[:len(q.b)+n] }

func (q *byteQueue) compact() {
	if q.off > 0 {
		n := copy(q.b, q.b[q.off:])
		q.b, q.off = q.b[:n], 0
	}
}
