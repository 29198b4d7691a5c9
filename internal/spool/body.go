package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

var errReaderClosed = errors.New("spool: body reader closed")

// bodyReader streams a stored body. Each chunk is copied out in its own
// short read transaction, so no transaction stays open while the caller
// writes to the network (an open read transaction would block bbolt's remap
// and keep freed pages from being reused).
type bodyReader struct {
	s      *Spool
	id     string
	chunks int
	size   int64
	next   int    // index of the next chunk to load
	buf    []byte // current chunk, reused
	off    int
	closed bool
}

// OpenBody returns a reader over the message body; ErrNotFound if the
// message does not exist. It also implements io.WriterTo, so io.Copy
// writes whole chunks without an extra copy.
func (s *Spool) OpenBody(id string) (io.ReadCloser, error) {
	return s.openBody(id)
}

func (s *Spool) openBody(id string) (*bodyReader, error) {
	m, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	return &bodyReader{s: s, id: id, chunks: m.Chunks, size: m.Size}, nil
}

// load copies the next chunk into r.buf.
func (r *bodyReader) load() error {
	idx := r.next
	err := r.s.view(func(tx *bbolt.Tx) error {
		prefix := chunkKey(r.id, idx)
		r.buf = r.buf[:0]
		found := false
		c := tx.Bucket(bucketBody).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r.buf = append(r.buf, v...)
			found = true
		}
		if !found {
			if tx.Bucket(bucketMsgs).Get([]byte(r.id)) == nil {
				return notFound(r.id) // deleted while being read
			}
			return fmt.Errorf("spool: body of %s: chunk %d of %d is missing", r.id, idx, r.chunks)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.next++
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
