package console

import (
	"context"
	"io"
	"sync"
	"unicode/utf8"
)

// This file is the dumb-terminal layer: bytes in, edited lines out, and
// text out as 7-bit ASCII with CRLF line ends.

// Control bytes the line editor understands.
const (
	ctrlC     = 0x03
	backspace = 0x08
	ctrlU     = 0x15
	esc       = 0x1b
	del       = 0x7f
)

const (
	// maxLine bounds a typed line; longer input is dropped unechoed, so
	// a stuck key or line noise cannot grow memory.
	maxLine = 256
	// maxTypeAhead bounds what is kept while a command runs.
	maxTypeAhead = 4096
	// readSize is one Read's buffer: a burst at 115200 baud is at most
	// a few hundred bytes between reads.
	readSize = 256
)

type readResult struct {
	b   []byte
	err error
}

// input turns a Reader into a byte stream that can be waited on with a
// context. At most one Read is outstanding, and one is started only when
// the session needs bytes, so a session that ends (exit) leaves nothing
// reading: the next session on the same line gets every byte. It is used
// by one goroutine.
type input struct {
	r       io.Reader
	buf     []byte // received, not yet consumed
	res     chan readResult
	reading bool
	err     error // the transport's read error, reported once buf is drained

	// Line-end and escape-sequence state lives here, not in the session,
	// so a CRLF split across "exit" and the next session is still one
	// line end.
	lastCR bool
	escape int // 0 none, 1 after ESC, 2 inside CSI/SS3
}

func newInput(r io.Reader) *input {
	return &input{r: r, res: make(chan readResult, 1)}
}

// start begins a Read unless one is in flight, and returns where its
// result arrives.
func (in *input) start() <-chan readResult {
	if !in.reading && in.err == nil {
		in.reading = true
		go func(r io.Reader, res chan<- readResult) {
			b := make([]byte, readSize)
			n, err := r.Read(b)
			res <- readResult{b[:max(n, 0)], err}
		}(in.r, in.res)
	}
	return in.res
}

func (in *input) got(r readResult) {
	in.reading = false
	room := maxTypeAhead - len(in.buf)
	in.buf = append(in.buf, r.b[:min(len(r.b), max(room, 0))]...)
	if r.err != nil {
		in.err = r.err
	}
}

// next returns the next byte, waiting for one until ctx ends.
func (in *input) next(ctx context.Context) (byte, error) {
	for len(in.buf) == 0 {
		if in.err != nil {
			return 0, in.err
		}
		select {
		case r := <-in.start():
			in.got(r)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	b := in.buf[0]
	in.buf = in.buf[1:]
	return b, nil
}

// out writes to the terminal. Text goes through Write, which makes it
// safe for any dumb terminal; raw bytes (echo, "\b \b") through raw. A
// command that runs while the session watches for Ctrl-C writes from
// another goroutine, hence the lock. The first write error sticks: the
// line is gone and the session ends.
type out struct {
	mu  sync.Mutex
	w   io.Writer
	err error
	buf []byte
}

// Write implements io.Writer for text. Output is 7-bit ASCII: a line end
// becomes CRLF, a tab a space, and every other control character or
// non-ASCII rune a '?'. Bytes 0x80-0x9f are C1 controls to an 8-bit
// terminal (0x9b is CSI), so even valid UTF-8 from a device's header could
// drive one; the admin API shows such text in full.
func (o *out) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf[:0]
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		i += size
		switch {
		case r == '\n':
			b = append(b, '\r', '\n')
		case r == '\r':
		case r == '\t':
			b = append(b, ' ')
		case r < 0x20 || r >= 0x7f:
			b = append(b, '?')
		default:
			b = append(b, byte(r))
		}
	}
	o.buf = b
	o.writeLocked(b)
	return len(p), o.err
}

// raw writes s untranslated: only the editor's own echo goes here.
func (o *out) raw(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeLocked([]byte(s))
}

func (o *out) writeLocked(b []byte) {
	if o.err != nil || len(b) == 0 {
		return
	}
	_, o.err = o.w.Write(b)
}

func (o *out) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// readLine shows prompt and returns the edited line. ok is false when
// the user pressed Ctrl-C. Only printable ASCII enters the line: a wrong
// baud rate shows up as bytes above 0x7f, and dropping them keeps the
// shell sane until the technician fixes the terminal.
func (s *session) readLine(prompt string) (line string, ok bool, err error) {
	s.out.raw(prompt)
	in := s.in
	buf := make([]byte, 0, 64)
	for {
		if err := s.out.failed(); err != nil {
			return "", false, err
		}
		b, err := in.next(s.ctx)
		if err != nil {
			return "", false, err
		}
		wasCR := in.lastCR
		in.lastCR = b == '\r'
		if in.escape > 0 && in.skipEscape(b) {
			continue
		}
		switch {
		case b == '\r' || (b == '\n' && !wasCR):
			if s.echo {
				s.out.raw("\r\n")
			}
			return string(buf), true, nil
		case b == '\n': // the LF of a CRLF
		case b == backspace || b == del:
			if len(buf) > 0 {
				buf = buf[:len(buf)-1]
				if s.echo {
					s.out.raw("\b \b")
				}
			}
		case b == ctrlC:
			s.out.raw("^C\r\n")
			return "", false, nil
		case b == ctrlU:
			if s.echo {
				for range buf {
					s.out.raw("\b \b")
				}
			}
			buf = buf[:0]
		case b == esc:
			in.escape = 1
		case b < 0x20 || b > 0x7e:
			// Other control bytes and 8-bit noise: ignored.
		case len(buf) >= maxLine:
			// Full: dropped without echo, so the screen shows what was kept.
		default:
			buf = append(buf, b)
			if s.echo {
				s.out.raw(string(b))
			}
		}
	}
}

// skipEscape consumes the bytes of an escape sequence an arrow or
// function key sends (ESC [ ... final, ESC O x) so they do not land in
// the line as "[A". It reports whether b was part of the sequence.
func (in *input) skipEscape(b byte) bool {
	switch {
	case in.escape == 1 && (b == '[' || b == 'O'):
		in.escape = 2
		return true
	case in.escape == 1:
		// A lone ESC followed by something else: drop the ESC only.
		in.escape = 0
		return false
	case b >= 0x40 && b <= 0x7e: // CSI final byte ends it
		in.escape = 0
		return true
	case b >= 0x20 && b <= 0x3f: // parameters and intermediates
		return true
	}
	// A control byte inside a sequence: abandon the sequence, handle it.
	in.escape = 0
	return false
}
