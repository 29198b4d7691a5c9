// Package throttle limits password guessing across connections, the way
// Postfix's anvil limits clients: each client address has a small budget of
// password checks that refills slowly; a failed check delays its reply;
// an address that has spent its budget is refused for a cooling period,
// without its password being evaluated at all. A budget for all addresses
// together stops guessing spread over many addresses, without touching
// addresses whose checks keep succeeding.
//
// The SMTP listener (device AUTH) and the admin API (HTTP basic auth) use
// one Guard each. Time comes from Options.Now, so tests move a fake clock.
package throttle

import (
	"net/netip"
	"sync"
	"time"
)

// Options configure a Guard. Zero values take the defaults named.
type Options struct {
	// Burst: password checks an address may have in hand (default 10).
	// A check takes one; a success gives it back.
	Burst int
	// Refill: one check comes back per Refill (default 1s), so an address
	// that keeps failing is held to about one guess per Refill.
	Refill time.Duration
	// Cooldown: once an address has spent its budget, it is refused for
	// this long (default 10s) and its refusals are logged once.
	Cooldown time.Duration
	// FreeFailures: failures in a row before replies are delayed (default 2);
	// then each further failure adds Delay (default 1s), up to MaxDelay
	// (default 5s). A device with a typo'd password sees no delay at first.
	FreeFailures int
	Delay        time.Duration
	MaxDelay     time.Duration
	// TotalBurst and TotalRefill bound failed checks from all addresses
	// together (defaults 100 and 100ms: ten a second). When that budget is
	// spent, addresses that failed recently are refused; others are not.
	TotalBurst  int
	TotalRefill time.Duration
	Now         func() time.Time
}

func (o *Options) defaults() {
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.Refill <= 0 {
		o.Refill = time.Second
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 10 * time.Second
	}
	if o.FreeFailures <= 0 {
		o.FreeFailures = 2
	}
	if o.Delay <= 0 {
		o.Delay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.TotalBurst <= 0 {
		o.TotalBurst = 100
	}
	if o.TotalRefill <= 0 {
		o.TotalRefill = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Guard tracks password checks per client address. Safe for concurrent use.
type Guard struct {
	opt Options

	mu      sync.Mutex
	clients map[netip.Addr]*client
	sweepAt int
	total   bucket // failed checks, all addresses together
}

type client struct {
	checks      bucket
	failures    int       // in a row, reset by a success
	lockedUntil time.Time // refused until then
	// Counted since the last report, for the one log line per period.
	failedSince  int
	refusedSince int
}

// bucket is a token bucket holding up to max tokens, one back per every.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) refill(now time.Time, every time.Duration, max int) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(max), b.tokens+float64(el)/float64(every))
		b.last = now
	}
}

// minSweep: below this many tracked addresses the map is not swept.
const minSweep = 1024

// New builds a Guard.
func New(opt Options) *Guard {
	opt.defaults()
	now := opt.Now()
	return &Guard{opt: opt, clients: map[netip.Addr]*client{}, sweepAt: minSweep,
		total: bucket{tokens: float64(opt.TotalBurst), last: now}}
}

// Verdict is the answer to Allow.
type Verdict struct {
	// OK: evaluate the password, then call Failed or Succeeded.
	OK bool
	// RetryAfter: when refused, how long the address stays refused.
	RetryAfter time.Duration
	// Report: when refused, this is the first refusal of the period; log
	// it once, with the counts below.
	Report   bool
	Failures int // failed checks since the last report
	Refused  int // refused attempts since the last report
	// Total: refused because of the budget of all addresses together.
	Total bool
}

// Allow decides whether a password from ip may be evaluated now, and if
// so takes one check from its budget.
func (g *Guard) Allow(ip netip.Addr) Verdict {
	now := g.opt.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.client(ip, now)
	c.checks.refill(now, g.opt.Refill, g.opt.Burst)
	g.total.refill(now, g.opt.TotalRefill, g.opt.TotalBurst)
	if now.Before(c.lockedUntil) {
		c.refusedSince++
		return Verdict{RetryAfter: c.lockedUntil.Sub(now)}
	}
	if c.checks.tokens >= float64(g.opt.Burst) {
		c.failures = 0 // quiet long enough to have its whole budget back
	}
	overTotal := g.total.tokens < 1 && c.failures > 0
	if c.checks.tokens < 1 || overTotal {
		c.lockedUntil = now.Add(g.opt.Cooldown)
		v := Verdict{RetryAfter: g.opt.Cooldown, Report: true, Failures: c.failedSince,
			Refused: c.refusedSince + 1, Total: overTotal && c.checks.tokens >= 1}
		c.failedSince, c.refusedSince = 0, 0
		return v
	}
	c.checks.tokens--
	return Verdict{OK: true}
}

// Failed records a wrong password from ip (after Allow said OK) and
// returns how long to wait before replying.
func (g *Guard) Failed(ip netip.Addr) time.Duration {
	now := g.opt.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.client(ip, now)
	c.failures++
	c.failedSince++
	g.total.refill(now, g.opt.TotalRefill, g.opt.TotalBurst)
	g.total.tokens = max(0, g.total.tokens-1)
	over := c.failures - g.opt.FreeFailures
	if over <= 0 {
		return 0
	}
	return min(g.opt.MaxDelay, time.Duration(over)*g.opt.Delay)
}

// Succeeded records a right password from ip: its check comes back, and
// its run of failures is over.
func (g *Guard) Succeeded(ip netip.Addr) {
	now := g.opt.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.client(ip, now)
	c.checks.refill(now, g.opt.Refill, g.opt.Burst)
	c.checks.tokens = min(float64(g.opt.Burst), c.checks.tokens+1)
	c.failures = 0
}

// client returns ip's state, adding a fresh one. Before the map grows past
// sweepAt, addresses back to a fresh state are forgotten, so a scan of the
// LAN cannot grow it without bound.
func (g *Guard) client(ip netip.Addr, now time.Time) *client {
	if c := g.clients[ip]; c != nil {
		return c
	}
	if len(g.clients) >= g.sweepAt {
		for k, c := range g.clients {
			c.checks.refill(now, g.opt.Refill, g.opt.Burst)
			if c.checks.tokens >= float64(g.opt.Burst) && !now.Before(c.lockedUntil) {
				delete(g.clients, k)
			}
		}
		g.sweepAt = max(minSweep, 2*len(g.clients))
	}
	c := &client{checks: bucket{tokens: float64(g.opt.Burst), last: now}}
	g.clients[ip] = c
	return c
}
