// Package clocktest is a settable clock for tests: packages take time as
// an injected func() time.Time (or a Now method), and tests pass a Clock's
// Now and move it with Add, so backoff, expiry and rate limits are tested
// without sleeping. It is used by tests only.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a time that moves only when told to. Safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	mono time.Duration // time moved forward by Add and Set, not by Jump
}

// New returns a Clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d: time passes (Mono moves too, when d > 0).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mono += max(d, 0)
	c.mu.Unlock()
}

// Set moves the clock to t; time passes as far as t is ahead.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.mono += max(t.Sub(c.t), 0)
	c.t = t
	c.mu.Unlock()
}

// Jump steps the wall clock by d, forward or back, while no time passes:
// Mono stays. This is NTP setting the clock of a board that booted with the
// time of its last shutdown.
func (c *Clock) Jump(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Mono reads the clock's monotonic side: how much time has passed (Add,
// Set), never moved by Jump. Pass it where a package takes a monotonic
// clock (spool.Options.Mono).
func (c *Clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}
