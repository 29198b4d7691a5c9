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
)

// gateListener sits between net.Listener and go-smtp: go-smtp greets with
// 220 before any backend hook runs, so refusing a client outside
// listen.allowed_networks with 554, or one connection too many with 421,
// has to happen here, before the connection reaches it.
type gateListener struct {
	net.Listener
	// tls: an implicit-TLS listener. Refusals are sent inside TLS, and
	// accepted connections come out as *tls.Conn over a raw idleConn.
	tls       *tls.Config
	allowed   func(netip.Addr) bool
	max       int        // all clients together
	perClient func() int // one client address; 0 = no limit of its own (read per connection: a reload may change it)
	idle      time.Duration
	host      string
	log       *slog.Logger
	now       func() time.Time

	mu     sync.Mutex
	active int
	// clients counts open connections per client address; an address
	// leaves the map when its last connection closes.
	clients map[netip.Addr]int
	// warned rate-limits the "too many connections from" log line to one
	// per client every perClientLogEvery, so a device reconnecting in a
	// tight loop cannot flood the log.
	warned map[netip.Addr]time.Time
}

const perClientLogEvery = time.Minute

func (g *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !g.allowed(ip) {
			g.log.Warn("refused client outside allowed networks", "client", ip.String(),
				"hint", "add its network to listen.allowed_networks if it is a device of yours")
			go g.refuse(c, fmt.Sprintf("554 5.7.1 %s: %s is not allowed to use this relay\r\n", g.host, ip))
			continue
		}
		full, clientFull, warn, open, limit := g.admit(ip)
		if full {
			g.log.Warn("refused client: too many connections", "client", ip.String(), "max", g.max)
			go g.refuse(c, fmt.Sprintf("421 4.7.0 %s: too many connections, try again later\r\n", g.host))
			continue
		}
		if clientFull {
			if warn {
				g.log.Warn("refused client: too many connections from this client", "client", ip.String(),
					"open", open, "max", limit,
					"hint", "a device stuck in a reconnect loop; raise listen.per_client_connections if it is only busy")
			}
			go g.refuse(c, fmt.Sprintf("421 4.7.0 %s: too many connections from %s, try again later\r\n", g.host, ip))
			continue
		}
		ic := newIdleConn(c, ip, g.idle, func() { g.release(ip) }, g.log)
		if g.tls == nil {
			return ic, nil
		}
		// Raw from the first byte: no ClientHello probe, no line-ending
		// learning and no command mending below TLS; go-smtp handshakes.
		ic.stream.phase, ic.started, ic.mode = phaseRaw, true, eolCRLF
		return tls.Server(ic, g.tls), nil
	}
}

// limit is the per-client connection limit now; 0 = none.
func (g *gateListener) limit() int {
	if g.perClient == nil {
		return 0
	}
	return g.perClient()
}

// admit counts a new connection from ip unless a limit is reached.
func (g *gateListener) admit(ip netip.Addr) (full, clientFull, warn bool, open, limit int) {
	limit = g.limit()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active >= g.max {
		return true, false, false, 0, limit
	}
	open = g.clients[ip]
	if limit > 0 && open >= limit {
		now := g.now()
		if last, ok := g.warned[ip]; !ok || now.Sub(last) >= perClientLogEvery {
			if g.warned == nil {
				g.warned = map[netip.Addr]time.Time{}
			}
			g.warned[ip] = now
			warn = true
		}
		return false, true, warn, open, limit
	}
	if g.clients == nil {
		g.clients = map[netip.Addr]int{}
	}
	g.active++
	g.clients[ip]++
	return false, false, false, open + 1, limit
}

func (g *gateListener) release(ip netip.Addr) {
	g.mu.Lock()
	g.active--
	if g.clients[ip]--; g.clients[ip] <= 0 {
		delete(g.clients, ip)
		delete(g.warned, ip)
	}
	g.mu.Unlock()
}

// refuse answers one line and closes, without waiting long on a client
// that does not read (or, on an implicit-TLS listener, does not finish
// its handshake: the reply is only readable inside TLS).
func (g *gateListener) refuse(c net.Conn, line string) {
	if g.tls != nil {
		c = tls.Server(c, g.tls)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(line))
	_ = c.Close()
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

	started bool // at least one byte read
	mode    eolMode
	readCR  bool // while learning mode: the last byte read was a CR
	prevCR  bool // lfOnly: the last byte handed on by handOnText was a CR

	in   byteQueue // client bytes, as sent, not yet handed on
	out  []byte    // a mended command line, handed on before in
	rerr error     // the read error to return once in is drained

	stream streamState
	reply  replyState
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
	// go-smtp only ends DATA on CRLF.CRLF, so for this session every bare
	// LF in a command line or DATA body becomes CRLF before go-smtp sees
	// it (handOnText). A client that speaks CRLF never gets this
	// treatment, so "\n.\n" cannot end its DATA (that is the SMTP
	// smuggling hole; Exim 4.97.1 draws the same line). A BDAT chunk,
	// counted in bytes, and everything after STARTTLS (phaseRaw) pass
	// untranslated.
	eolLFOnly
)

func (c *idleConn) Close() error {
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
