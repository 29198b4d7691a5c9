package spool

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func ids(ms []*Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestQueueViews(t *testing.T) {
	path := tempPath(t)
	clk := newClock()
	t0 := clk.Now()
	s := openAt(t, path, Options{Now: clk.Now, HistoryLimit: 3})
	var m [4]*Message
	for i := range m {
		m[i] = put(t, s, testEnv("a@example.edu", "b@example.edu"), []byte("x"))
		clk.Add(time.Second)
	}

	// m0: one recipient delivered, one still pending: stays due.
	if _, err := s.Update(m[0].ID, func(x *Message) error {
		x.Recipients[0].State = RcptDelivered
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// m1: every recipient done: never due again.
	if _, err := s.Update(m[1].ID, func(x *Message) error {
		for i := range x.Recipients {
			x.Recipients[i].State = RcptFailed
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// m2: deferred for an hour, with a long history.
	later := t0.Add(time.Hour)
	up, err := s.Update(m[2].ID, func(x *Message) error {
		x.NextAttempt = later
		x.Attempts = 5
		for i := range 5 {
			x.History = append(x.History, Attempt{At: t0.Add(time.Duration(i) * time.Minute), Outcome: "deferred"})
		}
		x.Size, x.ID, x.Chunks = 999, "bogus", 42 // describe the body: must not change
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(up.History) != 3 || !up.History[2].At.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("history not cut to the newest 3: %+v", up.History)
	}
	if up.ID != m[2].ID || up.Size != 1 || up.Chunks != 1 {
		t.Errorf("Update changed body fields: id %s size %d chunks %d", up.ID, up.Size, up.Chunks)
	}
	// m3: dead.
	if _, err := s.Update(m[3].ID, func(x *Message) error { x.State = StateDead; return nil }); err != nil {
		t.Fatal(err)
	}

	check := func(label string) {
		t.Helper()
		due, err := s.Due(t0.Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(due), []string{m[0].ID}; !slices.Equal(got, want) {
			t.Errorf("%s: Due = %v, want %v", label, got, want)
		}
		due, _ = s.Due(later, 0)
		if got, want := ids(due), []string{m[0].ID, m[2].ID}; !slices.Equal(got, want) {
			t.Errorf("%s: Due at +1h = %v, want %v", label, got, want)
		}
		due, _ = s.Due(later, 1)
		if got, want := ids(due), []string{m[0].ID}; !slices.Equal(got, want) {
			t.Errorf("%s: Due limit 1 = %v, want %v", label, got, want)
		}
		if next, ok := s.NextDue(); !ok || !next.Equal(t0) {
			t.Errorf("%s: NextDue = %v %v, want %v", label, next, ok, t0)
		}
		queued, _ := s.List(StateQueued)
		if got, want := ids(queued), []string{m[0].ID, m[1].ID, m[2].ID}; !slices.Equal(got, want) {
			t.Errorf("%s: List(queued) = %v, want %v", label, got, want)
		}
		dead, _ := s.List(StateDead)
		if got, want := ids(dead), []string{m[3].ID}; !slices.Equal(got, want) {
			t.Errorf("%s: List(dead) = %v, want %v", label, got, want)
		}
		if st := s.Stats(); st.Messages != 3 || st.Dead != 1 || st.DeadBytes != 1 || !st.Oldest.Equal(t0) {
			t.Errorf("%s: Stats = %+v", label, st)
		}
	}
	check("live")
	s.Close()
	s = openAt(t, path, Options{Now: clk.Now, HistoryLimit: 3})
	check("after reopen")

	// Deleting the due message moves NextDue to the deferred one.
	if err := s.Delete(m[0].ID); err != nil {
		t.Fatal(err)
	}
	if next, ok := s.NextDue(); !ok || !next.Equal(later) {
		t.Errorf("NextDue after delete = %v %v, want %v", next, ok, later)
	}
	if err := s.Delete(m[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	s.Delete(m[2].ID)
	if _, ok := s.NextDue(); ok {
		t.Error("NextDue with nothing pending reported a time")
	}
}

func TestUpdateErrors(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	m := put(t, s, testEnv(), []byte("x"))
	boom := errors.New("boom")
	if _, err := s.Update(m.ID, func(x *Message) error {
		x.LastReply = "changed"
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("Update with failing fn: %v, want boom", err)
	}
	if got, _ := s.Get(m.ID); got.LastReply != "" {
		t.Errorf("failed Update stored its change: %q", got.LastReply)
	}
	for _, id := range []string{"0000000000000", "../../etc", ""} {
		if _, err := s.Update(id, func(*Message) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("Update(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := s.OpenBody(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenBody(%q): %v, want ErrNotFound", id, err)
		}
	}
}

func TestIDs(t *testing.T) {
	var g idGen
	fixed := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	seen := make(map[string]bool)
	var list []string
	for i := range 20000 {
		now := fixed
		if i%2 == 1 {
			now = time.Now() // real clock, several per millisecond
		}
		if i%5000 == 4999 {
			fixed = fixed.Add(-time.Minute) // clock steps back
		}
		id := g.next(now)
		if len(id) != idLen || strings.Trim(id, crockford) != "" {
			t.Fatalf("id %q: want %d characters of %s", id, idLen, crockford)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s after %d", id, i)
		}
		seen[id] = true
		list = append(list, id)
		if v, ok := decodeID(id); !ok || encodeID(v) != id {
			t.Fatalf("id %s does not round-trip", id)
		}
	}
	if !slices.IsSorted(list) {
		t.Error("ids not in creation order")
	}

	// Through the spool: time-ordered and readable back as a time.
	clk := newClock()
	s := openAt(t, tempPath(t), Options{Now: clk.Now})
	var prev string
	for range 200 {
		w, err := s.Create(testEnv())
		if err != nil {
			t.Fatal(err)
		}
		if w.ID() <= prev {
			t.Fatalf("id %s not after %s", w.ID(), prev)
		}
		prev = w.ID()
		w.Abort()
	}
	v, _ := decodeID(prev)
	if got := time.UnixMilli(int64(v >> idSeqBits)); !got.Equal(clk.Now()) {
		t.Errorf("id %s encodes %v, want %v", prev, got, clk.Now())
	}
}

// A writer told to Hold commits the message as held in the same
// transaction: it is never due, and it survives a reopen as held.
func TestWriterHold(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	w, err := s.Create(testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: again\r\n\r\nsame scan\r\n")); err != nil {
		t.Fatal(err)
	}
	w.Hold("held: copy #6")
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateHeld || m.LastReply != "held: copy #6" {
		t.Fatalf("committed as %s / %q", m.State, m.LastReply)
	}
	if due, _ := s.Due(m.Received.Add(time.Hour), 0); len(due) != 0 {
		t.Fatalf("held message is due: %v", due)
	}
	s.Close()
	s = openAt(t, path, Options{})
	if got, err := s.Get(m.ID); err != nil || got.State != StateHeld {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	if held, _ := s.List(StateHeld); len(held) != 1 {
		t.Fatalf("List(held) = %d messages", len(held))
	}
	// The status page shows the held share of the queue figures.
	if st := s.Stats(); st.Messages != 1 || st.Held != 1 || st.HeldBytes != m.Size || st.Bytes != m.Size {
		t.Fatalf("Stats = %+v, want 1 message, held, %d bytes", st, m.Size)
	}
}

// Page walks a state's messages in ID order, limit at a time, with the
// total, and skips other states.
func TestPage(t *testing.T) {
	clk := newClock()
	s := openAt(t, tempPath(t), Options{Now: clk.Now})
	var queued []string
	for i := range 7 {
		m := put(t, s, testEnv("a@example.edu"), []byte("x"))
		clk.Add(time.Second)
		if i == 3 {
			if _, err := s.Update(m.ID, func(x *Message) error { x.State = StateDead; return nil }); err != nil {
				t.Fatal(err)
			}
			continue
		}
		queued = append(queued, m.ID)
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		msgs, total, more, err := s.Page(StateQueued, after, 4)
		if err != nil || total != 6 || pages > 2 {
			t.Fatalf("Page(%q): total %d err %v pages %d", after, total, err, pages)
		}
		got = append(got, ids(msgs)...)
		if !more {
			break
		}
		after = msgs[len(msgs)-1].ID
	}
	if !slices.Equal(got, queued) {
		t.Fatalf("pages gave %v, want %v", got, queued)
	}
	// A cursor that names a message gone since (or never there) still works.
	msgs, _, more, err := s.Page(StateQueued, queued[1]+"0", 10)
	if err != nil || more || !slices.Equal(ids(msgs), queued[2:]) {
		t.Fatalf("after a vanished ID: %v more %v err %v", ids(msgs), more, err)
	}
	if msgs, total, _, _ := s.Page(StateDead, "", 10); total != 1 || len(msgs) != 1 {
		t.Fatalf("dead page: %d of %d", len(msgs), total)
	}
}
