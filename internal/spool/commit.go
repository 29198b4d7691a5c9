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

// enqueue hands a request to the committer and returns where its result
// will arrive. It never waits for a transaction. A lazy request does not
// start a commit by itself (see lazyWait).
func (s *Spool) enqueue(fn func(tx *bbolt.Tx) error, after func(), lazy bool) (<-chan error, error) {
	r := &request{fn: fn, after: after, done: make(chan error, 1)}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.closing {
		return nil, ErrClosed
	}
	s.queue = append(s.queue, r)
	switch {
	case !lazy:
		s.urgent++
		s.qcond.Signal()
	case s.lazyTimer == nil:
		s.lazyTimer = time.AfterFunc(lazyWait, func() {
			s.qmu.Lock()
			s.lazyDue = true
			s.qcond.Signal()
			s.qmu.Unlock()
		})
	}
	return r.done, nil
}

// submit runs fn in the next group commit and waits until it is durable.
func (s *Spool) submit(fn func(tx *bbolt.Tx) error, after func()) error {
	done, err := s.enqueue(fn, after, false)
	if err != nil {
		return err
	}
	return <-done
}

// submitLazy is submit for a change no client's session is waiting on
// (delivery bookkeeping, operator actions): it waits up to lazyWait for a
// commit some session needs anyway, and rides along.
func (s *Spool) submitLazy(fn func(tx *bbolt.Tx) error, after func()) error {
	done, err := s.enqueue(fn, after, true)
	if err != nil {
		return err
	}
	return <-done
}

// lazyWait is how long a lazy request waits for company before it commits
// on its own. Every commit costs the meta page, the tree pages it changes
// and, on ext4, the inode (its mtime changed): about 28 KB on this
// machine's disk, whatever it carries. When the delivery workers recorded
// their attempts and deletions in commits of their own, a 1 MiB message
// cost 1.2 commits; riding along with the sessions' commits, about 1.0.
// The wait only delays the next delivery step, never a client.
const lazyWait = 10 * time.Millisecond

// run is the committer. It takes everything queued so far as one batch
// without waiting for more (a lone writer pays one fsync, not a timer), and
// whatever arrives during that fsync becomes the next batch. Lazy requests
// wait for the next urgent one or for lazyWait. We do not use db.Batch:
// its MaxBatchDelay timer would add 10 ms to every lone commit.
func (s *Spool) run() {
	defer close(s.stopped)
	var spare []*request
	s.lastDrop = s.opt.Now()
	for {
		s.qmu.Lock()
		for s.urgent == 0 && !(s.lazyDue && len(s.queue) > 0) && !s.closing {
			s.qcond.Wait()
		}
		s.gatherLocked()
		batch := s.queue
		s.queue = spare[:0]
		closing := s.closing
		s.urgent, s.lazyDue = 0, false
		if s.lazyTimer != nil {
			s.lazyTimer.Stop()
			s.lazyTimer = nil
		}
		s.qmu.Unlock()
		if len(batch) == 0 && closing {
			return
		}
		s.commitBatch(batch)
		clear(batch) // drop references to finished requests and their buffers
		spare = batch
	}
}

// defaultDropEvery is how often, at most, the committer drops the whole
// mapping of the file (dropAll) after a commit. A commit reads the tree
// pages it changes through the mapping, deleting a chunk reads its root
// page, and each read faults in the 64 KiB around it; pages are rewritten
// elsewhere at every commit, so the mapped part grew by 20-50 MiB a second
// at 8 clients x 1 MiB until it covered the file. A drop costs a TLB
// shootdown on every core (10% of the relay's CPU when done per deleted
// message), so it runs on a timer: 20 ms lets at most about 1 MiB accumulate.
const defaultDropEvery = 20 * time.Millisecond

// gatherWait is the least the committer waits for more requests while
// other clients are mid-transaction, and maxGather the most. fdatasync
// takes 0.3-1 ms on this kind of disk, shorter than the SMTP exchanges
// around each commit, so without a short wait concurrent sessions rarely
// met in one transaction: 1.02 fsyncs per message at 8 clients x 1 KiB
// (strace). A lone client never waits.
//
// Past that the wait is as long as the previous commit took (gather): a
// request that arrives while a commit runs waits for it to end and then
// for its own, so holding a commit for it as long as one takes delays
// nobody by more than one commit, and saves one. Each commit costs about
// 28 KB of disk whatever it carries (the meta page, the tree pages it
// changes, the inode whose mtime changed); at 8 clients x 1 MiB, where a
// commit takes 2-5 ms because it writes the chunks, waiting 1 ms made 1.1
// commits per message, waiting about a commit's length 0.9, at the same
// rate. On a slow SD card the wait grows with its fsync, up to maxGather.
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
// request queued, or gather() has passed, or the spool is closing. Lazy
// requests are nobody's client: they do not count.
func (s *Spool) gatherLocked() {
	if s.expected() <= s.urgent || s.closing {
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
	for !expired && !s.closing && s.urgent < s.expected() {
		s.qcond.Wait()
	}
}

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
		err := s.db.Update(func(tx *bbolt.Tx) error {
			s.freed = s.freed[:0] // a rerun starts over
			for i, r := range batch {
				if err := callFn(r.fn, tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
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
