package smtpd

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// The byte-level half of the device-quirk layer (deviceConn, quirks.go):
// reading and translating the client's bytes (the LF-only session), finding
// the end of a DATA body, and noting the replies go-smtp writes.

// States of go-smtp's dataReader (data.go), which ends DATA only on
// CR+ LF "." CR+ LF (a run of CRs before LF is one line ending, for
// BusyBox sendmail's CR CR LF; a bare LF is none); scanData must agree
// with it byte for byte (deviceConn's assumption 6, pinned by
// TestScanDataAgreesWithGoSMTP and FuzzScanDataAgreesWithGoSMTP).
const (
	dataBeginLine = iota
	dataDot
	dataDotCR
	dataCR
	dataMid
)

// scanData advances the mirrored state over b and returns how many bytes
// belong to the body: all of b, or up to and including the end marker
// (end is then true).
func scanData(state *int, b []byte) (n int, end bool) {
	s := *state
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s {
		case dataBeginLine:
			switch c {
			case '.':
				s = dataDot
			case '\r':
				s = dataCR
			default:
				s = dataMid
			}
		case dataDot:
			s = dataMid
			if c == '\r' {
				s = dataDotCR
			}
		case dataDotCR:
			switch c {
			case '\n':
				*state = dataBeginLine
				return i + 1, true
			case '\r':
			default:
				s = dataMid
			}
		case dataCR:
			switch c {
			case '\n':
				s = dataBeginLine
			case '\r':
			default:
				s = dataMid
			}
		case dataMid:
			j := bytes.IndexByte(b[i:], '\r')
			if j < 0 {
				*state = dataMid
				return len(b), false
			}
			i += j
			s = dataCR
		}
	}
	*state = s
	return len(b), false
}

// direct reports whether a body or chunk may be read straight into the
// caller's buffer: nothing is queued and nothing needs translating (a
// chunk never does).
func (c *deviceConn) direct() bool {
	return c.in.len() == 0 && c.rerr == nil && (c.mode == eolCRLF || c.stream.phase == phaseChunk)
}

// readBodyDirect reads a body into p and keeps whatever follows the end
// marker (pipelined commands) for the command phase.
func (c *deviceConn) readBodyDirect(p []byte) (int, error) {
	n, err := c.readNet(p)
	k, _ := scanData(&c.stream.data, p[:n])
	if k < n {
		c.in.push(p[k:n])
		if err != nil {
			c.rerr, err = err, nil
		}
	}
	return k, err
}

// handOn copies up to limit bytes of in to p, as they are.
func (c *deviceConn) handOn(p []byte, limit int) int {
	b := c.in.bytes()
	if len(b) > limit {
		b = b[:limit]
	}
	n := copy(p, b)
	c.in.consume(n)
	return n
}

// handOnText hands on up to limit bytes of in that are command lines or a
// DATA body, which for an LF-only client means with a CR put before each
// bare LF. Translating here, not as bytes are read, leaves whatever follows
// untouched: a BDAT chunk is counted in the bytes the client sent. It
// returns the bytes written to p and the bytes of in used. For a body
// (body set) it mirrors go-smtp's end-of-data state over what it writes
// and stops after the end marker.
func (c *deviceConn) handOnText(p []byte, limit int, body bool) (n, used int) {
	if c.mode != eolLFOnly {
		b := c.in.bytes()
		b = b[:min(len(b), limit, len(p))]
		if body {
			k, _ := scanData(&c.stream.data, b)
			b = b[:k]
		}
		n = c.handOn(p, len(b))
		return n, n
	}
	b := c.in.bytes()
	b = b[:min(len(b), limit)]
	cr := c.prevCR
	for used < len(b) && n < len(p) {
		start := n
		switch i := bytes.IndexByte(b[used:], '\n'); {
		case i == 0 && !cr:
			// A bare LF: the CR goes first; the LF, no longer bare, on
			// the next turn (or the next Read, if p is full).
			p[n] = '\r'
			n, cr = n+1, true
		case i == 0:
			p[n] = '\n'
			n, used, cr = n+1, used+1, false
		default:
			seg := b[used:]
			if i > 0 {
				seg = seg[:i]
			}
			k := copy(p[n:], seg)
			n, used, cr = n+k, used+k, seg[k-1] == '\r'
		}
		if body {
			if _, end := scanData(&c.stream.data, p[start:n]); end {
				break // only an LF ends a body, and it ends p[start:n]
			}
		}
	}
	c.prevCR = cr
	c.in.consume(used)
	return n, used
}

func (c *deviceConn) readNet(p []byte) (int, error) {
	c.setReadDeadline()
	n, err := c.Conn.Read(p)
	c.counted(p[:n], err)
	return n, err
}

// fill reads from the client once and queues the bytes in in, as they
// are. It returns false, with rerr set, when nothing was read.
func (c *deviceConn) fill() bool {
	if c.rerr != nil {
		return false
	}
	for tries := 0; ; tries++ {
		// Read straight into the queue's free room: no copy.
		b := c.in.room(4096)
		n, err := c.readNet(b)
		if n > 0 {
			b = b[:n]
			if !c.started {
				c.started = true
				// 0x16 is a TLS handshake record: a ClientHello. Typically
				// an MFP set to "SSL/TLS" (implicit TLS) pointed at a plain port.
				if b[0] == 0x16 {
					c.log.Warn("client started a TLS handshake on the plaintext SMTP port; closing",
						"client", c.client.String(),
						"hint", "set the device's SMTP security to none (plain SMTP) for this relay, not SSL/TLS")
					c.rerr = errTLSOnPlain
					return false
				}
			}
			c.learnEOL(b)
			c.in.queued(n)
		}
		switch {
		case err != nil:
			c.rerr = err
			return n > 0
		case n > 0:
			return true
		case tries >= 100:
			c.rerr = io.ErrNoProgress
			return false
		}
	}
}

// learnEOL decides the session's line ending from the client's first line.
func (c *deviceConn) learnEOL(b []byte) {
	if c.mode != eolUnknown {
		return
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		c.mode = eolCRLF
		if i == 0 && !c.readCR || i > 0 && b[i-1] != '\r' {
			c.mode = eolLFOnly
			c.log.Debug("client ends lines with bare LF; LF ends lines for this session",
				"client", c.client.String())
		}
		return
	}
	if len(b) > 0 {
		c.readCR = b[len(b)-1] == '\r'
	}
}

// Write implements net.Conn for go-smtp. It notes each reply go-smtp
// writes, so Read knows what go-smtp reads next, and drops the reply to a
// HELO that Read injected.
func (c *deviceConn) Write(p []byte) (int, error) {
	if c.stream.phase == phaseRaw {
		// Every write from the TLS layer starts with a record header
		// (content type 20 to 24); go-smtp writes a plain reply ("550
		// Handshake error") only when the handshake failed.
		if c.stream.startedTLS && len(p) > 0 && p[0] >= '0' && p[0] <= '9' && c.rerr == nil {
			c.log.Warn("TLS handshake after STARTTLS failed; closing", "client", c.client.String(),
				"hint", "the device may not support this relay's TLS versions; try listen.tls_profile = \"legacy\" or plain SMTP")
			c.rerr = errHandshakeFailed
		}
		c.tlsRecordWritten(p)
		return c.Conn.Write(p)
	}
	st := &c.stream
	dropped := 0
	if st.phase == phaseBody && c.reply.count == st.bodyAt && c.mode == eolLFOnly && c.rerr == nil {
		dropped = c.dropPipelinedAfterBody()
	}
	keep := c.noteReplies(p)
	if len(keep) > 0 {
		if _, err := c.Conn.Write(keep); err != nil {
			return 0, err
		}
	}
	if dropped > 0 {
		_, _ = c.Conn.Write([]byte("421 4.5.0 " + c.host + ": commands sent before the reply to the message are not accepted from a client that ends lines with bare LF; closing\r\n"))
	}
	return len(p), nil
}

// pendingWait is how long dropPipelinedAfterBody waits for bytes the
// client may already have sent: long enough for what is in flight on a LAN,
// short enough not to slow an LF-only device noticeably.
const pendingWait = 2 * time.Millisecond

// dropPipelinedAfterBody runs just before go-smtp's reply to a DATA body in
// an LF-only session. There "\n.\n" ends DATA, so SMTP smuggling would
// hide a second transaction after it; an LF-only device does not pipeline
// (it predates PIPELINING), so any byte it sent before this reply is
// dropped and the session is closed after the reply (the client is out of
// step with the replies anyway). Postfix flags the same "improper command
// pipelining" by looking for pending input before it replies. It returns
// the number of bytes dropped.
func (c *deviceConn) dropPipelinedAfterBody() int {
	_ = c.Conn.SetReadDeadline(time.Now().Add(pendingWait))
	for c.in.len() < 1<<20 {
		b := c.in.room(4096)
		n, err := c.Conn.Read(b)
		c.in.queued(n)
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				c.rerr = err
			}
			break
		}
	}
	n := c.in.len()
	if n == 0 {
		return 0
	}
	c.log.Warn("client that ends lines with bare LF sent more before the reply to its message; dropped it and closing (SMTP smuggling is made of this)",
		"client", c.client.String(), "bytes", n,
		"hint", "a device that waits for each reply is not affected; one that pipelines must end lines with CRLF")
	c.in.consume(n)
	// go-smtp reads io.EOF next and closes without a reply of its own;
	// Write sends the 421.
	c.rerr = io.EOF
	return n
}

// noteReplies records the replies in p and returns the bytes to send.
func (c *deviceConn) noteReplies(p []byte) []byte {
	r := &c.reply
	filtering := r.swallow || r.dropping
	var keep []byte
	for _, b := range p {
		if r.col == 0 && r.swallow {
			r.swallow, r.dropping = false, true
		}
		if r.col < len(r.head) {
			r.head[r.col] = b
		}
		r.col++
		if filtering && !r.dropping {
			keep = append(keep, b)
		}
		if b != '\n' {
			continue
		}
		final := r.col < 5 || r.head[3] != '-'
		if final {
			r.count++
			r.last = replyCode(r.head[:min(3, r.col)])
			if r.dropping {
				r.dropping = false
				if r.last/100 != 2 {
					c.log.Warn("the relay refused the HELO it sent for a device", "client", c.client.String(),
						"reply", r.last)
				}
			}
		}
		r.col = 0
	}
	if !filtering {
		return p
	}
	return keep
}

func replyCode(b []byte) int {
	n, err := strconv.Atoi(string(b))
	if err != nil || len(b) != 3 {
		return 0
	}
	return n
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
