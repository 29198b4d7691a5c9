package smtpd

import (
	"bytes"
	"io"
)

// crlfWriter turns every bare CR and bare LF into CRLF on the way to w, so
// the spool only ever holds CRLF line endings (devices send LF alone; a
// bare CR is the stuff SMTP smuggling is made of). It works on whole slices
// and keeps one byte of state, so it never allocates per byte.
type crlfWriter struct {
	w         io.Writer
	pendingCR bool // the last byte written was a CR whose partner we have not seen
	err       error
}

var crlf = []byte("\r\n")

func newCRLFWriter(w io.Writer) *crlfWriter { return &crlfWriter{w: w} }

// Write implements io.Writer. Clean CRLF text passes through in one write;
// only a bare CR or LF splits it.
func (c *crlfWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	total := len(p)
	if c.pendingCR && len(p) > 0 {
		// The CR that ended the previous write was already passed on: its
		// LF goes out now, and an LF at the start of p is that LF.
		c.pendingCR = false
		c.put(crlf[1:])
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	start := 0 // p[start:i] is clean and not yet written
	// bytes.IndexAny walks byte by byte; two IndexByte scans (vectorised)
	// find the next CR and the next LF, and are redone only when passed.
	cr, lf := -1, -1
	for i := 0; i < len(p); {
		if cr < i {
			cr = indexFrom(p, i, '\r')
		}
		if lf < i {
			lf = indexFrom(p, i, '\n')
		}
		switch {
		case cr == len(p) && lf == len(p):
			i = len(p)
			continue
		case cr < lf:
			i = cr
		default:
			i = lf
		}
		switch {
		case p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n':
			i += 2 // a proper CRLF
		case p[i] == '\r' && i+1 == len(p):
			// CR at the end: whether it is bare depends on the next write.
			c.put(p[start : i+1])
			c.pendingCR = true
			start = len(p)
			i = len(p)
		case p[i] == '\r': // bare CR
			c.put(p[start : i+1])
			c.put(crlf[1:])
			i++
			start = i
		default: // bare LF
			c.put(p[start:i])
			c.put(crlf)
			i++
			start = i
		}
	}
	c.put(p[start:])
	if c.err != nil {
		return 0, c.err
	}
	return total, nil
}

// Close completes a trailing bare CR. It does not close w.
func (c *crlfWriter) Close() error {
	if c.pendingCR {
		c.pendingCR = false
		c.put(crlf[1:])
	}
	return c.err
}

// indexFrom is the index of c in p at or after i, or len(p).
func indexFrom(p []byte, i int, c byte) int {
	if j := bytes.IndexByte(p[i:], c); j >= 0 {
		return i + j
	}
	return len(p)
}

func (c *crlfWriter) put(b []byte) {
	if c.err != nil || len(b) == 0 {
		return
	}
	_, c.err = c.w.Write(b)
}
