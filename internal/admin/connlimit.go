package admin

import (
	"net"
	"sync"
	"time"
)

// maxConns bounds the admin API's open connections. The API serves a
// technician and a few scripts; each idle keep-alive connection costs about
// 20 KB, and without a bound 5,000 of them took 100 MB on a box that may
// have 512 MB.
const maxConns = 64

// limitListener refuses connections past max with a 503, so the clients
// that are served keep their memory and goroutines.
type limitListener struct {
	net.Listener
	max int

	mu     sync.Mutex
	active int
}

// busyReply is written to a connection over the limit; the client has sent
// nothing yet, so this is its whole exchange.
const busyReply = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n" +
	"Content-Length: 39\r\n\r\ntoo many admin connections; try again\r\n"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		full := l.active >= l.max
		if !full {
			l.active++
		}
		l.mu.Unlock()
		if full {
			// A fresh socket's send buffer takes the reply at once.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write([]byte(busyReply))
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.active--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
