package smtpd

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per client address: each message (MAIL
// command) takes a token, tokens come back at rate per second up to burst.
// DESIGN.md: "Flood limits are for stuck devices, not for busy ones", so
// the defaults (50 a second, bursts of 50) only stop a device in a loop.
type rateLimiter struct {
	rate  float64 // tokens per second; 0 = no limit
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets sweptMap[netip.Addr, bucket]
}

type bucket struct {
	tokens  float64
	last    time.Time
	refused int // refusals since the client was last under its rate
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if rate <= 0 {
		return &rateLimiter{}
	}
	r := &rateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now}
	// A client whose bucket has refilled is as if new.
	r.buckets = newSweptMap[netip.Addr](func(b *bucket, now time.Time) bool {
		r.refill(b, now)
		return b.tokens >= r.burst && b.refused == 0
	})
	return r
}

// rateDecision says whether a message may start, and what to log: the
// first refusal of a flood, and how many were refused once it is over.
type rateDecision struct {
	ok           bool
	firstRefusal bool
	refusedTotal int // on the first allowed message after refusals
}

func (r *rateLimiter) allow(ip netip.Addr) rateDecision {
	if r.rate <= 0 {
		return rateDecision{ok: true}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b, added := r.buckets.get(ip, now)
	if added {
		b.tokens, b.last = r.burst, now
	}
	r.refill(b, now)
	if b.tokens < 1 {
		b.refused++
		return rateDecision{firstRefusal: b.refused == 1}
	}
	b.tokens--
	d := rateDecision{ok: true, refusedTotal: b.refused}
	b.refused = 0
	return d
}

func (r *rateLimiter) refill(b *bucket, now time.Time) {
	// A clock that steps back gives nothing and takes nothing.
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(r.burst, b.tokens+el.Seconds()*r.rate)
		b.last = now
	}
}

// minSweep: below this many entries, a sweptMap is not worth sweeping.
const minSweep = 1024

// sweptMap holds per-client state (rate buckets, duplicate runs) and keeps
// it from growing without bound on a scan of the LAN: when a new key would
// take it past sweepAt, the entries idle reports as back to their fresh
// state are forgotten first. sweepAt then doubles what is left, so sweeps
// cost O(1) per added key on average. Callers hold their own lock.
type sweptMap[K comparable, V any] struct {
	m       map[K]*V
	sweepAt int
	idle    func(v *V, now time.Time) bool // brings v up to now; true: v is as if new
}

func newSweptMap[K comparable, V any](idle func(*V, time.Time) bool) sweptMap[K, V] {
	return sweptMap[K, V]{m: map[K]*V{}, sweepAt: minSweep, idle: idle}
}

// get returns k's entry; if k has none, it adds a zero one and says so.
func (s *sweptMap[K, V]) get(k K, now time.Time) (v *V, added bool) {
	if v := s.m[k]; v != nil {
		return v, false
	}
	if len(s.m) >= s.sweepAt {
		for k, v := range s.m {
			if s.idle(v, now) {
				delete(s.m, k)
			}
		}
		s.sweepAt = max(minSweep, 2*len(s.m))
	}
	v = new(V)
	s.m[k] = v
	return v, true
}
