package smtpd

import (
	"bytes"
	"io"
)

// crlfWriter turns every line ending into CRLF on the way to w, so the
// spool only ever holds CRLF line endings. A run of CRs before an LF is one
// line ending (BusyBox sendmail sends CR CR LF; Postfix strips every CR
// before LF too); any other CR and any bare LF each become CRLF (devices
// send LF alone; a bare CR is the stuff SMTP smuggling is made of). It
// works on whole slices and keeps a count of CRs as state, so it never
// allocates per byte.
type crlfWriter struct {
	w io.Writer
	// heldCRs: the last bytes written were this many CRs, not yet passed
	// on; the next byte decides whether they are one line ending or bare.
	heldCRs int
	err     error
}

var crlf = []byte("\r\n")

func newCRLFWriter(w io.Writer) *crlfWriter { return &crlfWriter{w: w} }

// Write implements io.Writer. Clean CRLF text passes through in one write;
// only a bare CR or LF, or a CR run, splits it.
func (c *crlfWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	total := len(p)
	if c.heldCRs > 0 {
		for len(p) > 0 && p[0] == '\r' {
			c.heldCRs++
			p = p[1:]
		}
		if len(p) == 0 {
			return total, nil
		}
		c.releaseCRs(p[0] == '\n')
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
		if p[i] == '\n' { // bare LF
			c.put(p[start:i])
			c.put(crlf)
			i++
			start = i
			continue
		}
		if i+1 < len(p) && p[i+1] == '\n' {
			i += 2 // a proper CRLF
			continue
		}
		j := i + 1 // the end of the CR run
		for j < len(p) && p[j] == '\r' {
			j++
		}
		c.put(p[start:i])
		if j == len(p) {
			// CRs at the end: the next write says what they are.
			c.heldCRs = j - i
			start = j
			break
		}
		c.heldCRs = j - i
		c.releaseCRs(p[j] == '\n')
		if p[j] == '\n' {
			j++
		}
		i, start = j, j
	}
	c.put(p[start:])
	if c.err != nil {
		return 0, c.err
	}
	return total, nil
}

// releaseCRs passes on the held CRs: one line ending if an LF follows
// them (the caller drops that LF), else one per bare CR.
func (c *crlfWriter) releaseCRs(beforeLF bool) {
	n := c.heldCRs
	c.heldCRs = 0
	if beforeLF {
		n = 1
	}
	for ; n > 0; n-- {
		c.put(crlf)
	}
}

// Close completes trailing bare CRs. It does not close w.
func (c *crlfWriter) Close() error {
	c.releaseCRs(false)
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
