package spool

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// request is one unit of work for the committer.
type request struct {
	// fn runs inside the shared write transaction. It may run more than
	// once: when another request in the batch fails, the batch is rolled
	// back and rerun without it.
	fn func(tx *bbolt.Tx) error
	// after runs in the committer once the transaction is durable, before
	// the caller is answered, so in-memory state follows commit order.
	after func()
	done  chan error
}

// kind says who waits on a request, and so when the committer takes it.
type kind int

const (
	// kindSession: a client's SMTP session waits on it (a writer's chunk,
	// commit or abort). The committer gathers these (gatherLocked) and
	// runs them first in a transaction.
	kindSession kind = iota
	// kindOther: delivery bookkeeping that must be durable before the
	// caller goes on (an attempt recorded before it is made), and
	// operator actions. Committed at once, after the sessions' requests.
	kindOther
	// kindRider: a delete of a delivered message (DeleteDelivered). While
	// a client's session is expected to commit soon it starts no
	// transaction of its own and rides on that one, for at most
	// riderDelay or until riderMax are waiting; Close flushes it.
	kindRider
)

// riderDelay is how long a rider waits for a commit that happens anyway
// before it gets one of its own, and riderMax how many may wait. Each
// transaction costs two fdatasyncs and a meta page whatever it carries,
// so a delivered message's delete alone in one doubles the disk cost of
// a lone client's message, and a session's commit that arrives while it
// runs waits for it. A delete that waits only delays freeing its quota.
const (
	defaultRiderDelay = 50 * time.Millisecond
	riderMax          = 64
)

// enqueue hands a request to the committer and returns where its result
// will arrive. It never waits for a transaction.
func (s *Spool) enqueue(fn func(tx *bbolt.Tx) error, after func(), k kind) (<-chan error, error) {
	r := &request{fn: fn, after: after, done: make(chan error, 1)}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	switch k {
	case kindSession:
		s.sessions = append(s.sessions, r)
		s.sessionReqs++
	case kindOther:
		s.others = append(s.others, r)
	case kindRider:
		if len(s.riders) == 0 {
			s.riderFrom = time.Now()
			// Wakes the committer when the first rider's wait is over;
			// a wake after the riders left with another commit is
			// harmless (run checks again).
			time.AfterFunc(s.opt.riderDelay, func() {
				s.qmu.Lock()
				s.qcond.Broadcast()
				s.qmu.Unlock()
			})
		}
		s.riders = append(s.riders, r)
	}
	s.qcond.Signal()
	return r.done, nil
}

// submit runs fn, a session's request, in the next group commit and waits
// until it is durable.
func (s *Spool) submit(fn func(tx *bbolt.Tx) error, after func()) error {
	return await(s.enqueue(fn, after, kindSession))
}

// submitOther is submit for a change no client's session waits on:
// delivery bookkeeping and operator actions.
func (s *Spool) submitOther(fn func(tx *bbolt.Tx) error, after func()) error {
	return await(s.enqueue(fn, after, kindOther))
}

func await(done <-chan error, err error) error {
	if err != nil {
		return err
	}
	return <-done
}

// Commits is how many write transactions the committer has made since
// Open: each costs two fdatasyncs and a meta page whatever it carries.
func (s *Spool) Commits() int64 { return s.commits.Load() }

// CommitStalled reports whether the committer has been inside one commit
// for longer than limit: a storage device that stopped answering (an SD
// card hanging in fsync). A committer waiting for work is not stalled. It
// is cheap enough for a watchdog to ask every few seconds.
func (s *Spool) CommitStalled(limit time.Duration) bool {
	since := s.commitSince.Load()
	return since != nil && s.opt.Now().Sub(*since) > limit
}

// run is the committer. It takes everything queued so far as one batch
// without waiting for more (a lone writer pays one fsync, not a timer), and
// whatever arrives during that fsync becomes the next batch. We do not use
// db.Batch: its MaxBatchDelay timer would add 10 ms to every lone commit.
// Riders (DeleteDelivered) go along with every batch, but start one only
// when their wait is over (readyLocked).
func (s *Spool) run() {
	defer close(s.stopped)
	var batch []*request
	s.lastDrop = s.opt.Now()
	for {
		s.qmu.Lock()
		for !s.readyLocked() {
			s.qcond.Wait()
		}
		s.gatherLocked()
		// Sessions first: their answers go out before the bookkeeping's
		// after functions run, and a delivery request that fails (a
		// message deleted meanwhile) reruns the batch after them.
		batch = append(batch[:0], s.sessions...)
		batch = append(batch, s.others...)
		batch = append(batch, s.riders...)
		clear(s.sessions)
		clear(s.others)
		clear(s.riders)
		s.sessions, s.others, s.riders = s.sessions[:0], s.others[:0], s.riders[:0]
		s.sessionReqs = 0
		closing := s.closing
		s.qmu.Unlock()
		if len(batch) == 0 && closing {
			return
		}
		started := s.opt.Now()
		s.commitSince.Store(&started)
		s.commitBatch(batch)
		s.commitSince.Store(nil)
		clear(batch) // drop references to finished requests and their buffers
	}
}

// readyLocked says whether the committer has a batch to start: any
// session or other request, riders whose wait is over, or Close.
func (s *Spool) readyLocked() bool {
	if s.closing || len(s.sessions) > 0 || len(s.others) > 0 {
		return true
	}
	// Riders wait only while a session is expected to commit soon: with
	// none, a delete alone delays nobody, and waiting would only keep
	// delivered messages undeleted (sent again after a crash).
	return len(s.riders) > 0 && (len(s.riders) >= riderMax || s.expected() == 0 ||
		time.Since(s.riderFrom) >= s.opt.riderDelay)
}

// queuedLocked is how many requests wait for the committer.
func (s *Spool) queuedLocked() int { return len(s.sessions) + len(s.others) + len(s.riders) }

// defaultDropEvery is how often, at most, the committer drops the whole
// mapping of the file (dropAll) after a commit. A commit reads the tree
// pages it changes through the mapping, deleting a chunk reads its root
// page, and each read faults in the 64 KiB around it; pages are rewritten
// elsewhere at every commit, so without drops the mapped part grows until
// it covers the file. A drop costs a TLB shootdown on every core, too much
// to do per deleted message, so it runs on a timer short enough that
// little accumulates in between.
const defaultDropEvery = 20 * time.Millisecond

// gatherWait is the least the committer waits for more session requests
// while other clients are mid-transaction, and maxGather the most.
// fdatasync on an SSD is shorter than the SMTP exchanges around each
// commit, so without a short wait concurrent sessions rarely meet in one
// transaction and each message pays its own fsync. A lone client never
// waits.
//
// Past that the wait is as long as the previous commit took (gather): a
// request that arrives while a commit runs waits for it to end and then
// for its own, so holding a commit for it as long as one takes delays
// nobody by more than one commit, and saves one. Each commit writes the
// meta page, the tree pages it changes and, on ext4, the inode (its mtime
// changed), whatever it carries, so fewer commits mean less wear. On a
// slow SD card the wait grows with its fsync, up to maxGather.
const (
	gatherWait = time.Millisecond
	maxGather  = 10 * time.Millisecond
)

// gather is how long the committer waits for the expected requests.
func (s *Spool) gather() time.Duration {
	return min(max(s.lastCommit, gatherWait), maxGather)
}

// expected is how many requests the committer may expect soon.
func (s *Spool) expected() int {
	if s.opt.Concurrent != nil {
		return max(s.opt.Concurrent(), int(s.open.Load()))
	}
	return int(s.open.Load())
}

// gatherLocked waits, with s.qmu held, until every expected client has a
// request queued, or gather() has passed, or the spool is closing.
// Delivery and operator requests (and riders) do not count: counting
// them, a commit left as soon as the delivery workers had queued theirs,
// without the sessions it was waiting for.
func (s *Spool) gatherLocked() {
	if s.gatheredLocked() || s.closing {
		return
	}
	expired := false
	t := time.AfterFunc(s.gather(), func() {
		s.qmu.Lock()
		expired = true
		s.qcond.Broadcast()
		s.qmu.Unlock()
	})
	defer t.Stop()
	for !expired && !s.closing && !s.gatheredLocked() {
		s.qcond.Wait()
	}
}

// gatheredLocked says whether every session expected to commit soon has a
// request queued.
func (s *Spool) gatheredLocked() bool { return s.sessionReqs >= s.expected() }

// commitBatch runs the batch in one transaction. A request whose fn fails
// gets its own error and the rest are rerun without it, as db.Batch does:
// its failure was seen with exactly the requests before it applied, which
// is also the state the rerun commits.
func (s *Spool) commitBatch(batch []*request) {
	batch = append([]*request(nil), batch...)
	for len(batch) > 0 {
		failed := -1
		var ferr error
		start := time.Now()
		saved := s.runSaved
		err := s.db.Update(func(tx *bbolt.Tx) error {
			s.freed = s.freed[:0] // a rerun starts over
			for i, r := range batch {
				if err := callFn(r.fn, tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			// Riding on a commit that happens anyway costs no extra
			// write of its own.
			if s.Run()-saved >= runSaveEvery {
				return s.saveRun(tx)
			}
			return nil
		})
		if err != nil {
			s.runSaved = saved // not stored after all
		}
		if failed >= 0 {
			batch[failed].done <- ferr
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		if err != nil {
			// The commit itself failed (disk full, I/O error): nothing in
			// the batch is stored and every caller must hear so.
			s.log.Error("spool: commit failed", "requests", len(batch), "err", err)
			err = fmt.Errorf("spool: commit: %w", err)
			for _, r := range batch {
				r.done <- err
			}
			return
		}
		s.commits.Add(1)
		s.lastCommit = time.Since(start)
		// Before anyone hears of the commit: what it mapped is gone by
		// then (TestBodyNotLeftMapped relies on it). Before the next
		// transaction: freed chunk pages leave the cache (dropFreed).
		if now := s.opt.Now(); len(s.freed) > 0 || now.Sub(s.lastDrop) >= s.opt.dropEvery || now.Before(s.lastDrop) {
			s.dropAll()
			s.dropFreed()
			s.lastDrop = now
		}
		for _, r := range batch {
			if r.after != nil {
				r.after()
			}
			r.done <- nil
		}
		return
	}
}

// callFn turns a panic in a caller's function into that caller's error, so
// one bad Update cannot take the committer (and every session) down.
func callFn(fn func(tx *bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("spool: update function panicked: %v", r)
		}
	}()
	return fn(tx)
}
