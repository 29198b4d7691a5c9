package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

var errReaderClosed = errors.New("spool: body reader closed")

// readStep is how much of a chunk the reader copies per read transaction.
const readStep = 64 << 10

// bodyReader streams a stored body. Each step is copied out in its own
// short read transaction, so no transaction stays open while the caller
// writes to the network (an open read transaction would block bbolt's remap
// and keep freed pages from being reused).
type bodyReader struct {
	s      *Spool
	id     string
	chunks int
	size   int64
	next   int    // index of the chunk being read
	pos    int    // bytes of chunk next already copied out
	buf    []byte // current step, reused
	off    int
	closed bool
}

// OpenBody returns a reader over the message body; ErrNotFound if the
// message does not exist. It also implements io.WriterTo, so io.Copy
// writes whole steps without an extra copy.
func (s *Spool) OpenBody(id string) (io.ReadCloser, error) {
	return s.openBody(id)
}

// BodyOf is OpenBody for a record the caller already holds (from Due,
// Update or Get), without reading it again: delivery has it in hand, and
// this saves a read transaction and a JSON decode per message. A message
// deleted meanwhile reads as ErrNotFound.
func (s *Spool) BodyOf(m *Message) io.ReadCloser {
	return &bodyReader{s: s, id: m.ID, chunks: m.Chunks, size: m.Size}
}

func (s *Spool) openBody(id string) (*bodyReader, error) {
	m, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	return s.BodyOf(m).(*bodyReader), nil
}

// load copies the next step into r.buf: up to readStep bytes of a chunk
// stored in its own bucket, or a whole chunk stored as pieces. r.buf may
// come back empty (an empty body is one empty piece).
func (r *bodyReader) load() error {
	done := false
	err := r.s.view(func(tx *bbolt.Tx) (err error) {
		// Open checks the pages start-up reads, not the bodies (openDB):
		// bbolt panics on a damaged body page, and that must cost this
		// message, not the relay.
		defer func() {
			if p := recover(); p != nil {
				err = &spoolError{msg: fmt.Sprintf("spool: body of %s is damaged (%v): the message cannot be sent; "+
					"look at it with relaybox queue show %s and delete it, and check the storage", r.id, p, r.id),
					kind: ErrDamaged, cause: fmt.Errorf("bbolt panicked: %v", p)}
			}
		}()
		key := chunkKey(r.id, r.next)
		// Schema 3 keeps chunks next to the record; older spools in body.
		for _, b := range []*bbolt.Bucket{tx.Bucket(bucketMsgs), tx.Bucket(bucketBody)} {
			if cb := b.Bucket(key); cb != nil {
				if cap(r.buf) < readStep {
					r.buf = make([]byte, readStep)
				}
				n, clen, err := r.s.readChunk(tx, cb, r.pos, r.buf[:readStep])
				if err != nil {
					return fmt.Errorf("spool: body of %s: chunk %d of %d: %w", r.id, r.next, r.chunks, err)
				}
				r.buf = r.buf[:n]
				r.pos += n
				done = r.pos >= clen
				return nil
			}
			r.buf = r.buf[:0]
			c := b.Cursor()
			for k, v := c.Seek(key); k != nil && bytes.HasPrefix(k, key); k, v = c.Next() {
				r.buf = append(r.buf, v...)
				done = true
			}
			if done {
				return nil
			}
		}
		if tx.Bucket(bucketMsgs).Get([]byte(r.id)) == nil {
			return notFound(r.id) // deleted while being read
		}
		return fmt.Errorf("spool: body of %s: chunk %d of %d is missing", r.id, r.next, r.chunks)
	})
	if err != nil {
		return err
	}
	if done {
		r.next++
		r.pos = 0
	}
	r.off = 0
	return nil
}

// Read implements io.Reader.
func (r *bodyReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	for r.off == len(r.buf) {
		if r.next >= r.chunks {
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// WriteTo implements io.WriterTo.
func (r *bodyReader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	var total int64
	for {
		if r.off < len(r.buf) {
			n, err := w.Write(r.buf[r.off:])
			r.off += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if r.next >= r.chunks {
			return total, nil
		}
		if err := r.load(); err != nil {
			return total, err
		}
	}
}

// Close implements io.Closer.
func (r *bodyReader) Close() error {
	r.closed = true
	r.buf = nil
	return nil
}

// Headers returns the message's header block: the lines before the first
// empty line, with their line endings, at most max bytes. A body without
// an empty line is all header.
func (s *Spool) Headers(id string, max int) ([]byte, error) {
	r, err := s.openBody(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if max <= 0 {
		return []byte{}, nil
	}
	// Two bytes past max show whether a blank line starts right at max.
	buf := make([]byte, min(int64(max)+2, r.size))
	n, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:n]
	return buf[:min(headerEnd(buf), max)], nil
}

// headerEnd returns where the first empty line (LF or CRLF) starts in b,
// or len(b) if there is none.
func headerEnd(b []byte) int {
	pos := 0
	for pos < len(b) {
		if b[pos] == '\n' || b[pos] == '\r' && pos+1 < len(b) && b[pos+1] == '\n' {
			return pos
		}
		j := bytes.IndexByte(b[pos:], '\n')
		if j < 0 {
			return len(b)
		}
		pos += j + 1
	}
	return len(b)
}
