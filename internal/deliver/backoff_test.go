package deliver

import (
	"testing"
	"time"

	"relaybox/internal/spool"
)

func TestBackoffTable(t *testing.T) {
	fixed := func(j float64) func() float64 { return func() float64 { return j } }
	b := Backoff{Min: time.Minute, Max: time.Hour, Jitter: fixed(0.5)}
	cases := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 0.5, time.Minute},           // min
		{2, 0.5, 2 * time.Minute},       // doubling
		{3, 0.5, 4 * time.Minute},       //
		{6, 0.5, 32 * time.Minute},      //
		{7, 0.5, time.Hour},             // 64m capped
		{1000, 0.5, time.Hour},          // no overflow
		{0, 0.5, time.Minute},           // defensive: never below min
		{1, 0, 48 * time.Second},        // jitter low bound: -20%
		{3, 0, 192 * time.Second},       //
		{7, 0, 48 * time.Minute},        // jitter spreads retries even at the cap
		{7, 0.999999, time.Hour},        // never past max
		{1, 0.999999, 72 * time.Second}, // jitter high bound: +20% (rounded below)
	}
	for _, tc := range cases {
		b.Jitter = fixed(tc.jitter)
		got := b.Delay(tc.attempt)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Delay(%d) with jitter %v = %v, want %v", tc.attempt, tc.jitter, got, tc.want)
		}
	}

	// Random jitter stays inside [0.8, 1.2) of the base.
	b.Jitter = nil
	for i := range 200 {
		b.Jitter = fixed(float64(i) / 200)
		if d := b.Delay(2); d < 96*time.Second || d >= 144*time.Second {
			t.Fatalf("Delay(2) = %v outside ±20%% of 2m", d)
		}
	}

	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	b.Jitter = fixed(0.5)
	if got := b.Next(now, 7, now.Add(10*time.Minute)); !got.Equal(now.Add(10 * time.Minute)) {
		t.Errorf("Next past expiry: %v", got)
	}
	if got := b.Next(now, 1, now.Add(10*time.Minute)); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("Next before expiry: %v", got)
	}
	if got := b.Next(now, 7, time.Time{}); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("Next without expiry: %v", got)
	}
}

// expired: a message's age is the run clock since it was queued (a wall
// clock jump does not move it); an older record without one ages by the
// wall clock from its receipt or requeue; after a jump, one real attempt
// first.
func TestExpired(t *testing.T) {
	recv := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	const maxAge = 120 * time.Hour
	cases := []struct {
		name         string
		m            spool.Message
		now          time.Time
		run, jumpRun time.Duration
		want         bool
	}{
		{"young", spool.Message{Received: recv, QueuedRun: time.Hour}, recv.Add(time.Hour), 2 * time.Hour, 0, false},
		{"old by the run clock", spool.Message{Received: recv, QueuedRun: time.Hour}, recv.Add(maxAge), time.Hour + maxAge, 0, true},
		{"wall clock 40 days ahead, run clock not", spool.Message{Received: recv, QueuedRun: time.Hour}, recv.Add(40 * 24 * time.Hour), 3 * time.Hour, 0, false},
		{"wall clock a day behind, run clock old", spool.Message{Received: recv, QueuedRun: time.Hour}, recv.Add(-24 * time.Hour), time.Hour + maxAge, 0, true},
		{"old, jump since, no attempt since", spool.Message{Received: recv, QueuedRun: time.Hour, TriedRun: 50 * time.Hour}, recv.Add(maxAge), time.Hour + maxAge, 100 * time.Hour, false},
		{"old, jump since, an attempt since", spool.Message{Received: recv, QueuedRun: time.Hour, TriedRun: 110 * time.Hour}, recv.Add(maxAge), time.Hour + maxAge, 100 * time.Hour, true},
		{"old, jump before it was queued", spool.Message{Received: recv, QueuedRun: time.Hour}, recv.Add(maxAge), time.Hour + maxAge, time.Minute, true},
		{"no run clock: wall age", spool.Message{Received: recv}, recv.Add(maxAge), time.Minute, 0, true},
		{"no run clock: young by wall", spool.Message{Received: recv}, recv.Add(time.Hour), 500 * time.Hour, 0, false},
		{"no run clock: from the requeue", spool.Message{Received: recv, Requeued: recv.Add(48 * time.Hour)}, recv.Add(maxAge), 500 * time.Hour, 0, false},
	}
	for _, tc := range cases {
		if got := expired(&tc.m, maxAge, tc.now, tc.run, tc.jumpRun); got != tc.want {
			t.Errorf("%s: expired = %v, want %v", tc.name, got, tc.want)
		}
	}
	if expired(&spool.Message{Received: recv}, 0, recv.Add(1000*time.Hour), 1000*time.Hour, 0) {
		t.Error("expired with no max age")
	}
}

func TestFmtAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Hour:                     "2h0m0s",
		120 * time.Hour:                   "5d0h",
		26*time.Hour + 30*time.Minute:     "1d2h",
		90*time.Second + time.Millisecond: "1m30s",
	} {
		if got := fmtAge(d); got != want {
			t.Errorf("fmtAge(%v) = %q, want %q", d, got, want)
		}
	}
}
