package smtpd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
	// *tls.Conn over a raw deviceConn; refused ones are closed before any
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
		ic := newDeviceConn(c, ip, g.idle, nil, g.log)
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
