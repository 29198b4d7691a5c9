package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// gateListener sits between net.Listener and go-smtp: go-smtp greets with
// 220 before any backend hook runs, so refusing a client outside
// listen.allowed_networks with 554, or one connection too many with 421,
// has to happen here, before the connection reaches it.
type gateListener struct {
	net.Listener
	allowed func(netip.Addr) bool
	max     int
	idle    time.Duration
	host    string
	log     *slog.Logger

	mu     sync.Mutex
	active int
}

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
			go refuse(c, fmt.Sprintf("554 5.7.1 %s: %s is not allowed to use this relay\r\n", g.host, ip))
			continue
		}
		g.mu.Lock()
		full := g.active >= g.max
		if !full {
			g.active++
		}
		g.mu.Unlock()
		if full {
			g.log.Warn("refused client: too many connections", "client", ip.String(), "max", g.max)
			go refuse(c, fmt.Sprintf("421 4.7.0 %s: too many connections, try again later\r\n", g.host))
			continue
		}
		return &idleConn{Conn: c, idle: g.idle, release: g.release, log: g.log}, nil
	}
}

func (g *gateListener) release() {
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
}

// refuse answers one line and closes, without waiting long on a client
// that does not read.
func refuse(c net.Conn, line string) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
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
// cut a long DATA short). It also learns the client's line ending from its
// first line, and refuses a TLS handshake sent to this plaintext port.
type idleConn struct {
	net.Conn
	idle    time.Duration
	release func()
	once    sync.Once
	log     *slog.Logger

	started bool // at least one byte read
	mode    eolMode
	prevCR  bool   // lfOnly: the last byte handed on was a CR
	pending []byte // lfOnly: translated bytes not yet returned
	scratch []byte
}

type eolMode int

const (
	eolUnknown eolMode = iota
	eolCRLF
	// eolLFOnly: the client ended its first line with a bare LF. Such
	// devices end every line, the final "." included, with LF alone, and
	// go-smtp only ends DATA on CRLF.CRLF, so for this session every bare
	// LF becomes CRLF before go-smtp sees it. A client that speaks CRLF
	// never gets this treatment, so "\n.\n" cannot end its DATA (that is
	// the SMTP smuggling hole; Exim 4.97.1 draws the same line).
	// Inbound STARTTLS, if it is ever offered, must switch this off.
	eolLFOnly
)

// errTLSOnPlain ends a session whose first bytes are a TLS handshake.
var errTLSOnPlain = errors.New("smtpd: TLS handshake on the plaintext SMTP port")

func (c *idleConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	if !c.started {
		c.started = true
		// 0x16 is a TLS handshake record: a ClientHello. Typically an MFP
		// set to "SSL/TLS" (implicit TLS) pointed at a plain port.
		if p[0] == 0x16 {
			c.log.Warn("client started a TLS handshake on the plaintext SMTP port; closing",
				"client", remoteIP(c.Conn).String(),
				"hint", "set the device's SMTP security to none (plain SMTP) for this relay, not SSL/TLS")
			return 0, errTLSOnPlain
		}
	}
	if c.mode == eolUnknown {
		if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
			c.mode = eolCRLF
			if i == 0 || p[i-1] != '\r' {
				c.mode = eolLFOnly
				c.log.Debug("client ends lines with bare LF; LF ends lines for this session",
					"client", remoteIP(c.Conn).String())
			}
		}
	}
	if c.mode != eolLFOnly {
		return n, err
	}
	// Translate bare LF to CRLF; the result may be longer than p, so the
	// rest waits in pending for the next Read.
	out := c.scratch[:0]
	for _, b := range p[:n] {
		if b == '\n' && !c.prevCR {
			out = append(out, '\r')
		}
		out = append(out, b)
		c.prevCR = b == '\r'
	}
	c.scratch = out
	k := copy(p, out)
	c.pending = out[k:]
	return k, err
}

func (c *idleConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
