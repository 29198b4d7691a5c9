package spool

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// crashCopy copies the file of an open spool, as a kill -9 would leave it
// (every commit so far is durable), and opens the copy.
func crashCopy(t *testing.T, path string, opt Options) *Spool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "spool.db")
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return openAt(t, crashed, opt)
}

func dueIDs(t *testing.T, s *Spool, now time.Time) map[string]bool {
	t.Helper()
	due, err := s.Due(now, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range due {
		out[m.ID] = true
	}
	return out
}

// A first attempt prepaid at accept (Options.Prepay) shows no attempt
// while the message waits; after a crash the next Open charges it (one
// attempt, one backoff step from the restart); after a clean close it
// does not, and the prepayment still stands for the next run.
func TestPrepaidFirstAttempt(t *testing.T) {
	clk := newClock()
	opt := Options{Now: clk.Now, Prepay: func() time.Duration { return time.Minute }}
	path := tempPath(t)
	s := openAt(t, path, opt)
	m := put(t, s, testEnv(), []byte("x"))
	w, _ := s.Create(testEnv())
	w.Write([]byte("y"))
	w.Hold("repeat of " + m.ID)
	held, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, m.ID)
	if got.Prepaid != time.Minute || got.Attempts != 0 || len(got.History) != 0 || !got.NextAttempt.Equal(got.Received) {
		t.Fatalf("as accepted: prepaid %v attempts %d history %v next %v", got.Prepaid, got.Attempts, got.History, got.NextAttempt)
	}
	if mustGet(t, s, held.ID).Prepaid != 0 {
		t.Fatal("a held message was prepaid: it is never due until released")
	}
	if !dueIDs(t, s, clk.Now())[m.ID] {
		t.Fatal("a prepaid message is not due at once")
	}

	clk.Add(10 * time.Minute)
	c := crashCopy(t, path, opt)
	got = mustGet(t, c, m.ID)
	if got.Attempts != 1 || got.Prepaid != 0 || !got.NextAttempt.Equal(clk.Now().Add(time.Minute)) || len(got.History) != 0 || got.LastReply == "" {
		t.Fatalf("after a crash: attempts %d prepaid %v next %v (now %v) history %v reply %q",
			got.Attempts, got.Prepaid, got.NextAttempt, clk.Now(), got.History, got.LastReply)
	}
	if dueIDs(t, c, clk.Now())[m.ID] || !dueIDs(t, c, clk.Now().Add(time.Minute))[m.ID] {
		t.Fatal("after a crash the message is not held back by exactly its backoff step")
	}
	if h := mustGet(t, c, held.ID); h.Attempts != 0 || h.State != StateHeld {
		t.Fatalf("held message after a crash: attempts %d state %s", h.Attempts, h.State)
	}
	// A second crash charges nothing more: the attempt is recorded now.
	c2 := crashCopy(t, c.path, opt)
	if got := mustGet(t, c2, m.ID); got.Attempts != 1 {
		t.Fatalf("second crash: attempts %d, want 1", got.Attempts)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, opt)
	got = mustGet(t, s, m.ID)
	if got.Attempts != 0 || got.Prepaid != time.Minute || !dueIDs(t, s, clk.Now())[m.ID] {
		t.Fatalf("after a clean close: attempts %d prepaid %v, due %v", got.Attempts, got.Prepaid, dueIDs(t, s, clk.Now()))
	}
	// The clean flag is spent by the Open that read it: a crash in this
	// run charges the attempt again.
	c3 := crashCopy(t, path, opt)
	if got := mustGet(t, c3, m.ID); got.Attempts != 1 {
		t.Fatalf("crash after a clean restart: attempts %d, want 1", got.Attempts)
	}
}

// Without Prepay (no upstream configured) nothing is prepaid, so a crash
// charges nothing: held-back mail earns no backoff. SetPrepay turns it on
// for the messages committed after it.
func TestPrepayOff(t *testing.T) {
	clk := newClock()
	path := tempPath(t)
	s := openAt(t, path, Options{Now: clk.Now})
	m := put(t, s, testEnv(), []byte("x"))
	s.SetPrepay(func() time.Duration { return time.Hour })
	later := put(t, s, testEnv(), []byte("y"))
	if p := mustGet(t, s, m.ID).Prepaid; p != 0 {
		t.Fatalf("prepaid %v without Prepay", p)
	}
	if p := mustGet(t, s, later.ID).Prepaid; p != time.Hour {
		t.Fatalf("prepaid %v after SetPrepay, want 1h", p)
	}
	c := crashCopy(t, path, Options{Now: clk.Now})
	due := dueIDs(t, c, clk.Now())
	if !due[m.ID] || due[later.ID] {
		t.Fatalf("after a crash due %v: want %s (never prepaid) only", due, m.ID)
	}
}
