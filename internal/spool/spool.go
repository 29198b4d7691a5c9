// Package spool keeps accepted messages safe on local storage until the
// upstream relay has taken them.
//
// Storage is one bbolt file. Schema (version 3):
//
//	meta      "schema"  -> "3"
//	          "last_id" -> highest queue ID ever committed, so IDs stay
//	                       unique across restarts even if the clock steps back
//	msgs      id        -> JSON Message (envelope, per-recipient state, history)
//	          id ‖ uint32 big-endian chunk index -> bucket {"d" -> chunk bytes}
//	            for a chunk larger than a piece, else
//	          id ‖ uint32 chunk index ‖ uint16 piece -> up to 2000 bytes
//	incoming  id        -> creation time (RFC 3339), present while a writer
//	                       has stored chunks but not committed
//
// A message's record and body chunks sit side by side in one bucket, so a
// commit that stores some messages and deletes others rewrites the leaves
// and branch pages of one tree, not two (see putChunk for why chunks are
// buckets). Schemas 1 and 2 kept bodies in a separate "body" bucket; no
// release ever wrote them, so they are refused like any other schema this
// relaybox does not know (a spool file of schema 3 may still hold that
// bucket, empty and unused). An older relaybox refuses a newer schema
// rather than misreads it. Bodies are read with pread, not through bbolt's
// mapping (see bboltpages.go).
//
// A writer stores its full chunks as it goes (the first one together with its
// "incoming" marker), and commits by writing the last chunk, the msgs record
// and the marker's removal in one transaction. A crash before that leaves a
// marker; Open deletes the chunks of every marked ID, so a message is either
// whole and queued or not there at all.
//
// Every write goes through one committer goroutine that runs whatever
// requests are waiting in a single bbolt transaction (group commit), so
// concurrent sessions share fsyncs. Quota and the scheduler's view of the
// queue (state, next attempt) are kept in memory, rebuilt from msgs at Open.
package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	schemaVersion = "3"
	// lockTimeout bounds the wait for bbolt's file lock: a second relaybox
	// on the same data_dir should fail fast with a clear message.
	lockTimeout = time.Second
	// initialMmap reserves address space so that small and medium spools
	// never remap (a remap waits for every read transaction). Kept modest
	// because 32-bit ARM boards have well under 2 GiB of address space and
	// Windows grows the file to the mapped size.
	initialMmap = 16 << 20

	defaultChunkSize = 256 << 10 // rounded down to whole pages by chunkSizeFor
	// defaultBufferChunks is the default BufferBudget in chunks: what 8
	// clients sending at once hold anyway, one chunk each (Writer).
	defaultBufferChunks = 8
	defaultHistoryLimit = 20
	// maxCheckErrors bounds how many tx.Check findings go into the error
	// an admin reads; the rest are counted.
	maxCheckErrors = 10
)

var (
	bucketMeta     = []byte("meta")
	bucketMsgs     = []byte("msgs")
	bucketIncoming = []byte("incoming")
	keySchema      = []byte("schema")
	keyLastID      = []byte("last_id")
	keyClean       = []byte("clean") // written by the last transaction of Close (syncFreelist)
	keyRun         = []byte("run")   // the run clock (Spool.Run) as last saved, 8 bytes big-endian nanoseconds
)

// runSaveEvery is how often a commit also saves the run clock: a crash
// loses at most this much of it, which only makes messages expire later.
const runSaveEvery = 10 * time.Minute

// More errors callers tell apart with errors.Is (see message.go for the rest).
var (
	// ErrLocked: another process holds the spool file.
	ErrLocked = errors.New("spool: locked by another process")
	// ErrDamaged: the spool file failed to open or failed its consistency
	// check. The file is left untouched for the admin.
	ErrDamaged = errors.New("spool: damaged")
)

// Options tune a Spool. The zero value is usable.
type Options struct {
	MaxSize   int64 // quota: sum of stored body bytes incl. in-progress writes; 0 = unlimited
	ChunkSize int   // body chunk size, default about 256 KiB (chunkSizeFor)
	// BufferBudget bounds the chunk buffers all writers hold together; a
	// writer keeps full chunks in memory, to store them in fewer
	// transactions, only within it (Writer). Default 8 chunks (2 MiB).
	BufferBudget int64
	Now          func() time.Time // default time.Now
	// Mono reads a monotonic clock (any origin): the run clock advances
	// with it. Default: Go's monotonic clock.
	Mono         func() time.Duration
	Logger       *slog.Logger // default discard
	HistoryLimit int          // attempts kept per message, default 20
	// Concurrent, when set, says how many clients may commit soon (the
	// listener's sessions between MAIL and the end of DATA); the committer
	// waits briefly for their commits to share one fsync. Default: the
	// writers open in the spool.
	Concurrent func() int
	// Prepay, when set, draws the backoff a message's first delivery
	// attempt earns (jitter included). Commit then stores it in the
	// message (Message.Prepaid), so the first attempt needs no transaction
	// before it is made; after a crash the next Open charges it. nil: the
	// scheduler records every attempt before making it. Set it only while
	// an upstream is configured (SetPrepay): mail held for want of one
	// earns no backoff, even across a crash.
	Prepay func() time.Duration

	dropEvery  time.Duration // tests: how often the committer trims the mapping (default defaultDropEvery)
	riderDelay time.Duration // tests: the longest a rider waits (default defaultRiderDelay)
}

// Stats is a snapshot of the spool for the status model.
type Stats struct {
	Messages  int       // queued messages (not dead), held ones included
	Bytes     int64     // body bytes of queued messages
	Held      int       // of Messages, those held as a device's repeats
	HeldBytes int64     // of Bytes, the held messages' share
	Dead      int       // dead-letter messages
	DeadBytes int64     // body bytes of dead messages
	Oldest    time.Time // Received of the oldest queued message; zero if none
	Pending   int       // in-progress writers
	Used      int64     // bytes counted against MaxSize: all stored bodies plus in-progress writes
}

// Spool is the durable message store. Its methods are safe for concurrent use.
type Spool struct {
	db   *bbolt.DB
	path string
	// rf reads body chunks with pread (readChunk); bbolt writes with
	// pwrite, so both go through the same page cache.
	rf *os.File
	// inlineMax is the largest chunk stored as pieces; larger chunks get a
	// bucket of their own (putChunk).
	inlineMax int
	bufs      sync.Pool    // *[]byte of ChunkSize capacity (chunkBuf)
	bufsHeld  atomic.Int64 // chunk buffers writers hold (takeBuf)
	opt       Options
	prepay    atomic.Pointer[func() time.Duration] // Options.Prepay, or SetPrepay's
	log       *slog.Logger
	ids       idGen
	// writerBudget is the part of BufferBudget writers' chunk buffers may
	// take (takeExtra); bbolt keeps the rest as commit buffers (commitPool).
	writerBudget int64

	// commitSince is when the batch being committed started, nil while the
	// committer waits: CommitStalled reads it. A time.Time from time.Now
	// keeps its monotonic reading, so a wall-clock jump (NTP on a Pi with
	// no RTC) never looks like a stall.
	commitSince atomic.Pointer[time.Time]

	// Committer queue: requests wait here until the committer takes them,
	// by kind (enqueue). riderFrom is when the oldest rider came (real
	// time: its wait is a real delay whatever Options.Now says).
	qmu       sync.Mutex
	qcond     *sync.Cond
	sessions  []*request
	others    []*request
	riders    []*request
	riderFrom time.Time
	closing   bool
	// sessionReqs counts the queued requests of client sessions
	// (gatherLocked).
	sessionReqs int
	// lastCommit is how long the last commit took (gather); only the
	// committer uses it.
	lastCommit time.Duration
	stopped    chan struct{}
	commits    atomic.Int64 // bbolt write transactions committed by the committer
	// freed lists the page runs of chunk buckets deleted in the
	// transaction the committer is running (noteFreed, dropFreed).
	freed []pageRun
	// lastDrop is when the committer last trimmed the mapping (dropAll);
	// only the committer uses it.
	lastDrop time.Time
	open     atomic.Int32 // writers created and not yet committed or aborted (for gathering)

	// The run clock: how long this spool has been open, summed over
	// every run (runBase, saved in meta) plus this one (Mono since
	// monoOpen). runSaved is the value last saved; only the committer
	// and Close touch it.
	runBase, monoOpen time.Duration
	runSaved          time.Duration

	// mu guards the in-memory index and the quota figures.
	mu       sync.Mutex
	index    map[string]entry
	stored   int64 // body bytes of committed messages
	reserved int64 // bytes accepted by writers not yet committed or aborted
	writers  int
}

// entry is what the scheduler and Stats need of a message without reading
// and decoding its record.
type entry struct {
	state     State
	size      int64
	received  time.Time
	since     time.Time     // Received, or Requeued when later
	queuedRun time.Duration // Message.QueuedRun
	next      time.Time
	pending   bool
	prepaid   bool // Message.FirstPrepaid
}

func entryOf(m *Message) entry {
	e := entry{state: m.State, size: m.Size, received: m.Received, since: m.Received, queuedRun: m.QueuedRun, next: m.NextAttempt,
		prepaid: m.FirstPrepaid()}
	if m.Requeued.After(e.since) {
		e.since = m.Requeued
	}
	for _, r := range m.Recipients {
		if r.State == RcptPending {
			e.pending = true
			break
		}
	}
	return e
}

// spoolError carries a message written for the admin while still matching
// a sentinel (ErrLocked, ErrDamaged) and the underlying cause.
type spoolError struct {
	msg   string
	kind  error
	cause error
}

func (e *spoolError) Error() string   { return e.msg }
func (e *spoolError) Unwrap() []error { return []error{e.kind, e.cause} }

func damaged(path string, cause error) error {
	return &spoolError{
		msg: fmt.Sprintf("spool: %s is damaged (%v): stop relaybox and keep the file, it may hold accepted mail; "+
			"inspect it with `bbolt check %s`, then move it aside (mv %s %s.damaged) to start with an empty spool",
			path, cause, path, path, path),
		kind:  ErrDamaged,
		cause: cause,
	}
}

// Open opens or creates the spool at path, checks it, removes what crashed
// writers left behind and starts the committer.
func Open(path string, opt Options) (*Spool, error) {
	if opt.dropEvery <= 0 {
		opt.dropEvery = defaultDropEvery
	}
	if opt.riderDelay <= 0 {
		opt.riderDelay = defaultRiderDelay
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Mono == nil {
		start := time.Now()
		opt.Mono = func() time.Duration { return time.Since(start) }
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.HistoryLimit <= 0 {
		opt.HistoryLimit = defaultHistoryLimit
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	rf, err := os.Open(path)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: open %s for reading: %w", path, err)
	}
	noReadahead(rf)
	pageSize := db.Info().PageSize
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = chunkSizeFor(pageSize)
	}
	if opt.BufferBudget <= 0 {
		opt.BufferBudget = defaultBufferChunks * int64(opt.ChunkSize)
	}
	s := &Spool{
		db:        db,
		path:      path,
		rf:        rf,
		inlineMax: max(pieceSize, inlineBucketMax(pageSize)),
		opt:       opt,
		log:       opt.Logger,
		stopped:   make(chan struct{}),
		index:     make(map[string]entry),
	}
	s.qcond = sync.NewCond(&s.qmu)
	// bbolt keeps part of the buffer budget as its commit buffers; set
	// before the first write transaction (prepare).
	poolChunks, poolBytes := commitPool(opt.ChunkSize, opt.BufferBudget, pageSize)
	db.LargePagePoolSize = poolBytes
	s.writerBudget = opt.BufferBudget - poolChunks*int64(opt.ChunkSize)
	s.SetPrepay(opt.Prepay)
	// Loading the index reads record pages scattered among the bodies.
	// Only for that: with the advice left on, reused pages came back as
	// larger folios and writes were charged 1.3 bytes per byte
	// (TestWriteBytesMatchPagesWritten).
	s.adviseAll(true)
	if err := s.prepare(); err != nil {
		db.Close()
		rf.Close()
		return nil, err
	}
	// bbolt walked every page to rebuild its freelist (NoFreelistSync),
	// and preCheck read the whole file into the page cache: fault-around
	// mapped much of it. None of it is needed now, and the cache may hold
	// large folios (bboltpages.go): dropped too.
	s.adviseAll(false)
	s.dropAll()
	dropCached(rf, 0, 0)
	s.freed = s.freed[:0]
	go s.run()
	return s, nil
}

func openDB(path string) (db *bbolt.DB, err error) {
	defer func() {
		// bbolt panics on some garbage (e.g. a mangled freelist page).
		if r := recover(); r != nil {
			db, err = nil, damaged(path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	// The freelist is not written at each commit (NoFreelistSync): with
	// many free pages it would cost more disk writes per message than the
	// message itself. bbolt rebuilds it at open by walking the tree, and
	// panics (in a goroutine we cannot recover) if the tree is damaged, so
	// the file is checked first through a read-only open, which does not
	// build the freelist.
	if fi, statErr := os.Stat(path); statErr == nil && fi.Size() > 0 {
		// After a clean shutdown bbolt reads the saved freelist and builds
		// nothing, so only the pages start-up reads anyway (the buckets'
		// trees and records, not the message bodies) need checking.
		if err := preCheck(path, !freelistSynced(path)); err != nil {
			return nil, err
		}
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, InitialMmapSize: initialMmap,
		NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err == nil {
		return db, nil
	}
	return nil, openError(path, err)
}

// preCheck opens path read-only and reads every bucket, key and value
// (deep), or every bucket's tree and values but not the nested chunk
// buckets' (the message bodies, read when sent). bbolt's own tx.Check
// cannot be used here: it builds the freelist the same way, and would
// panic in its goroutine. A page that fails bbolt's checks while we read it
// panics in ours, where it is recovered and reported.
func preCheck(path string, deep bool) (err error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("bbolt panicked while reading it: %v", r))
		}
	}()
	err = db.View(func(tx *bbolt.Tx) error {
		// A file cut short inside bbolt's mapping would fault (SIGBUS,
		// which recover cannot catch) when a page past its end is read.
		if fi, err := os.Stat(path); err == nil && fi.Size() < tx.Size() {
			return fmt.Errorf("file is %d bytes but its pages reach byte %d: it was cut short", fi.Size(), tx.Size())
		}
		adviseRandom(db.Info().Data, uintptr(tx.Size()), true)
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error { return walkBucket(b, deep) })
	})
	if err != nil {
		return damaged(path, err)
	}
	return nil
}

// walkBucket touches every value in b, and in its nested buckets if deep.
func walkBucket(b *bbolt.Bucket, deep bool) error {
	var sum byte
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil && deep {
				return walkBucket(nb, deep)
			}
			return nil
		}
		// Read the ends of the value: overflow pages are mapped lazily,
		// and a truncated file shows up here.
		if len(v) > 0 {
			sum += v[0] + v[len(v)-1]
		}
		_ = sum
		return nil
	})
}

func openError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &spoolError{
			msg:   fmt.Sprintf("spool: %s is locked: is another relaybox running?", path),
			kind:  ErrLocked,
			cause: err,
		}
	case errors.As(err, &pe):
		// Permissions, missing directory, I/O: not the file's content.
		return fmt.Errorf("spool: open %s: %w", path, err)
	default:
		return damaged(path, err)
	}
}

// prepare checks the file, creates the buckets, removes unfinished writes
// and loads the index.
func (s *Spool) prepare() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(s.path, fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	err = s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil: // a new file
			if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this relaybox understands %q: use the relaybox that wrote it",
				v, schemaVersion)
		}
		for _, name := range [][]byte{bucketMsgs, bucketIncoming} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if v := meta.Get(keyLastID); v != nil {
			s.ids.seen(string(v))
		}
		// The run clock counts from 1ns, so that 0 can mean "not known".
		s.runBase, s.monoOpen = 1, s.opt.Mono()
		if v := meta.Get(keyRun); len(v) == 8 {
			s.runBase = max(time.Duration(binary.BigEndian.Uint64(v)), 1)
		}
		s.runSaved = s.runBase
		// Close writes the flag in its last transaction; from here on
		// the spool is in use and a crash leaves it unset.
		clean := meta.Get(keyClean) != nil
		if err := meta.Delete(keyClean); err != nil {
			return err
		}
		if err := s.removeUnfinished(tx); err != nil {
			return err
		}
		if err := s.loadIndex(tx); err != nil {
			return err
		}
		if clean {
			return nil
		}
		return s.chargePrepaid(tx)
	})
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", s.path, err)
	}
	return nil
}

// removeUnfinished deletes the chunks of writers that never committed.
func (s *Spool) removeUnfinished(tx *bbolt.Tx) error {
	inc := tx.Bucket(bucketIncoming)
	var ids []string
	if err := inc.ForEach(func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		n, err := s.deleteMessage(tx, id) // chunks only: no record yet
		if err != nil {
			return err
		}
		if err := inc.Delete([]byte(id)); err != nil {
			return err
		}
		s.ids.seen(id)
		s.log.Warn("spool: removed unfinished message left by an interrupted write", "id", id, "chunks", n)
	}
	return nil
}

func (s *Spool) loadIndex(tx *bbolt.Tx) error {
	return tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
		if v == nil || len(k) != idLen {
			return nil // a body chunk
		}
		id := string(k)
		s.ids.seen(id)
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			// Keep the record for the admin rather than fail the whole
			// relay over one unreadable message.
			s.log.Error("spool: unreadable message record left in place", "id", id, "err", err)
			return nil
		}
		s.index[id] = entryOf(&m)
		s.stored += m.Size
		return nil
	})
}

// chargePrepaid runs at Open after a crash (no clean close): every queued
// message whose first attempt was prepaid (Message.Prepaid) is charged
// that attempt, and waits its backoff from now, because the attempt may
// have been under way when relaybox stopped, and the message itself may be
// what stopped it. After a clean close the prepayment stands and the
// message is due as it was. Nothing goes into History: nobody knows
// whether an upstream was dialled.
func (s *Spool) chargePrepaid(tx *bbolt.Tx) error {
	now := s.opt.Now().Round(0)
	var charged []*Message
	for id, e := range s.index {
		if e.state != StateQueued || !e.pending || !e.prepaid {
			continue
		}
		m, err := getMessage(tx, id)
		if err != nil || !m.FirstPrepaid() {
			continue
		}
		m.Attempts = 1
		if next := now.Add(m.Prepaid); next.After(m.NextAttempt) {
			m.NextAttempt = next
		}
		m.Prepaid = 0
		m.LastReply = "relaybox stopped without a clean shutdown while the first attempt may have been under way; the next waits one backoff step"
		charged = append(charged, m)
	}
	b := tx.Bucket(bucketMsgs)
	for _, m := range charged {
		m.fillReplies()
		rec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(m.ID), rec); err != nil {
			return err
		}
		s.index[m.ID] = entryOf(m)
	}
	if len(charged) > 0 {
		s.log.Warn("spool: relaybox stopped without a clean shutdown: messages whose first attempt may have been under way wait one backoff step",
			"messages", len(charged))
	}
	return nil
}

// SetPrepay replaces Options.Prepay (a config reload that adds or removes
// the upstreams). Messages committed from then on follow it.
func (s *Spool) SetPrepay(fn func() time.Duration) {
	if fn == nil {
		s.prepay.Store(nil)
		return
	}
	s.prepay.Store(&fn)
}

// deleteMessage removes every key of message id, its record and chunks in
// msgs, and returns how many keys there were. The page runs of deleted chunk buckets go to
// s.freed, for the committer to drop from the page cache (dropFreed).
func (s *Spool) deleteMessage(tx *bbolt.Tx, id string) (int, error) {
	return s.deletePrefix(tx, tx.Bucket(bucketMsgs), []byte(id))
}

// deletePrefix removes every key and nested bucket in b that starts with
// prefix and returns how many there were. Keys are collected first because
// deleting under a moving cursor can skip entries.
func (s *Spool) deletePrefix(tx *bbolt.Tx, b *bbolt.Bucket, prefix []byte) (int, error) {
	type key struct {
		k      []byte
		bucket *bbolt.Bucket
	}
	var keys []key
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
		var nested *bbolt.Bucket
		if v == nil { // the cursor shows a nested bucket as a nil value
			nested = b.Bucket(k)
		}
		keys = append(keys, key{append([]byte(nil), k...), nested})
	}
	for _, k := range keys {
		del := b.Delete
		if k.bucket != nil {
			del = b.DeleteBucket
			s.noteFreed(tx, k.bucket)
		}
		if err := del(k.k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Run is the spool's run clock: how long it has been open, summed over
// every run of relaybox on it. Unlike the wall clock it never jumps, so
// message ages taken from it (Message.QueuedRun) are real waiting time; time
// the box was off does not count. It never returns 0.
func (s *Spool) Run() time.Duration { return s.runBase + s.opt.Mono() - s.monoOpen }

// saveRun stores the run clock in tx.
func (s *Spool) saveRun(tx *bbolt.Tx) error {
	run := s.Run()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(run))
	if err := tx.Bucket(bucketMeta).Put(keyRun, b[:]); err != nil {
		return err
	}
	s.runSaved = run
	return nil
}

// Close stops accepting requests, lets the committer finish what it has
// taken, and closes the file. Writers still open are left as unfinished
// writes and removed at the next Open.
func (s *Spool) Close() error {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		<-s.stopped
		return nil
	}
	s.closing = true
	s.qcond.Broadcast()
	s.qmu.Unlock()
	<-s.stopped
	s.syncFreelist()
	err := s.db.Close() // waits for read transactions, and so for their preads
	s.rf.Close()        // read-only: nothing to lose
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

// syncFreelist writes bbolt's freelist in one last transaction, so the next
// Open reads it (a few pages) instead of walking every page of the file to
// rebuild it, and need not check every value first (openDB): on a large
// spool that walk reads a good part of the file before the relay listens.
// The committer has stopped, so nothing else writes. A crash skips this and
// the next Open takes the long way.
func (s *Spool) syncFreelist() {
	s.db.NoFreelistSync = false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		// A transaction that changes nothing writes nothing; the flag's
		// value is irrelevant, only that the commit happens.
		if err := s.saveRun(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyClean, []byte("1"))
	})
	if err != nil {
		s.log.Warn("spool: could not save the free page list at shutdown; the next start reads the whole file", "err", err)
	}
}

func (s *Spool) isClosed() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.closing
}

// view runs a short read transaction.
func (s *Spool) view(fn func(tx *bbolt.Tx) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// check runs bbolt's consistency check and returns every finding.
func (s *Spool) check() []error {
	var errs []error
	err := s.db.View(func(tx *bbolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

// Check runs bbolt's consistency check on the open spool (tx.Check); all
// findings are joined into one error.
func (s *Spool) Check() error {
	if s.isClosed() {
		return ErrClosed
	}
	if errs := s.check(); len(errs) > 0 {
		return fmt.Errorf("spool: check %s: %w", s.path, errors.Join(errs...))
	}
	return nil
}
