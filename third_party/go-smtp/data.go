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
	r     *bufio.Reader
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
		r: c.text.R,
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
