package smtpd

import (
	"sync"
	"sync/atomic"
)

// Implicit-TLS handshakes cost the box real CPU (a signature each) and
// happen before the client has said anything useful, so at most
// maxHandshakes run at once; a connection past that is closed at once, like
// any refusal on the TLS port. A handshake also has the command limit
// (stress_timeout under stress) from the connection's start.
const maxHandshakes = 16

// handshake is one implicit-TLS connection's claim on a handshake slot.
type handshake struct {
	pending atomic.Bool
	once    sync.Once
	slots   chan struct{}
}

// tryHandshake claims a slot from slots, or returns nil when all are taken.
func tryHandshake(slots chan struct{}) *handshake {
	select {
	case slots <- struct{}{}:
		h := &handshake{slots: slots}
		h.pending.Store(true)
		return h
	default:
		return nil
	}
}

// done gives the slot back; the first call counts.
func (h *handshake) done() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.pending.Store(false)
		<-h.slots
	})
}

// inProgress reports whether the handshake has not finished yet.
func (h *handshake) inProgress() bool { return h != nil && h.pending.Load() }

// tlsRecordWritten notes a write of TLS records on an implicit-TLS
// connection. crypto/tls writes the server's handshake flight in one go,
// starting with a handshake record (type 22); the first write that starts
// with an application-data record (type 23: session tickets or the
// greeting) comes after it, once the costly part is over.
func (c *idleConn) tlsRecordWritten(p []byte) {
	if len(p) > 0 && p[0] == 23 && c.hs.inProgress() {
		c.hs.done()
	}
}
