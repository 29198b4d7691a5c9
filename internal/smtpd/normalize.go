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
	n         int64
	err       error
}

var crlf = []byte("\r\n")

func newCRLFWriter(w io.Writer) *crlfWriter { return &crlfWriter{w: w} }

// Write implements io.Writer.
func (c *crlfWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	total := len(p)
	for len(p) > 0 {
		if c.pendingCR {
			// The CR was already emitted as CRLF's first byte; an LF now
			// completes it, anything else means the CR was bare.
			c.pendingCR = false
			if p[0] == '\n' {
				c.put(crlf[1:])
				p = p[1:]
				continue
			}
			c.put(crlf[1:])
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			c.put(p)
			break
		}
		c.put(p[:i])
		if p[i] == '\r' {
			c.put(crlf[:1])
			c.pendingCR = true
		} else { // bare LF
			c.put(crlf)
		}
		p = p[i+1:]
	}
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

func (c *crlfWriter) put(b []byte) {
	if c.err != nil || len(b) == 0 {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}
