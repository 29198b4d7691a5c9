package smtpd

import (
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
		return &idleConn{Conn: c, idle: g.idle, release: g.release}, nil
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

// idleConn renews the read deadline on every read, so the idle timeout
// measures silence, not the length of a slow 50 MiB upload (go-smtp's own
// ReadTimeout is set once per command and would cut a long DATA short).
type idleConn struct {
	net.Conn
	idle    time.Duration
	release func()
	once    sync.Once
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
