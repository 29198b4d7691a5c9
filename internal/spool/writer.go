package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

var errWriterDone = errors.New("spool: writer already committed or aborted")

// Writer streams one message body into the spool. It implements io.Writer.
// It is not safe for concurrent use; one SMTP session owns it.
//
// Memory: one chunk buffer; a writer alone (no other open writer) may take
// more within the spool's buffer budget (Options.BufferBudget). It keeps
// full chunks in memory while it may, and stores them, with the full
// buffer, in one transaction when it may not, or at Commit. Every
// transaction writes a meta page, the tree pages it changes and the inode
// whatever it carries, so a lone client's message is one transaction, not
// one per chunk. Writers with company store full chunks as they fill, and
// the sessions' transactions are group-committed. There is no second
// buffer per writer (the next chunk filling while the last is fsynced):
// at 8 clients it costs more memory than it saves time. Figures in
// docs/performance.md.
type Writer struct {
	s        *Spool
	id       string
	env      Envelope
	received time.Time

	buf    []byte   // chunk being filled
	full   [][]byte // full chunks not stored yet, within the buffer budget
	chunks int      // chunks stored
	size   int64    // bytes accepted by Write, all reserved against the quota
	err    error    // sticky: after a failed Write, only Abort is useful
	done   bool
	held   string // set by Hold: commit the message as StateHeld with this reply
	// eightBit is set by MarkEightBit.
	eightBit bool
}

// MarkEightBit records that the body holds octets over 127 (the writer of
// the body knows; the spool does not look at the bytes).
func (w *Writer) MarkEightBit() { w.eightBit = true }

// Hold makes Commit store the message as StateHeld, with reason as its last
// reply, in the same transaction: a held message is never due, not even for
// the instant between a commit and a later update.
func (w *Writer) Hold(reason string) { w.held = reason }

// Create starts a message. It refuses with ErrQuota when the spool is
// already at or over MaxSize. The writer must end in Commit or Abort.
func (s *Spool) Create(env Envelope) (*Writer, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	now := s.opt.Now().Round(0) // no monotonic reading: it would not survive JSON
	s.mu.Lock()
	if s.opt.MaxSize > 0 && s.stored+s.reserved >= s.opt.MaxSize {
		s.mu.Unlock()
		return nil, ErrQuota
	}
	s.writers++
	s.mu.Unlock()
	s.open.Add(1)
	env.Recipients = append([]string(nil), env.Recipients...)
	return &Writer{s: s, id: s.ids.next(now), env: env, received: now}, nil
}

// ID returns the queue ID, known from Create on so the listener can log it.
func (w *Writer) ID() string { return w.id }

// Write implements io.Writer. Full chunks are stored as they fill; an error
// wrapping ErrQuota means the message would take the spool past MaxSize.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	if w.err != nil {
		return 0, w.err
	}
	if err := w.s.reserve(int64(len(p))); err != nil {
		w.err = fmt.Errorf("spool: message %s: %w", w.id, err)
		return 0, w.err
	}
	w.size += int64(len(p))
	cs := w.s.opt.ChunkSize
	n := 0
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			w.grow(len(p))
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
		if len(w.buf) == cs {
			if w.s.takeExtra() {
				w.full = append(w.full, w.buf)
				w.buf = w.s.chunkBuf()
			} else if err := w.flush(); err != nil {
				w.err = err
				return n, err
			}
		}
	}
	return n, nil
}

// grow enlarges the fill buffer geometrically while the message is small,
// so a short message never costs a whole chunk of memory; past smallMax it
// takes a whole chunk buffer from the spool's pool.
func (w *Writer) grow(need int) {
	cs := w.s.opt.ChunkSize
	c := max(2*cap(w.buf), len(w.buf)+need, 4096)
	var nb []byte
	if c > smallMax && cs > smallMax {
		nb = w.s.chunkBuf()
	} else {
		nb = make([]byte, 0, min(c, cs))
	}
	if cap(nb) == cs {
		w.s.bufsHeld.Add(1) // putChunkBuf gives it back
	}
	nb = nb[:len(w.buf)]
	copy(nb, w.buf)
	w.buf = nb
}

// smallMax is the largest fill buffer grown by hand; a message larger than
// this is likely to fill chunks.
const smallMax = 32 << 10

// chunkBuf returns an empty buffer of ChunkSize capacity. Chunk buffers
// are pooled: a fresh one per chunk is garbage the size of the body, which
// makes the GC run far more often (BenchmarkRoundTrip1MiB reports it).
func (s *Spool) chunkBuf() []byte {
	if p, ok := s.bufs.Get().(*[]byte); ok && cap(*p) == s.opt.ChunkSize {
		return (*p)[:0]
	}
	return make([]byte, 0, s.opt.ChunkSize)
}

// putChunkBuf returns a buffer to the pool once bbolt is done with it
// (its transaction committed or rolled back), and to the budget.
func (s *Spool) putChunkBuf(b []byte) {
	if cap(b) == s.opt.ChunkSize {
		s.bufsHeld.Add(-1)
		s.bufs.Put(&b)
	}
}

// takeExtra counts one more chunk buffer against the writers' part of
// Options.BufferBudget (writerBudget), for a writer that already holds
// one, and says whether it may have it: only a writer alone (no other open
// writer), while the budget has room. Writers with company share their
// transactions by group commit anyway, so extras for them would raise peak
// memory and save no disk writes. A writer's first buffer is always
// granted (grow).
func (s *Spool) takeExtra() bool {
	for {
		n := s.bufsHeld.Load()
		if s.open.Load() > 1 || (n+1)*int64(s.opt.ChunkSize) > s.writerBudget {
			return false
		}
		if s.bufsHeld.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// putChunks stores data as the chunks of message id from index idx on.
func (s *Spool) putChunks(tx *bbolt.Tx, id string, idx int, data ...[]byte) error {
	b := tx.Bucket(bucketMsgs)
	for _, d := range data {
		if err := putChunk(b, id, idx, d, s.inlineMax); err != nil {
			return err
		}
		idx++
	}
	return nil
}

// releaseFull returns the full chunks held to the pool and the budget,
// once no transaction holds them.
func (w *Writer) releaseFull() {
	for _, b := range w.full {
		w.s.putChunkBuf(b)
	}
	w.full = w.full[:0]
}

// release returns all of the writer's buffers.
func (w *Writer) release() {
	w.releaseFull()
	w.s.putChunkBuf(w.buf)
	w.buf = nil
}

// flush stores the full chunks held and the full buffer as the next
// chunks, in one transaction, and waits until it is durable; the buffer is
// then free for the next chunk and the others go back to the pool.
func (w *Writer) flush() error {
	id, idx, data := w.id, w.chunks, append(w.full, w.buf)
	var marker []byte
	if idx == 0 {
		marker = []byte(w.received.Format(time.RFC3339Nano))
	}
	err := w.s.submit(func(tx *bbolt.Tx) error {
		if marker != nil {
			// Same transaction as the first chunk: a crash leaves either
			// nothing or chunks that Open knows to remove.
			if err := tx.Bucket(bucketIncoming).Put([]byte(id), marker); err != nil {
				return err
			}
		}
		return w.s.putChunks(tx, id, idx, data...)
	}, nil)
	if err != nil {
		return fmt.Errorf("spool: store chunk of %s: %w", w.id, err)
	}
	w.chunks += len(data)
	w.releaseFull()
	w.buf = w.buf[:0]
	return nil
}

// Commit stores the last chunk and the message record in one group commit
// and returns once that is fsynced: only then may the listener answer 250.
// On failure the writer is aborted (its chunks removed) and Abort is a no-op.
func (w *Writer) Commit() (*Message, error) {
	if w.done {
		return nil, errWriterDone
	}
	if w.err != nil {
		err := w.err
		w.abort()
		return nil, err
	}
	m := &Message{
		ID:          w.id,
		Received:    w.received,
		ClientAddr:  w.env.ClientAddr,
		Helo:        w.env.Helo,
		From:        w.env.From,
		AuthUser:    w.env.AuthUser,
		Device:      w.env.Device,
		Size:        w.size,
		EightBit:    w.eightBit,
		SMTPUTF8:    w.env.SMTPUTF8,
		Chunks:      w.chunks,
		Recipients:  make([]Recipient, len(w.env.Recipients)),
		State:       StateQueued,
		NextAttempt: w.received,
		QueuedRun:   w.s.Run(),
	}
	if w.held != "" {
		m.State, m.LastReply = StateHeld, w.held
	} else if fn := w.s.prepay.Load(); fn != nil {
		// The first attempt's charge rides on this commit, which happens
		// anyway: see Message.Prepaid.
		m.Prepaid = max((*fn)(), 0)
	}
	for i, a := range w.env.Recipients {
		m.Recipients[i] = Recipient{Address: a, State: RcptPending}
	}
	data, idx, stored := w.full, w.chunks, w.chunks > 0
	if len(w.buf) > 0 {
		data = append(data, w.buf)
	}
	m.Chunks += len(data)
	rec, err := json.Marshal(m)
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("spool: commit %s: %w", w.id, err)
	}
	s, id, size, ent := w.s, w.id, w.size, entryOf(m)
	err = s.submit(func(tx *bbolt.Tx) error {
		if err := s.putChunks(tx, id, idx, data...); err != nil {
			return err
		}
		if stored {
			if err := tx.Bucket(bucketIncoming).Delete([]byte(id)); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if cur := meta.Get(keyLastID); cur == nil || string(cur) < id {
			if err := meta.Put(keyLastID, []byte(id)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMsgs).Put([]byte(id), rec)
	}, func() {
		s.mu.Lock()
		s.reserved -= size
		s.stored += size
		s.writers--
		s.index[id] = ent
		s.mu.Unlock()
		s.open.Add(-1)
	})
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("spool: commit %s: %w", id, err)
	}
	w.done = true
	w.release()
	return m, nil
}

// Abort removes everything this writer stored and releases its quota. It is
// safe after a failed Write or Commit and idempotent.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	return w.abort()
}

func (w *Writer) abort() error {
	w.done = true
	// A chunk whose store failed left nothing; the ones before it are
	// removed below.
	var err error
	if w.chunks > 0 {
		id := w.id
		err = w.s.submit(func(tx *bbolt.Tx) error {
			if _, err := w.s.deleteMessage(tx, id); err != nil { // chunks only: no record yet
				return err
			}
			return tx.Bucket(bucketIncoming).Delete([]byte(id))
		}, nil)
		if err != nil {
			// The incoming marker is still there, so the next Open
			// removes the chunks.
			w.s.log.Error("spool: abort: chunks left for removal at next start", "id", id, "err", err)
			err = fmt.Errorf("spool: abort %s: %w", id, err)
		}
	}
	w.s.mu.Lock()
	w.s.reserved -= w.size
	w.s.writers--
	w.s.mu.Unlock()
	w.s.open.Add(-1)
	w.release() // every transaction that held them has ended
	return err
}

// reserve counts n more bytes of an in-progress message against the quota.
func (s *Spool) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opt.MaxSize > 0 && s.stored+s.reserved+n > s.opt.MaxSize {
		return ErrQuota
	}
	s.reserved += n
	return nil
}

func chunkKey(id string, idx int) []byte {
	k := make([]byte, len(id)+4)
	copy(k, id)
	binary.BigEndian.PutUint32(k[len(id):], uint32(idx))
	return k
}

// How a chunk sits in bbolt. bbolt keeps at least two values per leaf node
// and rewrites a whole node when a key is added to it, so large chunks
// stored side by side as plain values would rewrite the previous chunk with
// every new one, several times the body in disk writes.
//
// A chunk larger than a piece therefore gets a nested bucket of its own,
// msgs/id‖idx next to the message's record, holding one value under
// chunkValueKey. The bucket's root page (with its overflow pages) is
// written once, when it is created, and freed whole when it is deleted;
// adding a chunk only adds a 16-byte bucket header to a leaf of msgs. The
// default chunk size fills its pages exactly (see chunkSizeFor), so a body
// costs its own size in page writes plus the per-transaction pages.
//
// Smaller chunks (short messages, the tail of a long one) are stored as
// plain values of at most pieceSize bytes, id‖idx‖uint16 piece: two pieces
// with their 16-byte element headers and 19-byte keys fill one 4 KiB page,
// so a new piece never drags a big neighbour along and short messages
// share pages. The reader and deletePrefix understand both forms.
const pieceSize = 2000

// chunkValueKey is the one key inside a chunk's bucket.
var chunkValueKey = []byte{'d'}

// pieceKey is chunkKey ‖ uint16 piece index: the pieces of a chunk sort
// together and in order, and every key of a message still starts with id.
func pieceKey(id string, idx, piece int) []byte {
	return binary.BigEndian.AppendUint16(chunkKey(id, idx), uint16(piece))
}

// putChunk stores data as chunk idx of message id: in a bucket of its own
// when it is larger than inlineMax, else as pieces. bbolt keeps data (it
// does not copy) until the transaction commits.
func putChunk(b *bbolt.Bucket, id string, idx int, data []byte, inlineMax int) error {
	if len(data) > inlineMax {
		cb, err := b.CreateBucket(chunkKey(id, idx))
		if err != nil {
			return err
		}
		return cb.Put(chunkValueKey, data)
	}
	for p := 0; len(data) > 0 || p == 0; p++ {
		n := min(len(data), pieceSize)
		if err := b.Put(pieceKey(id, idx, p), data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}
