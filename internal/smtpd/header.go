package smtpd

import (
	"bytes"
	"io"
)

// maxHeaderBlock bounds how much of a message's header we hold in memory to
// learn whether Message-ID and Date are present. A header block longer than
// this is passed on as it is, with only our Received line added.
const maxHeaderBlock = 64 << 10

// headerWriter prepends the headers we add (Received always, Message-ID and
// Date when the device left them out) in front of the message's own header
// block. It buffers only the header block, line by line, then streams.
// Input must already be CRLF-normalised.
type headerWriter struct {
	w io.Writer
	// prefix returns our headers, given what the device's block contains.
	prefix func(hasMessageID, hasDate bool) []byte

	buf       bytes.Buffer // the device's header block so far
	lineStart int          // offset in buf of the line being read
	hasMsgID  bool
	hasDate   bool
	done      bool // header block over; bytes pass straight through
	err       error

	// fromAddr, when set, replaces an unqualified address in the From:
	// field (policy.rewrite_from_header); fromOld is the address replaced.
	fromAddr string
	fromOld  string
}

func newHeaderWriter(w io.Writer, prefix func(hasMessageID, hasDate bool) []byte) *headerWriter {
	return &headerWriter{w: w, prefix: prefix}
}

// Write implements io.Writer.
func (h *headerWriter) Write(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	total := len(p)
	for len(p) > 0 && !h.done {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			h.buf.Write(p)
			p = nil
		} else {
			h.buf.Write(p[:i+1])
			p = p[i+1:]
			h.endOfLine()
		}
		if !h.done && h.buf.Len() > maxHeaderBlock {
			h.flushIncomplete()
		}
	}
	if len(p) > 0 && h.err == nil {
		_, h.err = h.w.Write(p)
	}
	if h.err != nil {
		return 0, h.err
	}
	return total, nil
}

// endOfLine looks at the line just completed in buf.
func (h *headerWriter) endOfLine() {
	line := h.buf.Bytes()[h.lineStart:]
	switch {
	case len(line) <= 2: // the empty line: end of the header block
		h.flush()
		return
	case line[0] == ' ' || line[0] == '\t': // folded continuation
	case isHeaderLine(line):
		h.hasMsgID = h.hasMsgID || hasName(line, "message-id")
		h.hasDate = h.hasDate || hasName(line, "date")
	default:
		// Body text without a separating empty line (some devices send
		// no header at all): the block ended before this line.
		h.flushBefore(h.lineStart)
		return
	}
	h.lineStart = h.buf.Len()
}

// flushBefore ends the header block at offset off of buf, inserting the
// empty line that separates it from the body text that follows.
func (h *headerWriter) flushBefore(off int) {
	b := h.buf.Bytes()
	h.write(h.prefix(h.hasMsgID, h.hasDate))
	h.write(h.edited(b[:off]))
	h.write(crlf)
	h.write(b[off:])
	h.finish()
}

// flush writes a complete header block.
func (h *headerWriter) flush() {
	h.write(h.prefix(h.hasMsgID, h.hasDate))
	h.write(h.edited(h.buf.Bytes()))
	h.finish()
}

// flushIncomplete gives up on a header block too long to hold: it is
// passed on as it is, unedited.
func (h *headerWriter) flushIncomplete() {
	h.write(h.prefix(h.hasMsgID, h.hasDate))
	h.write(h.buf.Bytes())
	h.finish()
}

// edited applies the From: rewrite, if one is asked for, to a block.
func (h *headerWriter) edited(block []byte) []byte {
	if h.fromAddr == "" {
		return block
	}
	out, old := rewriteFrom(block, h.fromAddr)
	h.fromOld = old
	return out
}

func (h *headerWriter) finish() {
	h.done = true
	h.buf = bytes.Buffer{} // release the memory
}

func (h *headerWriter) write(b []byte) {
	if h.err == nil && len(b) > 0 {
		_, h.err = h.w.Write(b)
	}
}

// Close flushes a message that was all header (or empty).
func (h *headerWriter) Close() error {
	if !h.done {
		if h.buf.Len() == 0 {
			// An empty message still gets our headers and the separator.
			h.write(h.prefix(false, false))
			h.write(crlf)
			h.finish()
		} else {
			h.flush()
		}
	}
	return h.err
}

// isHeaderLine reports whether line starts "Name:" with a valid field name
// (RFC 5322 2.2: printable ASCII except colon).
func isHeaderLine(line []byte) bool {
	for i, c := range line {
		if c == ':' {
			return i > 0
		}
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return false
}

func hasName(line []byte, name string) bool {
	return len(line) > len(name) && line[len(name)] == ':' &&
		bytes.EqualFold(line[:len(name)], []byte(name))
}
