// Package led shows the relay's health on one LED: a blink pattern per
// status state, driven on any periph gpio.PinOut with an injectable clock so
// the timeline is testable without hardware.
//
// The states are status.State itself, so one added there cannot be
// misspelt here; status is a leaf (the standard library, x/sys and
// internal/text), so led stays light, and Pattern is still a pure
// function of two plain values.
package led

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"relaybox/internal/status"
)

// hold is how long a steady level is held before it is driven again.
// Re-driving costs nothing and repairs a level something else changed
// (a sysfs LED trigger, a user poking the pin).
const hold = time.Minute

// Step is one segment of a pattern: the LED is on (or off) for For.
type Step struct {
	On  bool
	For time.Duration
}

// Pattern returns the repeating timeline for a state; busy means the queue
// is not empty. Unknown states blink like failing, because a state the LED
// does not know is a bug a technician should notice.
func Pattern(state status.State, busy bool) []Step {
	ms := time.Millisecond
	switch state {
	case status.Starting: // fast blink: "wait, I am coming up"
		return []Step{{true, 100 * ms}, {false, 100 * ms}}
	case status.OK:
		if busy { // mostly on, with a short wink once a second: "working"
			return []Step{{true, 900 * ms}, {false, 100 * ms}}
		}
		return []Step{{true, hold}}
	case status.Degraded: // slow blink: upstream retrying
		return []Step{{true, time.Second}, {false, time.Second}}
	case status.Stopping:
		return []Step{{false, hold}}
	default: // Failing: double blink, then a pause
		return []Step{{true, 150 * ms}, {false, 150 * ms}, {true, 150 * ms}, {false, 1050 * ms}}
	}
}

// Describe names the pattern of Pattern(state, busy) in the words the
// README uses, for readers that show what the LED is doing (the status
// page) to someone who cannot see the box.
func Describe(state status.State, busy bool) string {
	switch state {
	case status.Starting:
		return "fast blink (starting)"
	case status.OK:
		if busy {
			return "on with a short wink each second (ok, delivering)"
		}
		return "steady on (ok, queue empty)"
	case status.Degraded:
		return "slow blink, 1s on, 1s off (degraded)"
	case status.Stopping:
		return "off (stopping)"
	}
	return "double blink, then a pause (failing)"
}

// Clock is the time source of the pattern engine. A fake lets tests step
// through a pattern without waiting.
type Clock interface {
	Now() time.Time
	// After behaves like time.After.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// LED drives a pin with the pattern of the current state. Set is safe to
// call from any goroutine; Run owns the pin.
type LED struct {
	pin       gpio.PinOut
	activeLow bool
	clk       Clock

	mu      sync.Mutex
	state   status.State
	busy    bool
	changed chan struct{} // capacity 1: a pending "look again" for Run
}

// New makes an LED on pin, starting in the starting state. activeLow means
// the LED lights when the pin is low (wired from 3.3V to the pin).
func New(pin gpio.PinOut, activeLow bool, clk Clock) *LED {
	if clk == nil {
		clk = RealClock{}
	}
	return &LED{pin: pin, activeLow: activeLow, clk: clk, state: status.Starting, changed: make(chan struct{}, 1)}
}

// Set selects the pattern. A change restarts the new pattern from its first
// step at once; setting the current state again does nothing, so a poller
// may call Set as often as it likes without disturbing the rhythm.
func (l *LED) Set(state status.State, busy bool) {
	if state != status.OK {
		busy = false // only ok has a busy variant; ignoring it elsewhere avoids needless restarts
	}
	l.mu.Lock()
	same := l.state == state && l.busy == busy
	l.state, l.busy = state, busy
	l.mu.Unlock()
	if same {
		return
	}
	select {
	case l.changed <- struct{}{}:
	default: // a wake-up is already pending; Run reads the newest state
	}
}

func (l *LED) current() (status.State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.busy
}

// Run drives the pin until ctx ends, then switches the LED off. It returns
// nil when ctx ends, or the first error of the pin (the caller logs it and
// carries on without an LED).
func (l *LED) Run(ctx context.Context) error {
	for {
		// Drain before reading: a Set that lands after this point signals
		// again, and one before it is already reflected in current().
		select {
		case <-l.changed:
		default:
		}
		steps := Pattern(l.current())
		restart, err := l.play(ctx, steps)
		if err != nil {
			return err
		}
		if !restart {
			return l.drive(false)
		}
	}
}

// play repeats steps until the state changes (restart) or ctx ends. Each
// step's end is computed from the pattern's start, so a slow wake-up does
// not stretch the rhythm over time.
func (l *LED) play(ctx context.Context, steps []Step) (restart bool, err error) {
	next := l.clk.Now()
	for i := 0; ; i = (i + 1) % len(steps) {
		if err := l.drive(steps[i].On); err != nil {
			return false, err
		}
		next = next.Add(steps[i].For)
		wait := next.Sub(l.clk.Now())
		if wait < 0 { // fell behind (a suspended board): realign rather than race
			wait, next = steps[i].For, l.clk.Now().Add(steps[i].For)
		}
		select {
		case <-l.clk.After(wait):
		case <-l.changed:
			return true, nil
		case <-ctx.Done():
			return false, nil
		}
	}
}

func (l *LED) drive(on bool) error {
	lvl := gpio.Level(on != l.activeLow)
	if err := l.pin.Out(lvl); err != nil {
		return fmt.Errorf("led: drive %s: %w", l.pin.Name(), err)
	}
	return nil
}

// Follow polls source every interval and passes its answer to Set, until
// ctx ends. source is typically the status model's snapshot: state and
// "queue not empty".
func (l *LED) Follow(ctx context.Context, every time.Duration, source func() (state status.State, busy bool)) {
	for {
		l.Set(source())
		select {
		case <-l.clk.After(every):
		case <-ctx.Done():
			return
		}
	}
}
