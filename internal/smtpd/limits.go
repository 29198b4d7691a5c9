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
	buckets map[netip.Addr]*bucket
	sweepAt int // sweep idle buckets when the map grows past this
}

type bucket struct {
	tokens  float64
	last    time.Time
	refused int // refusals since the client was last under its rate
}

// minSweep: below this many clients, idle buckets are not worth sweeping.
const minSweep = 1024

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if rate <= 0 {
		return &rateLimiter{}
	}
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now,
		buckets: map[netip.Addr]*bucket{}, sweepAt: minSweep}
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
	b := r.buckets[ip]
	if b == nil {
		if len(r.buckets) >= r.sweepAt {
			r.sweep(now)
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[ip] = b
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

// sweep forgets clients whose bucket has refilled: they are as if new.
func (r *rateLimiter) sweep(now time.Time) {
	for ip, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.burst && b.refused == 0 {
			delete(r.buckets, ip)
		}
	}
	r.sweepAt = max(minSweep, 2*len(r.buckets))
}
