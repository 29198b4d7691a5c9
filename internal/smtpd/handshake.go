package smtpd

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Implicit-TLS handshakes cost the box real CPU (a signature each) and
// happen before the client has said anything useful, so at most
// maxHandshakes run at once, at most a quarter of them from one address,
// and each has stress_timeout from the connection's start (a real one takes
// well under a second). A connection past a limit is closed at once, like
// any refusal on the TLS port.
const maxHandshakes = 16

// handshakeSlots counts the handshakes in progress on one listener.
type handshakeSlots struct {
	mu     sync.Mutex
	n      int
	per    map[netip.Addr]int
	max    int
	perMax int
}

func newHandshakeSlots(max int) *handshakeSlots {
	return &handshakeSlots{per: map[netip.Addr]int{}, max: max, perMax: (max + 3) / 4}
}

// handshake is one implicit-TLS connection's claim on a handshake slot.
type handshake struct {
	pending atomic.Bool
	once    sync.Once
	slots   *handshakeSlots
	ip      netip.Addr
}

// try claims a slot for ip, or returns nil when the limits are reached.
func (s *handshakeSlots) try(ip netip.Addr) *handshake {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n >= s.max || s.per[ip] >= s.perMax {
		return nil
	}
	s.n++
	s.per[ip]++
	h := &handshake{slots: s, ip: ip}
	h.pending.Store(true)
	return h
}

// done gives the slot back; the first call counts.
func (h *handshake) done() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.pending.Store(false)
		s := h.slots
		s.mu.Lock()
		s.n--
		if s.per[h.ip]--; s.per[h.ip] <= 0 {
			delete(s.per, h.ip)
		}
		s.mu.Unlock()
	})
}

// inProgress reports whether the handshake has not finished yet.
func (h *handshake) inProgress() bool { return h != nil && h.pending.Load() }

// tlsRecordWritten notes a write of TLS records on an implicit-TLS
// connection. crypto/tls writes the server's handshake flight in one go,
// starting with a handshake record (type 22); the first write that starts
// with an application-data record (type 23: session tickets or the
// greeting) comes after it, once the costly part is over.
func (c *deviceConn) tlsRecordWritten(p []byte) {
	if len(p) > 0 && p[0] == 23 && c.hs.inProgress() {
		c.hs.done()
	}
}
