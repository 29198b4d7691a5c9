package spool

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"relaybox/internal/clocktest"
)

func TestGroupCommit(t *testing.T) {
	const goroutines, each = 8, 100
	s := openAt(t, tempPath(t), Options{})
	start := s.commits.Load()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w, err := s.Create(testEnv())
				if err != nil {
					errs <- err
					return
				}
				fmt.Fprintf(w, "Subject: %d/%d\r\n\r\nbody\r\n", g, i)
				if _, err := w.Commit(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	msgs, err := s.List(StateQueued)
	if err != nil || len(msgs) != goroutines*each {
		t.Fatalf("List: %d messages, %v; want %d", len(msgs), err, goroutines*each)
	}
	commits := s.commits.Load() - start
	t.Logf("%d messages in %d commits", goroutines*each, commits)
	if commits >= goroutines*each {
		t.Errorf("%d commits for %d messages: commits are not shared", commits, goroutines*each)
	}
}

// blockCommitter parks the committer inside a transaction until release is
// called, so the requests sent meanwhile form one batch.
func blockCommitter(t *testing.T, s *Spool) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	done, err := s.enqueue(func(*bbolt.Tx) error {
		close(entered)
		<-gate
		return nil
	}, nil, kindSession)
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			if err := <-done; err != nil {
				t.Errorf("blocker: %v", err)
			}
		})
	}
	// A test that fails while the committer is parked must not hang in
	// Close: this cleanup runs before openAt's.
	t.Cleanup(release)
	return release
}

// waitQueued waits until n requests are queued for the committer.
func waitQueued(t *testing.T, s *Spool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.qmu.Lock()
		q := s.queuedLocked()
		s.qmu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests queued", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func ok(err error) bool { return err == nil }

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func TestBatchFailureIsolated(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	var m [3]*Message
	for i := range m {
		m[i] = put(t, s, testEnv(), []byte("x"))
	}
	boom := errors.New("boom")
	tests := []struct {
		name string
		call func() error
		want func(error) bool
	}{
		{"ok before", func() error {
			_, err := s.Update(m[0].ID, func(x *Message) error { x.LastReply = "first"; return nil })
			return err
		}, ok},
		{"failing fn", func() error {
			_, err := s.Update(m[1].ID, func(x *Message) error { x.LastReply = "lost"; return boom })
			return err
		}, is(boom)},
		{"panicking fn", func() error {
			_, err := s.Update(m[1].ID, func(x *Message) error { panic("bad fn") })
			return err
		}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "panicked: bad fn")
		}},
		{"missing message", func() error { return s.Delete("0000000000000") }, is(ErrNotFound)},
		{"ok after", func() error {
			_, err := s.Update(m[2].ID, func(x *Message) error { x.LastReply = "last"; return nil })
			return err
		}, ok},
		{"new message", func() error {
			w, err := s.Create(testEnv())
			if err != nil {
				return err
			}
			w.Write(make([]byte, 10))
			_, err = w.Commit()
			return err
		}, ok},
	}

	release := blockCommitter(t, s)
	before := s.commits.Load()
	results := make([]chan error, len(tests))
	for i, tt := range tests {
		results[i] = make(chan error, 1)
		go func() { results[i] <- tt.call() }()
	}
	waitQueued(t, s, len(tests))
	release()
	for i, tt := range tests {
		if err := <-results[i]; !tt.want(err) {
			t.Errorf("%s: unexpected result %v", tt.name, err)
		}
	}
	// The blocker's commit plus one for the whole batch, however many
	// requests in it failed.
	if got := s.commits.Load() - before; got != 2 {
		t.Errorf("%d commits, want 2 (blocker, then one batch)", got)
	}
	for i, want := range []string{"first", "", "last"} {
		if got, _ := s.Get(m[i].ID); got.LastReply != want {
			t.Errorf("message %d LastReply = %q, want %q", i, got.LastReply, want)
		}
	}
}

// The committer gathers the requests of the sessions mid-transaction; a
// delivery worker's or operator's request is nobody's session and must not
// end the wait: if it did, a commit would leave as soon as the workers had
// queued theirs, and the sessions' chunks would go in a commit of their own
// (docs/performance.md has the figures).
func TestGatherCountsOnlySessions(t *testing.T) {
	s := openAt(t, tempPath(t), Options{Concurrent: func() int { return 2 }})
	m := put(t, s, testEnv(), []byte("x"))
	release := blockCommitter(t, s)
	other := make(chan error, 1)
	go func() {
		_, err := s.Update(m.ID, func(*Message) error { return nil })
		other <- err
	}()
	waitQueued(t, s, 1)
	var session []<-chan error
	for i := range 2 {
		s.qmu.Lock()
		gathered := s.gatheredLocked()
		s.qmu.Unlock()
		if gathered {
			t.Fatalf("gathered with %d of 2 sessions' requests and a worker's queued", i)
		}
		done, err := s.enqueue(func(*bbolt.Tx) error { return nil }, nil, kindSession)
		if err != nil {
			t.Fatal(err)
		}
		session = append(session, done)
	}
	s.qmu.Lock()
	gathered := s.gatheredLocked()
	s.qmu.Unlock()
	if !gathered {
		t.Fatal("not gathered with both sessions' requests queued")
	}
	c0 := s.commits.Load()
	release()
	for _, done := range append(session, other) {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.commits.Load() - c0; n != 2 { // the blocker's, then one for all three
		t.Errorf("%d commits after the blocker's, want 1", n-1)
	}
}

// The gathering wait follows the last commit's length, within bounds.
func TestGatherFollowsCommitTime(t *testing.T) {
	s := &Spool{}
	for _, c := range []struct{ last, want time.Duration }{
		{0, gatherWait},
		{300 * time.Microsecond, gatherWait},
		{3 * time.Millisecond, 3 * time.Millisecond},
		{time.Second, maxGather},
	} {
		s.lastCommit = c.last
		if got := s.gather(); got != c.want {
			t.Errorf("after a %v commit: gather %v, want %v", c.last, got, c.want)
		}
	}
}

// A lone client's message within the buffer budget is stored in one
// transaction at Commit, not one per chunk: every transaction writes its
// meta and tree pages whatever it carries.
func TestLoneWriterCommitsOnce(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	body := randomBody(1 << 20)
	w, err := s.Create(testEnv())
	if err != nil {
		t.Fatal(err)
	}
	c0 := s.commits.Load()
	for p := body; len(p) > 0; p = p[min(len(p), 64<<10):] {
		if _, err := w.Write(p[:min(len(p), 64<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.commits.Load() - c0; n != 1 {
		t.Errorf("%d transactions for a 1 MiB message, want 1", n)
	}
	if m.Chunks != 5 {
		t.Errorf("%d chunks, want 5", m.Chunks)
	}
	assertBody(t, s, m.ID, body)
	if n := s.bufsHeld.Load(); n != 0 {
		t.Errorf("%d chunk buffers still counted after Commit", n)
	}
}

// Extra buffers go to a writer alone, within the budget: it stores what it
// holds, in one transaction, when the budget runs out or another writer
// opens; and every buffer comes back.
func TestBufferBudget(t *testing.T) {
	const cs = 4096
	s := openAt(t, tempPath(t), Options{ChunkSize: cs, BufferBudget: 3 * cs})
	a, _ := s.Create(testEnv())
	bodyA := randomBody(7*cs + 10)
	c0 := s.commits.Load()
	step := func(w *Writer, p []byte, stored, commits int, why string) {
		t.Helper()
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if n := keyCount(t, s, bucketMsgs, w.ID()); n != stored {
			t.Errorf("%s: %d chunks stored, want %d", why, n, stored)
		}
		if n := int(s.commits.Load() - c0); n != commits {
			t.Errorf("%s: %d transactions, want %d", why, n, commits)
		}
	}
	step(a, bodyA[:2*cs], 0, 0, "alone, within the budget")
	step(a, bodyA[2*cs:3*cs], 3, 1, "alone, past the budget")
	b, _ := s.Create(testEnv())
	bodyB := randomBody(100)
	step(b, bodyB, 0, 1, "a second writer's first bytes")
	step(a, bodyA[3*cs:5*cs], 5, 3, "with company")
	ma, err := a.Commit()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.Commit()
	if err != nil {
		t.Fatal(err)
	}
	assertBody(t, s, ma.ID, bodyA[:5*cs])
	assertBody(t, s, mb.ID, bodyB)
	if n := s.bufsHeld.Load(); n != 0 {
		t.Errorf("%d chunk buffers still counted", n)
	}
	w, _ := s.Create(testEnv())
	w.Write(bodyA)
	w.Abort()
	if n := s.bufsHeld.Load(); n != 0 {
		t.Errorf("%d chunk buffers still counted after Abort", n)
	}
}

// A commit that does not finish (storage hanging in fsync) shows as
// stalled once it has run past the limit; an idle committer never does.
func TestCommitStalled(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	s := openAt(t, tempPath(t), Options{Now: clk.Now})
	if s.CommitStalled(time.Minute) {
		t.Fatal("idle committer reported stalled")
	}
	release := blockCommitter(t, s)
	clk.Add(30 * time.Second)
	if s.CommitStalled(time.Minute) {
		t.Fatal("stalled after 30s with a 1m limit")
	}
	clk.Add(time.Minute)
	if !s.CommitStalled(time.Minute) {
		t.Fatal("a commit running 90s is not reported stalled")
	}
	release()
	// The caller is answered inside the batch, just before it ends.
	for deadline := time.Now().Add(5 * time.Second); s.CommitStalled(time.Minute); {
		if time.Now().After(deadline) {
			t.Fatal("still stalled after the commit finished")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRiders waits until n deletes wait for a commit to ride on.
func waitRiders(t *testing.T, s *Spool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.qmu.Lock()
		q := len(s.riders)
		s.qmu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d deletes waiting", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// oneSession is Options.Concurrent for a client mid-transaction, whose
// commit the committer expects.
func oneSession() int { return 1 }

func deleteLater(s *Spool, id string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.DeleteDelivered(id) }()
	return done
}

// A delivered message's delete costs no transaction of its own: it rides
// on the next commit (here a session's), which also frees its quota and
// index entry, in that commit's order.
func TestDeliveredDeleteRidesOnNextCommit(t *testing.T) {
	s := openAt(t, tempPath(t), Options{riderDelay: time.Hour, Concurrent: oneSession})
	m := put(t, s, testEnv(), []byte("delivered"))
	c0 := s.Commits()
	done := deleteLater(s, m.ID)
	waitRiders(t, s, 1)
	if s.Commits() != c0 {
		t.Fatal("the delete started a transaction of its own")
	}
	if st := s.Stats(); st.Messages != 1 {
		t.Fatalf("before its commit the delete shows: %+v", st)
	}
	next := put(t, s, testEnv(), []byte("next"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - c0; n != 1 {
		t.Errorf("%d commits for an accept and a delete, want 1", n)
	}
	if _, err := s.Get(m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delivered message still there: %v", err)
	}
	assertNoLeftovers(t, s, m.ID)
	if st := s.Stats(); st.Messages != 1 || st.Bytes != next.Size {
		t.Fatalf("after the commit: %+v", st)
	}
}

// With nothing else to ride on, a delete waits at most riderDelay, or
// until riderMax deletes wait: then they share one transaction.
func TestDeliveredDeleteBounded(t *testing.T) {
	t.Run("delay", func(t *testing.T) {
		s := openAt(t, tempPath(t), Options{riderDelay: 20 * time.Millisecond, Concurrent: oneSession})
		m := put(t, s, testEnv(), []byte("x"))
		c0 := s.Commits()
		select {
		case err := <-deleteLater(s, m.ID):
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a lone delete never went out")
		}
		if n := s.Commits() - c0; n != 1 {
			t.Errorf("%d commits, want 1", n)
		}
	})
	t.Run("count", func(t *testing.T) {
		s := openAt(t, tempPath(t), Options{riderDelay: time.Hour, Concurrent: oneSession})
		var dones []<-chan error
		var ids []string
		for range riderMax {
			ids = append(ids, put(t, s, testEnv(), []byte("x")).ID)
		}
		c0 := s.Commits()
		for _, id := range ids {
			dones = append(dones, deleteLater(s, id))
		}
		for _, done := range dones {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d deletes waiting did not go out", riderMax)
			}
		}
		// Usually one; a delete that came after the batch left may wait
		// for the next, but never for the hour.
		if n := s.Commits() - c0; n < 1 || n > 2 {
			t.Errorf("%d commits for %d deletes", n, riderMax)
		}
		if st := s.Stats(); st.Messages != 0 {
			t.Fatalf("%d messages left", st.Messages)
		}
	})
}

// With no session expected to commit, a delete has nothing to ride on and
// delays nobody: it goes out at once, not after riderDelay.
func TestDeliveredDeleteAloneGoesAtOnce(t *testing.T) {
	s := openAt(t, tempPath(t), Options{riderDelay: time.Hour})
	m := put(t, s, testEnv(), []byte("x"))
	select {
	case err := <-deleteLater(s, m.ID):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a delete waited for a commit with no session expected")
	}
}

// Close flushes the deletes still waiting: a delivered message is not
// sent again after a clean stop.
func TestCloseFlushesDeliveredDeletes(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{riderDelay: time.Hour, Concurrent: oneSession})
	m := put(t, s, testEnv(), []byte("x"))
	done := deleteLater(s, m.ID)
	waitRiders(t, s, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("delete at Close: %v", err)
	}
	s = openAt(t, path, Options{})
	if _, err := s.Get(m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Close the delivered message is still there: %v", err)
	}
}

// In a transaction the sessions' requests come first, before delivery
// bookkeeping queued earlier and the deletes riding along; all share the
// one commit.
func TestSessionRequestsFirst(t *testing.T) {
	s := openAt(t, tempPath(t), Options{riderDelay: time.Hour, Concurrent: oneSession})
	m := put(t, s, testEnv(), []byte("x"))
	gone := put(t, s, testEnv(), []byte("y"))
	release := blockCommitter(t, s)
	var mu sync.Mutex
	var order []string
	note := func(what string) {
		mu.Lock()
		order = append(order, what)
		mu.Unlock()
	}
	other := make(chan error, 1)
	go func() {
		_, err := s.Update(m.ID, func(*Message) error { note("delivery"); return nil })
		other <- err
	}()
	waitQueued(t, s, 1)
	rider := deleteLater(s, gone.ID)
	waitRiders(t, s, 1)
	session, err := s.enqueue(func(*bbolt.Tx) error { note("session"); return nil }, nil, kindSession)
	if err != nil {
		t.Fatal(err)
	}
	c0 := s.Commits()
	release()
	for _, done := range []<-chan error{session, other, rider} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(order, ","); got != "session,delivery" {
		t.Errorf("order in the transaction %s, want session,delivery", got)
	}
	if n := s.Commits() - c0; n != 2 { // the blocker's, then one for all three
		t.Errorf("%d commits after the blocker's, want 1", n-1)
	}
}
