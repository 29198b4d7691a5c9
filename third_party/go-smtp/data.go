package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r *bufio.Reader
	// relaybox patch: src is the reader under r. While r holds nothing,
	// a body is read from src straight into the caller's buffer (readDirect),
	// and whatever follows the end marker is handed back to src.
	src   *unreadReader
	state int
	// relaybox patch: dotCRs counts the CRs read after a dot at the start
	// of a line (stateDotCR); heldCRs are those CRs still to be handed on
	// once they turned out to be data, not the end marker.
	dotCRs  int
	heldCRs int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r:   c.text.R,
		src: c.src,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.
	//
	// relaybox patch: a run of CRs before LF is one line ending, so the
	// end marker is <CR>+<LF>.<CR>+<LF> (BusyBox sendmail ends every line
	// with CR CR LF; Postfix also strips every CR before LF). A bare LF
	// still neither ends a line nor DATA: "\n.\n" and "\r.\r\n" are data.
	// CRs after a line-leading dot that turn out not to end DATA are data
	// and handed on (textproto drops the first of them).

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR>+<LF>.<CR>+<LF>) line.
	const (
		stateBeginLine = iota // beginning of line; initial state; must be zero
		stateDot              // read . at beginning of line
		stateDotCR            // read .\r (or more CRs) at beginning of line
		stateCR               // read \r (possibly at end of line)
		stateData             // reading data in middle of line
		stateEOF              // reached .\r\n end marker line
	)
	for n < len(b) && r.state != stateEOF {
		// relaybox patch: with nothing buffered, read the body straight
		// into b (one copy less, and reads as large as b instead of
		// bufio's 4 KiB), unless a line-leading dot is still pending.
		if r.src != nil && r.heldCRs == 0 && r.state != stateDot && r.state != stateDotCR &&
			r.r.Buffered() == 0 && len(b)-n >= r.r.Size() {
			k, rerr := r.readDirect(b[n:])
			n += k
			if rerr != nil {
				err = rerr
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				break
			}
			continue
		}
		if r.heldCRs > 0 {
			b[n] = '\r'
			n++
			r.heldCRs--
			continue
		}
		if r.state == stateData {
			// relaybox patch: in the middle of a line every byte but CR
			// leaves the state as it is, so copy the run up to the next CR
			// from bufio's buffer at once instead of byte by byte.
			if buf, _ := r.r.Peek(r.r.Buffered()); len(buf) > 0 {
				i := bytes.IndexByte(buf, '\r')
				if i < 0 {
					i = len(buf)
				}
				if i > 0 {
					k := copy(b[n:], buf[:i])
					r.r.Discard(k)
					n += k
					continue
				}
			}
		}
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state, r.dotCRs = stateDotCR, 1
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			if c == '\r' {
				r.dotCRs++
				continue
			}
			// Not the end marker: hand on the CRs, then c as after a CR.
			r.r.UnreadByte()
			r.heldCRs, r.dotCRs = r.dotCRs, 0
			r.state = stateCR
			continue
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			if c != '\r' {
				r.state = stateData
			}
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

// readDirect (relaybox patch) reads once from r.src into p and runs the
// state machine of Read over those bytes in place: what is handed on is
// written to p[:w], never ahead of what is still to be looked at (a byte
// is dropped, a stuffed dot, or held CRs are written back where the dot
// and the CRs were). It is called only in a state with nothing pending
// from an earlier read (no dot, no CRs after one), so every CR it hands
// on was read here. Bytes after the end marker, and a read error that
// came with them, are handed back to r.src for the commands that follow.
// It returns the read error, io.EOF included, unless the end marker came
// first.
func (r *dataReader) readDirect(p []byte) (int, error) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	k, err := r.src.Read(p)
	w := 0
	for i := 0; i < k; {
		if r.state == stateData {
			// Every byte but CR leaves the state as it is, and so does
			// CR LF followed by a byte that is neither "." nor CR: hand
			// on the whole run at once.
			s := i
			for {
				j := bytes.IndexByte(p[i:k], '\r')
				if j < 0 {
					i = k
					break
				}
				i += j + 1
				if i+1 < k && p[i] == '\n' && p[i+1] != '.' && p[i+1] != '\r' {
					i += 2
					continue
				}
				r.state = stateCR
				break
			}
			if w != s {
				copy(p[w:], p[s:i])
			}
			w += i - s
			continue
		}
		c := p[i]
		i++
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state, r.dotCRs = stateDotCR, 1
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state, r.dotCRs = stateEOF, 0
				r.src.unread(p[i:k], err)
				return w, nil
			}
			if c == '\r' {
				r.dotCRs++
				continue
			}
			// Not the end marker: hand on the CRs (where the dot and
			// they were), then c as after a CR.
			for ; r.dotCRs > 0; r.dotCRs-- {
				p[w] = '\r'
				w++
			}
			i--
			r.state = stateCR
			continue
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			if c != '\r' {
				r.state = stateData
			}
		}
		p[w] = c
		w++
	}
	return w, err
}

// unreadReader (relaybox patch) is the reader under a connection's
// bufio.Reader. The DATA reader reads bodies from it directly and hands
// back what followed the end marker, which the next Read returns first.
type unreadReader struct {
	r    io.Reader
	rest []byte
	err  error // returned once rest is empty
	buf  []byte
}

func (u *unreadReader) Read(p []byte) (int, error) {
	if len(u.rest) > 0 {
		n := copy(p, u.rest)
		u.rest = u.rest[n:]
		return n, nil
	}
	if u.err != nil {
		err := u.err
		u.err = nil
		return 0, err
	}
	return u.r.Read(p)
}

// unread puts b, then err, in front of what Read returns next. b is what
// the last Read returned, or the end of it.
func (u *unreadReader) unread(b []byte, err error) {
	if len(b) == 0 && err == nil {
		return
	}
	if len(u.rest) > 0 {
		u.rest = append(append([]byte(nil), b...), u.rest...)
	} else {
		u.buf = append(u.buf[:0], b...)
		u.rest = u.buf
	}
	if err != nil {
		u.err = err
	}
}
