package deliver

import (
	"bytes"
	"io"
	"sync"
)

// dotStuffer writes a CRLF-normalised message body in DATA's encoding
// (RFC 5321 4.5.2: a line starting with "." gets one more) to w in large
// writes. net/textproto's DotWriter, which go-smtp's client uses, does the
// same one byte at a time through a bufio.Writer, which for a large body
// costs more CPU than the TLS encryption (docs/performance.md).
//
// The body in the spool is CRLF-only (the listener normalises it), so only
// dots need adding. Finish holds back the body's final CRLF: go-smtp's
// DataCommand.Close, whose DotWriter has seen no byte, writes "\r\n.\r\n",
// which supplies it, so the upstream gets the body byte for byte.
//
// It also keeps every line within RFC 5322's 998 octets (2.1.1), as
// Postfix's smtp_line_length_limit does: a longer line is broken by
// inserting CRLF and a space, so the rest continues on lines that start
// with a space (a folded header stays one header; base64 ignores the
// break). The limit counts the octets on the wire before CRLF, a stuffed
// dot included.
type dotStuffer struct {
	w    io.Writer
	col  int // octets of the current output line so far; 0 at a line start
	out  []byte
	pool *[]byte // out's home in stuffBufs; nil until a run is copied
	// small holds out until then: a body that is passed through (base64)
	// needs room only for a carried CRLF and a stuffed dot.
	small [8]byte
}

const (
	dotStufferFlush = 32 << 10
	// dotStufferDirect is the shortest run Write passes through without
	// copying it: a TLS record's worth.
	dotStufferDirect = 16 << 10
	// dotStufferSlack is what a run may add beyond dotStufferFlush: a
	// stuffed dot and three octets per fold (one per maxLineOctets).
	dotStufferSlack = 1 + 3*(dotStufferFlush/(maxLineOctets-1)+1)
	// maxLineOctets is RFC 5322's limit for a line, CRLF not counted.
	maxLineOctets = 998
)

// stuffBufs holds dot-stuffer buffers between messages, so a message
// costs no fresh buffer and an idle relay keeps none for long.
var stuffBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, dotStufferFlush+dotStufferSlack)
	return &b
}}

func newDotStuffer(w io.Writer) *dotStuffer {
	d := &dotStuffer{w: w}
	d.out = d.small[:0]
	return d
}

// bigBuffer moves out into a buffer from stuffBufs, before a run is copied.
func (d *dotStuffer) bigBuffer() {
	if d.pool != nil {
		return
	}
	d.pool = stuffBufs.Get().(*[]byte)
	d.out = append((*d.pool)[:0], d.out...)
}

// release returns the buffer to stuffBufs; d must not be used after.
func (d *dotStuffer) release() {
	if d.pool != nil {
		*d.pool = d.out[:0] // out may have grown
		stuffBufs.Put(d.pool)
	}
	d.out, d.pool = nil, nil
}

// Write implements io.Writer. It copies runs of lines up to the next one
// that starts with a dot in one go: only those lines, and lines over
// maxLineOctets, need anything added. A run fills the buffer up to
// dotStufferFlush, so every write but the last is that long.
func (d *dotStuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.col == 0 && p[0] == '.' {
			d.out = append(d.out, '.')
			d.col = 1
		}
		// A long run that needs nothing added goes to w as it is, after
		// what the buffer holds (at most a carried CRLF and a dot): most
		// of a base64 body is never copied here.
		if len(d.out) <= 3 && len(p) >= dotStufferDirect {
			end := min(len(p), dotStufferFlush)
			if i := lineDot(p[:end]); i >= 0 {
				end = i + 1
			}
			if k, col := d.unchanged(p[:end]); k >= dotStufferDirect {
				// The last two octets stay behind: they may be the
				// body's final CRLF, which Finish drops.
				if err := d.writeThrough(p[:k-2]); err != nil {
					return 0, err
				}
				d.out = append(d.out[:0], p[k-2:k]...)
				d.col = col
				p = p[k:]
				continue
			}
		}
		// A run ends after the newline before a dot; a "\n." split across
		// runs or writes is caught by col instead.
		d.bigBuffer()
		run := min(len(p), max(dotStufferFlush-len(d.out), 1))
		if i := lineDot(p[:run]); i >= 0 {
			run = i + 1
		}
		d.appendFolded(p[:run])
		p = p[run:]
		if len(d.out) >= dotStufferFlush {
			if err := d.flush(2); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// lineDot returns the index of the first "\n." in p, or -1. It looks for
// the dot first: base64, the bulk of large messages, has none, so such a
// run costs one vectorised scan, where bytes.Index stops at every newline.
// Text with dots inside its lines would make that a call per dot: after a
// few dots that are not at a line start it leaves the rest to bytes.Index.
func lineDot(p []byte) int {
	for i, misses := 1, 0; i < len(p); i++ {
		j := bytes.IndexByte(p[i:], '.')
		if j < 0 {
			return -1
		}
		i += j
		if p[i-1] == '\n' {
			return i - 1
		}
		if misses++; misses == 4 {
			if k := bytes.Index(p[i:], []byte("\n.")); k >= 0 {
				return i + k
			}
			return -1
		}
	}
	return -1
}

// appendFolded appends seg, breaking lines at maxLineOctets. It looks for
// line ends a line's worth at a time (the last LF within the room left),
// so ordinary text costs one short backward scan per 998 octets.
func (d *dotStuffer) appendFolded(seg []byte) {
	for len(seg) > 0 {
		room := maxLineOctets - d.col
		if room <= 0 {
			if seg[0] != '\r' && seg[0] != '\n' {
				// The line is full and goes on: continue it after a fold.
				d.out = append(d.out, '\r', '\n', ' ')
				d.col = 1
				continue
			}
			room = 0 // only its line end may follow
		}
		// A line that ends within room octets ends with CRLF within room+2.
		if j := bytes.LastIndexByte(seg[:min(len(seg), room+2)], '\n'); j >= 0 {
			d.out = append(d.out, seg[:j+1]...)
			d.col = 0
			seg = seg[j+1:]
			continue
		}
		k := min(len(seg), room)
		if k == 0 { // a CR at the limit, its LF in the next write
			k = 1
		}
		d.out = append(d.out, seg[:k]...)
		d.col += k
		seg = seg[k:]
	}
}

// unchanged returns how much of seg appendFolded would append as it is,
// before the first fold it would insert, and the column after that much.
// It follows appendFolded step by step.
func (d *dotStuffer) unchanged(seg []byte) (k, col int) {
	col = d.col
	for k < len(seg) {
		room := maxLineOctets - col
		if room <= 0 {
			if seg[k] != '\r' && seg[k] != '\n' {
				return k, col // a fold goes here
			}
			room = 0
		}
		rest := seg[k:]
		if j := bytes.LastIndexByte(rest[:min(len(rest), room+2)], '\n'); j >= 0 {
			k, col = k+j+1, 0
			continue
		}
		n := max(min(len(rest), room), 1)
		k, col = k+n, col+n
	}
	return k, col
}

// partsWriter writes a, then b, as one write: deadlineWriter sends both
// in one socket write, so the few octets in a need no write of their own.
type partsWriter interface {
	writeParts(a, b []byte) error
}

// writeThrough writes what the buffer holds, then p, and empties the buffer.
func (d *dotStuffer) writeThrough(p []byte) error {
	defer func() { d.out = d.out[:0] }()
	if pw, ok := d.w.(partsWriter); ok {
		return pw.writeParts(d.out, p)
	}
	if len(d.out) > 0 {
		if _, err := d.w.Write(d.out); err != nil {
			return err
		}
	}
	_, err := d.w.Write(p)
	return err
}

// flush writes out all but the last keep bytes, which may be the final
// CRLF that Finish must drop.
func (d *dotStuffer) flush(keep int) error {
	k := len(d.out) - keep
	if k <= 0 {
		return nil
	}
	if _, err := d.w.Write(d.out[:k]); err != nil {
		return err
	}
	d.out = d.out[:copy(d.out, d.out[k:])]
	return nil
}

// Finish writes what is left, without a final CRLF.
func (d *dotStuffer) Finish() error {
	d.out = bytes.TrimSuffix(d.out, []byte("\r\n"))
	return d.flush(0)
}
