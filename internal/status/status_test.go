package status

import (
	"bytes"
	"errors"
	"log/slog"
	"relaybox/internal/clocktest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))
}

// replyErr mimics deliver.Error, which offers the bare SMTP reply.
type replyErr struct{ reply string }

func (e replyErr) Error() string { return "upstream smtp.example.edu:587: mail: " + e.reply }
func (e replyErr) Reply() string { return e.reply }

// fakeQueue is a settable spool.
type fakeQueue struct {
	mu sync.Mutex
	q  QueueStats
}

func (f *fakeQueue) Stats() QueueStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.q
}

func (f *fakeQueue) set(q QueueStats) {
	f.mu.Lock()
	f.q = q
	f.mu.Unlock()
}

const up1, up2 = "smtp.example.edu:587", "smtp2.example.edu:465"

// TestTransitions drives one model through a scripted day: each step
// changes something (clock, upstream result, queue, spool) and checks the
// state and the words the technician reads.
func TestTransitions(t *testing.T) {
	type step struct {
		name   string
		do     func(m *Model, c *clocktest.Clock, q *fakeQueue)
		state  State
		reason []string // substrings of Reason
	}
	try := replyErr{"421 4.7.0 try later"}
	steps := []step{
		{"before Started", func(m *Model, c *clocktest.Clock, q *fakeQueue) {}, Starting, []string{"starting"}},
		{"started, idle", func(m *Model, c *clocktest.Clock, q *fakeQueue) { m.Started() }, OK, nil},
		{"mail queued, being delivered", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			c.Add(time.Minute)
			q.set(QueueStats{Messages: 2, Bytes: 2048, Oldest: c.Now()})
		}, OK, nil},
		{"one failure: degraded at DegradedAfter=2? not yet", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			m.UpstreamResult(up1, try)
		}, OK, nil},
		{"second failure: degraded", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			c.Add(12 * time.Minute)
			m.UpstreamResult(up1, try)
		}, Degraded, []string{"upstream smtp.example.edu:587 failing for 12m: 421 4.7.0 try later"}},
		{"failover upstream works: still degraded, first is failing", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			m.UpstreamResult(up2, nil)
		}, Degraded, []string{up1}},
		{"recovery: ok", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			c.Add(time.Minute)
			m.UpstreamResult(up1, nil)
		}, OK, nil},
		{"both fail, mail waits 29m: degraded", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			q.set(QueueStats{Messages: 3, Bytes: 3000, Oldest: c.Now()})
			m.UpstreamResult(up1, try)
			m.UpstreamResult(up1, try)
			c.Add(time.Second)
			m.UpstreamResult(up2, errors.New("dial tcp: connection refused"))
			m.UpstreamResult(up2, errors.New("dial tcp: connection refused"))
			c.Add(29*time.Minute - time.Second)
		}, Degraded, []string{up1, up2}},
		{"30m without success while mail waits: failing", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			c.Add(time.Minute)
		}, Failing, []string{"no upstream has taken mail for 30m while 3 messages wait", "last error from smtp2.example.edu:465: dial tcp: connection refused"}},
		{"queue drained by a success: ok", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			m.UpstreamResult(up1, nil)
			m.UpstreamResult(up2, nil)
			q.set(QueueStats{})
		}, OK, nil},
		{"quota 95% full: failing", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			q.set(QueueStats{Messages: 1, Bytes: 900, Oldest: c.Now(), Dead: 1, DeadBytes: 50, Quota: 1000})
		}, Failing, []string{"spool 95% full", "452"}},
		{"quota 94%: ok", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			q.set(QueueStats{Messages: 1, Bytes: 890, Oldest: c.Now(), Dead: 1, DeadBytes: 50, Quota: 1000})
		}, OK, nil},
		{"spool error: failing", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			m.SpoolError(errors.New("spool: commit: no space left on device"))
			c.Add(2 * time.Minute)
		}, Failing, []string{"spool error for 2m: spool: commit: no space left on device"}},
		{"spool ok again: ok", func(m *Model, c *clocktest.Clock, q *fakeQueue) { m.SpoolOK() }, OK, nil},
		{"stopping wins over everything", func(m *Model, c *clocktest.Clock, q *fakeQueue) {
			m.SpoolError(errors.New("x"))
			m.Stopping()
		}, Stopping, []string{"shutting down"}},
	}
	c := newFakeClock()
	q := &fakeQueue{}
	m := New(Options{Now: c.Now, Upstreams: []string{up1, up2}, Queue: q.Stats, DegradedAfter: 2, FailingAfter: 30 * time.Minute})
	last := m.Snapshot().State
	for _, s := range steps {
		s.do(m, c, q)
		snap := m.Snapshot()
		if snap.State != s.state {
			t.Fatalf("%s: state %s (%q), want %s", s.name, snap.State, snap.Reason, s.state)
		}
		for _, want := range s.reason {
			if !strings.Contains(snap.Reason, want) {
				t.Errorf("%s: reason %q lacks %q", s.name, snap.Reason, want)
			}
		}
		if s.state == OK && snap.Reason != "" {
			t.Errorf("%s: ok with reason %q", s.name, snap.Reason)
		}
		if snap.State != last && !snap.Since.Equal(c.Now()) {
			t.Errorf("%s: state changed but Since = %v, want %v", s.name, snap.Since, c.Now())
		}
		last = snap.State
	}
}

func TestNoUpstreamHoldsMail(t *testing.T) {
	c := newFakeClock()
	q := &fakeQueue{}
	m := New(Options{Now: c.Now, Queue: q.Stats})
	m.Started()
	snap := m.Snapshot()
	if snap.State != OK || !snap.NoUpstream || !strings.Contains(snap.Reason, "no upstream configured") {
		t.Fatalf("empty, no upstream: %s %q no_upstream=%v", snap.State, snap.Reason, snap.NoUpstream)
	}
	q.set(QueueStats{Messages: 1, Oldest: c.Now()})
	c.Add(29 * time.Minute)
	if snap = m.Snapshot(); snap.State != Degraded || !strings.Contains(snap.Reason, "1 message held") {
		t.Fatalf("held 29m: %s %q", snap.State, snap.Reason)
	}
	if snap.Queue.OldestAgeSeconds != (29 * time.Minute).Seconds() {
		t.Errorf("OldestAgeSeconds = %v", snap.Queue.OldestAgeSeconds)
	}
	c.Add(time.Minute)
	if snap = m.Snapshot(); snap.State != Failing || !strings.Contains(snap.Reason, "the oldest for 30m") {
		t.Fatalf("held 30m: %s %q", snap.State, snap.Reason)
	}
}

// A quiet spell with no mail must not count as an outage: failing needs
// mail to have waited FailingAfter, not just a stale last success.
func TestQuietSpellIsNotFailing(t *testing.T) {
	c := newFakeClock()
	q := &fakeQueue{}
	m := New(Options{Now: c.Now, Upstreams: []string{up1}, Queue: q.Stats})
	m.Started()
	m.UpstreamResult(up1, nil)
	c.Add(48 * time.Hour)
	q.set(QueueStats{Messages: 1, Oldest: c.Now()})
	c.Add(time.Minute)
	m.UpstreamResult(up1, replyErr{"421 busy"})
	if snap := m.Snapshot(); snap.State != Degraded {
		t.Fatalf("fresh mail after a quiet spell: %s %q, want degraded", snap.State, snap.Reason)
	}
}

func TestCountersAndUnknownUpstream(t *testing.T) {
	m := New(Options{Upstreams: []string{up1}})
	m.Accepted()
	m.Accepted()
	for _, k := range []EventKind{EventSent, EventSent, EventSent, EventDeferred, EventFailed, EventExpired, "bogus"} {
		m.Delivery(k, "")
	}
	m.UpstreamResult("other:25", errors.New("boom\r\n\x1b[2Jinjected"))
	snap := m.Snapshot()
	want := Counters{Accepted: 2, Delivered: 3, Deferred: 1, Failed: 1, Expired: 1}
	if snap.Counters != want {
		t.Errorf("counters %+v, want %+v", snap.Counters, want)
	}
	if len(snap.Upstreams) != 2 || snap.Upstreams[1].Name != "other:25" || snap.Upstreams[1].Up {
		t.Fatalf("upstreams %+v", snap.Upstreams)
	}
	if e := snap.Upstreams[1].LastError; strings.ContainsAny(e, "\r\n\x1b") {
		t.Errorf("LastError keeps control characters: %q", e)
	}
}

func TestRingAndHandler(t *testing.T) {
	c := newFakeClock()
	m := New(Options{Now: c.Now, RingSize: 3})
	var out bytes.Buffer
	log := slog.New(m.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.Debug("too chatty")
	log.Info("message", "id", "0A1", "event", "sent", "reply", "250 2.0.0 ok")
	log.With("sub", "deliver").WithGroup("g").Warn("slow", "n", 3, slog.Duration("d", 2*time.Second))
	log.Error("x1")
	log.Error("x2\x1b[31m")
	got := m.Recent(0)
	if len(got) != 4 {
		t.Fatalf("rings hold %d events, want 4 (the message event and 3 others)", len(got))
	}
	if got[0].Msg != "message" || got[1].Msg != "slow" || got[1].Attrs != "sub=deliver g.n=3 g.d=2s" || got[1].Level != "WARN" {
		t.Errorf("oldest kept events %+v", got[:2])
	}
	if got[3].Msg != "x2 [31m" {
		t.Errorf("control characters reach the ring: %q", got[3].Msg)
	}
	if r := m.Recent(1); len(r) != 1 || r[0].Msg != "x2 [31m" {
		t.Errorf("Recent(1) = %+v", r)
	}
	// The info line went to the ring but not to a warn-level log.
	if strings.Contains(out.String(), "event=sent") || !strings.Contains(out.String(), "msg=slow") {
		t.Errorf("next handler output:\n%s", out.String())
	}
	m2 := New(Options{Now: c.Now})
	slog.New(m2.Handler(slog.DiscardHandler)).Info("message", "reply", "250 ok", "to", "")
	if e := m2.Recent(5); len(e) != 1 || e[0].Attrs != `reply="250 ok" to=""` {
		t.Errorf("quoting: %+v", e)
	}
}

// A flood of refusals does not push message events out of the ring: they
// are kept apart, and Recent still returns everything in order.
func TestRefusalsDoNotEvictMessageEvents(t *testing.T) {
	c := newFakeClock()
	m := New(Options{Now: c.Now, RingSize: 50})
	log := slog.New(m.Handler(slog.DiscardHandler))
	log.Info("accepted", "id", "0A1", "event", "accepted")
	log.With("event", "sent").Info("sent", "id", "0A1")
	for i := range 10000 {
		log.Warn("refused client outside allowed networks", "client", "192.0.2.66", "n", i)
	}
	log.Info("accepted", "id", "0A2", "event", "accepted")
	got := m.Recent(0)
	var msgs []string
	for _, e := range got {
		if strings.Contains(e.Attrs, "id=") {
			msgs = append(msgs, e.Msg+" "+e.Attrs)
		}
	}
	if len(msgs) != 3 {
		t.Fatalf("message events kept: %q, want all 3", msgs)
	}
	if len(got) != 53 || got[len(got)-1].Msg != "accepted" || !strings.Contains(got[len(got)-2].Attrs, "n=9999") {
		t.Fatalf("got %d events, last two %+v", len(got), got[len(got)-2:])
	}
	if r := m.Recent(2); len(r) != 2 || r[1].Msg != "accepted" {
		t.Fatalf("Recent(2) = %+v", r)
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:               "45s",
		12*time.Minute + 5*time.Second: "12m",
		3*time.Hour + 5*time.Minute:    "3h5m",
		2 * time.Hour:                  "2h",
		50 * time.Hour:                 "2d2h",
		-time.Second:                   "0s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{512: "512 B", 12595: "12.3 KiB", 1 << 30: "1.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// Fields is what both the CLI and the console print: every figure once,
// optional lines only when they say something.
func TestSnapshotFields(t *testing.T) {
	now := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	s := Snapshot{
		State: Degraded, Reason: "upstream down", Since: now.Add(-5 * time.Minute),
		Version: "1.0", Started: now.Add(-2 * time.Hour), NoUpstream: true, Now: now,
		Queue: QueueStats{Messages: 1, Bytes: 2048, Oldest: now.Add(-time.Hour), OldestAgeSeconds: 3600,
			Dead: 2, DeadBytes: 512, Quota: 1 << 20},
		Counters: Counters{Accepted: 3, Delivered: 2},
		Warnings: []string{"upstream x is insecure"},
	}
	var got []string
	for _, f := range s.Fields() {
		got = append(got, f.Label+": "+f.Value)
	}
	want := []string{
		"state: degraded for 5m",
		"reason: upstream down",
		"version: 1.0, up 2h",
		"queue: 1 message (2.0 KiB), oldest 1h",
		"dead: 2 messages (512 B)",
		"spool: 0% of the 1.0 MiB quota",
		"counters: accepted 3, delivered 2, deferred 0, failed 0, expired 0",
		"warning: upstream x is insecure",
		"upstream: none configured: mail is held until one is added",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s = Snapshot{State: OK, Since: now, Now: now, Version: "1.0"}
	got = got[:0]
	for _, f := range s.Fields() {
		got = append(got, f.Label)
	}
	if g := strings.Join(got, " "); g != "state version queue dead counters" {
		t.Errorf("idle Fields labels = %q, want state version queue dead counters", g)
	}
}

// A flaky upstream that defers one message in ten never stays down, but the
// relay reads degraded, with the share and the last reply, until the
// window has passed.
func TestDeferredRateDegrades(t *testing.T) {
	c := newFakeClock()
	m := New(Options{Now: c.Now, Upstreams: []string{up1}})
	m.Started()
	for i := range 18 {
		if i%6 == 0 {
			c.Add(time.Minute)
		}
		m.UpstreamResult(up1, nil)
		m.Delivery("sent", "250 2.0.0 Ok: queued as Q1")
	}
	m.Delivery("deferred", "451 4.7.1 try again\r\n\x1b[2J")
	if snap := m.Snapshot(); snap.State != OK {
		t.Fatalf("19 outcomes (below the minimum of 20): %s %q", snap.State, snap.Reason)
	}
	m.Delivery("deferred", "451 4.7.1 try again later")
	snap := m.Snapshot()
	want := "2 of 20 deliveries in the last 15m deferred (10%, threshold 5%); last reply: 451 4.7.1 try again later"
	if snap.State != Degraded || snap.Reason != want {
		t.Fatalf("state %s %q, want degraded %q", snap.State, snap.Reason, want)
	}
	// Clean deliveries dilute the share below the threshold.
	for range 20 {
		m.Delivery("sent", "250 ok")
	}
	if snap := m.Snapshot(); snap.State != Degraded {
		t.Fatalf("2 of 40 deferred (5%%): %s %q, want still degraded", snap.State, snap.Reason)
	}
	m.Delivery("sent", "250 ok")
	if snap := m.Snapshot(); snap.State != OK {
		t.Fatalf("2 of 41 deferred: %s %q, want ok", snap.State, snap.Reason)
	}
	// Old outcomes leave the window.
	m.Delivery("deferred", "451 x")
	m.Delivery("deferred", "451 x")
	c.Add(16 * time.Minute)
	if snap := m.Snapshot(); snap.State != OK {
		t.Fatalf("after the window: %s %q", snap.State, snap.Reason)
	}
}

// The clock's synchronisation shows in the snapshot and its fields, and a
// certificate failure while it is off says to look at NTP.
func TestClockSynced(t *testing.T) {
	synced := false
	m := New(Options{Upstreams: []string{up1}, ClockSynced: func() (bool, bool) { return synced, true }})
	m.Started()
	m.UpstreamResult(up1, replyErr{"x509: certificate has expired or is not yet valid"})
	snap := m.Snapshot()
	if snap.Clock != ClockUnsynchronised || !strings.Contains(snap.Reason, "system clock is not synchronised") {
		t.Fatalf("clock %q reason %q", snap.Clock, snap.Reason)
	}
	found := false
	for _, f := range snap.Fields() {
		found = found || f.Label == "clock"
	}
	if !found {
		t.Error("no clock line in the fields")
	}
	synced = true
	if snap := m.Snapshot(); snap.Clock != ClockSynchronised || strings.Contains(snap.Reason, "system clock") {
		t.Fatalf("synced: clock %q reason %q", snap.Clock, snap.Reason)
	}
	if snap := New(Options{}).Snapshot(); snap.Clock != ClockUnknown {
		t.Errorf("not asked: %q", snap.Clock)
	}
	if _, known := KernelClockSynced(); !known && runtime.GOOS == "linux" {
		t.Error("adjtimex did not answer on Linux")
	}
}
