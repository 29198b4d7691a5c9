package deliver

import (
	"fmt"
	"time"

	"relaybox/internal/spool"
)

// Backoff computes when a message is tried again. It is a plain value so the
// table test can pin every rule without a scheduler.
type Backoff struct {
	Min, Max time.Duration
	// Jitter returns a number in [0,1). Spreading retries by ±20% keeps
	// messages deferred together by one outage from hammering the relay
	// together when it returns.
	Jitter func() float64
}

// Delay is the wait after the attempt with number attempt (1 = the first):
// Min doubling per attempt up to Max, times a jitter factor in [0.8, 1.2),
// never above Max.
func (b Backoff) Delay(attempt int) time.Duration {
	base := b.Min
	// Doubling by loop rather than shift cannot overflow for large counts.
	for i := 1; i < attempt && base < b.Max; i++ {
		base *= 2
	}
	if base > b.Max {
		base = b.Max
	}
	j := 0.5
	if b.Jitter != nil {
		j = b.Jitter()
	}
	d := time.Duration(float64(base) * (0.8 + 0.4*j))
	if d > b.Max {
		d = b.Max
	}
	if d < 0 {
		d = 0
	}
	return d
}

// Next is the time of the next attempt after attempt number attempt made
// at now, never later than expiry (zero expiry = none): a message is
// always looked at again by the time it must be expired.
func (b Backoff) Next(now time.Time, attempt int, expiry time.Time) time.Time {
	t := now.Add(b.Delay(attempt))
	if !expiry.IsZero() && t.After(expiry) {
		t = expiry
	}
	return t
}

// queuedSince is where a wall-clock age counts from: a manual retry of a
// dead message gives it a fresh lifetime.
func queuedSince(m *spool.Message) time.Time {
	if m.Requeued.After(m.Received) {
		return m.Requeued
	}
	return m.Received
}

// age is how long a message has really waited: the spool's run clock since
// it was queued (queuedRun), which a jump of the wall clock does not move.
// A message from before the run clock (queuedRun 0) is aged by the wall
// clock from since.
func age(queuedRun time.Duration, since, now time.Time, run time.Duration) time.Duration {
	if queuedRun > 0 {
		return run - queuedRun
	}
	return now.Sub(since)
}

// expiryAt is the wall-clock moment a message of that age reaches maxAge,
// as far as can be told at now (zero when maxAge is 0: no expiry). It only
// decides when to look again; whether the message expires is expired's.
func expiryAt(a, maxAge time.Duration, now time.Time) time.Time {
	if maxAge <= 0 {
		return time.Time{}
	}
	return now.Add(maxAge - a)
}

// expired says whether m is past maxAge: by its real age, and, when the
// wall clock jumped since it was queued (jumpRun, the run clock when the
// scheduler saw the jump; 0: none), only once an upstream was dialled for
// it after the jump. A box that boots with a stale clock and jumps at NTP
// sync must not dead-letter mail on the strength of the jump, nor for
// failures (a certificate "not yet valid") the wrong clock caused.
func expired(m *spool.Message, maxAge time.Duration, now time.Time, run, jumpRun time.Duration) bool {
	if maxAge <= 0 || age(m.QueuedRun, queuedSince(m), now, run) < maxAge {
		return false
	}
	return jumpRun == 0 || jumpRun <= m.QueuedRun || m.TriedRun > jumpRun
}

// fmtAge renders an age for a reply a person reads: "5d2h", "3h4m5s".
func fmtAge(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 24*time.Hour {
		days := d / (24 * time.Hour)
		hours := (d % (24 * time.Hour)) / time.Hour
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	return d.String()
}
