package deliver

import (
	"net"
	"sync"
)

// batchConn sits between a tls.Conn and its socket. crypto/tls writes each
// record (at most 16 KiB of plaintext) to the socket on its own, so a
// 32 KiB body write costs two system calls, and as many trips through the
// TCP stack. Between begin and end, batchConn keeps the records of one
// tls.Conn.Write and end sends them in one write. Outside that it passes
// every write straight through (the handshake, commands, the final dot).
//
// A write error surfaces from end rather than from tls.Conn.Write, which
// then believes its records sent: the caller must treat the session as
// broken on any error from end, as Send does on any error while the body
// streams.
type batchConn struct {
	net.Conn
	mu       sync.Mutex // tls.Conn may write from a Read (TLS 1.3 key update) meanwhile
	batching bool
	buf      *[]byte // from batchBufs while batching
}

// batchBufs holds batch buffers between body writes: a session keeps none
// while idle, and a few serve every worker.
var batchBufs = sync.Pool{New: func() any {
	// A body write is at most dotStufferFlush octets (two full records),
	// and the few octets writeParts puts first (one more).
	b := make([]byte, 0, dotStufferFlush+3+3*tlsRecordOverhead)
	return &b
}}

// tlsRecordOverhead is the most a TLS 1.2 or 1.3 AEAD record adds to its
// plaintext: a 5-byte header, TLS 1.2's 8-byte explicit nonce, a 16-byte tag.
const tlsRecordOverhead = 5 + 8 + 16

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batching {
		*b.buf = append(*b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

// begin starts keeping writes.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.buf = batchBufs.Get().(*[]byte)
	b.mu.Unlock()
}

// end sends what was kept since begin in one write.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	buf := b.buf
	b.batching, b.buf = false, nil
	var err error
	if len(*buf) > 0 {
		_, err = b.Conn.Write(*buf)
	}
	*buf = (*buf)[:0]
	batchBufs.Put(buf)
	return err
}
