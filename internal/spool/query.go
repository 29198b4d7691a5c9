package spool

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

func notFound(id string) error { return fmt.Errorf("%w: %s", ErrNotFound, id) }

// Get returns the message record; ErrNotFound if there is none.
func (s *Spool) Get(id string) (*Message, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var m *Message
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		m, err = getMessage(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func getMessage(tx *bbolt.Tx, id string) (*Message, error) {
	v := tx.Bucket(bucketMsgs).Get([]byte(id))
	if v == nil {
		return nil, notFound(id)
	}
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("spool: record %s: %w", id, err)
	}
	m.deriveOutcomes()
	return &m, nil
}

// List returns the messages in state, oldest first.
func (s *Spool) List(state State) ([]*Message, error) {
	return s.fetch(s.selectIDs(func(e entry) bool { return e.state == state }), 0,
		func(m *Message) bool { return m.State == state })
}

// Page returns up to limit messages in state whose ID sorts after after
// ("" = from the start), oldest first, and how many messages are in state
// in all. more says whether messages follow the page. Only the page's
// records are read: a listing of a 22,000-message spool costs what its
// page costs, not the whole queue in memory.
func (s *Spool) Page(state State, after string, limit int) (msgs []*Message, total int, more bool, err error) {
	ids := s.selectIDs(func(e entry) bool { return e.state == state })
	total = len(ids)
	start, _ := slices.BinarySearch(ids, after)
	if start < len(ids) && ids[start] == after {
		start++
	}
	ids = ids[start:]
	if limit > 0 && len(ids) > limit {
		ids, more = ids[:limit], true
	}
	msgs, err = s.fetch(ids, 0, func(m *Message) bool { return m.State == state })
	return msgs, total, more, err
}

// Waiting is a queued message with a pending recipient as the index knows
// it: enough to find the ones due to expire without reading any record.
type Waiting struct {
	ID        string
	Since     time.Time     // Received, or Requeued when later
	QueuedRun time.Duration // Message.QueuedRun
}

// Waiting lists the queued messages with a pending recipient, from memory.
func (s *Spool) Waiting() []Waiting {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Waiting
	for id, e := range s.index {
		if e.state == StateQueued && e.pending {
			out = append(out, Waiting{ID: id, Since: e.since, QueuedRun: e.queuedRun})
		}
	}
	return out
}

// Finished returns the queued messages with no pending recipient left
// (a delete that failed, or a stop between two writes), reading only
// their records.
func (s *Spool) Finished() ([]*Message, error) {
	return s.fetch(s.selectIDs(func(e entry) bool { return e.state == StateQueued && !e.pending }), 0,
		func(m *Message) bool { return m.State == StateQueued && len(m.Pending()) == 0 })
}

// Due returns up to limit (0 = no limit) queued messages whose NextAttempt
// has come and that still have a pending recipient, oldest first.
func (s *Spool) Due(now time.Time, limit int) ([]*Message, error) {
	due := func(state State, next time.Time, pending bool) bool {
		return state == StateQueued && pending && !next.After(now)
	}
	return s.fetch(s.selectIDs(func(e entry) bool { return due(e.state, e.next, e.pending) }), limit,
		func(m *Message) bool { return due(m.State, m.NextAttempt, len(m.Pending()) > 0) })
}

// NextDue returns the earliest NextAttempt among queued messages that still
// have a pending recipient; false if there are none.
func (s *Spool) NextDue() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best time.Time
	found := false
	for _, e := range s.index {
		if e.state == StateQueued && e.pending && (!found || e.next.Before(best)) {
			best, found = e.next, true
		}
	}
	return best, found
}

// selectIDs returns the sorted IDs of indexed messages that match.
func (s *Spool) selectIDs(match func(entry) bool) []string {
	s.mu.Lock()
	var out []string
	for id, e := range s.index {
		if match(e) {
			out = append(out, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(out)
	return out
}

// fetch reads the records of ids in one short read transaction. keep
// re-checks each record, because a commit may land between reading the
// index and reading the records.
func (s *Spool) fetch(ids []string, limit int, keep func(*Message) bool) ([]*Message, error) {
	out := []*Message{}
	if len(ids) == 0 {
		return out, nil
	}
	err := s.view(func(tx *bbolt.Tx) error {
		for _, id := range ids {
			if limit > 0 && len(out) >= limit {
				break
			}
			m, err := getMessage(tx, id)
			if err != nil {
				continue // deleted meanwhile, or unreadable (logged at Open)
			}
			if keep(m) {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool: list: %w", err)
	}
	if len(ids) >= trimAfter {
		// The records read stay mapped, as our resident memory, until
		// the next commit trims them; a relay paged through while idle
		// would keep the whole queue's records mapped.
		s.dropAll()
	}
	return out, nil
}

// trimAfter: a read of this many records or more trims the mapping.
const trimAfter = 32

// Update reads the message, lets fn change it and stores it, all in one
// group-committed transaction; it returns the stored message once durable.
// An error from fn aborts the update and is returned as is. fn may run more
// than once (when another request in the same batch fails), so it must
// only change the message, and it must not call the Spool. ID, Size and
// Chunks describe the stored body and cannot be changed; History is cut to
// the newest HistoryLimit attempts.
func (s *Spool) Update(id string, fn func(*Message) error) (*Message, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var out *Message
	err := s.submitOther(func(tx *bbolt.Tx) error {
		m, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		size, chunks := m.Size, m.Chunks
		if err := fn(m); err != nil {
			return err
		}
		m.ID, m.Size, m.Chunks = id, size, chunks
		if n := len(m.History); n > s.opt.HistoryLimit {
			m.History = append([]Attempt(nil), m.History[n-s.opt.HistoryLimit:]...)
		}
		m.fillReplies()
		rec, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("spool: update %s: %w", id, err)
		}
		out = m
		return tx.Bucket(bucketMsgs).Put([]byte(id), rec)
	}, func() {
		s.mu.Lock()
		s.index[id] = entryOf(out)
		s.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes the message record and its body and frees its quota. It
// always works at quota, since it only frees space.
func (s *Spool) Delete(id string) error {
	return s.delete(id, kindOther)
}

// DeleteDelivered is Delete for a message the upstream has taken: while a
// client's session is expected to commit soon, the delete rides on that
// commit (or any other) instead of costing one of its own, and goes out
// by itself only after a short wait (riderDelay) or with riderMax others. It
// returns once the delete is durable; until then the message is still
// queued, in memory too, so a crash meanwhile sends it again (a duplicate,
// never a loss).
func (s *Spool) DeleteDelivered(id string) error {
	return s.delete(id, kindRider)
}

func (s *Spool) delete(id string, k kind) error {
	if !validID(id) {
		return notFound(id)
	}
	var found bool
	err := await(s.enqueue(func(tx *bbolt.Tx) error {
		// A missing message is the caller's answer, not a failed
		// request: a failure would roll back and rerun the whole batch,
		// sessions' chunks and all.
		found = tx.Bucket(bucketMsgs).Get([]byte(id)) != nil
		if !found {
			return nil
		}
		_, err := s.deleteMessage(tx, id)
		return err
	}, func() {
		s.mu.Lock()
		if e, ok := s.index[id]; ok {
			s.stored -= e.size
			delete(s.index, id)
		}
		s.mu.Unlock()
	}, k))
	if err == nil && !found {
		return notFound(id)
	}
	// Already prefixed: ErrNotFound, ErrClosed or the commit's own error.
	return err
}

// SetMaxSize changes the quota (a config reload). Messages already stored
// are never touched: a lower quota only refuses new ones until delivery
// brings the spool under it.
func (s *Spool) SetMaxSize(n int64) {
	s.mu.Lock()
	s.opt.MaxSize = n
	s.mu.Unlock()
}

// Stats returns a snapshot from memory; it never touches the file.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Pending: s.writers, Used: s.stored + s.reserved}
	for _, e := range s.index {
		if e.state == StateDead {
			st.Dead++
			st.DeadBytes += e.size
			continue
		}
		st.Messages++
		st.Bytes += e.size
		if e.state == StateHeld {
			st.Held++
			st.HeldBytes += e.size
		}
		if st.Oldest.IsZero() || e.received.Before(st.Oldest) {
			st.Oldest = e.received
		}
	}
	return st
}
