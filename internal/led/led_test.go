package led

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"relaybox/internal/status"
)

// fakeClock hands every After to the test, which decides when it fires.
// The engine blocks in After until the test takes the wait, so the pin level
// the test reads then is the level of the step being waited out.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan wait
}

type wait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), waits: make(chan wait)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- wait{d, ch}
	return ch
}

// next takes the engine's next wait without firing it.
func (c *fakeClock) next(t *testing.T) wait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("the LED engine never waited")
		return wait{}
	}
}

// fire advances the clock by the wait and wakes the engine.
func (c *fakeClock) fire(w wait) {
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.ch <- now
}

// levelStep is what the test observes: the raw pin level and how long it
// is held.
type levelStep struct {
	L gpio.Level
	D time.Duration
}

// record observes n steps, firing each one.
func record(t *testing.T, c *fakeClock, p *gpiotest.Pin, n int) []levelStep {
	t.Helper()
	var got []levelStep
	for range n {
		w := c.next(t)
		got = append(got, levelStep{p.Read(), w.d})
		c.fire(w)
	}
	return got
}

// start runs an LED in the given state and returns a stop func that checks
// Run's result.
func start(t *testing.T, state status.State, busy, activeLow bool) (*LED, *fakeClock, *gpiotest.Pin, func() error) {
	t.Helper()
	p := &gpiotest.Pin{N: "GPIO17", Num: 17}
	c := newFakeClock()
	l := New(p, activeLow, c)
	l.Set(state, busy) // before Run: the first step must still be the new pattern's
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stop := func() error {
		cancel()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case err := <-done:
				return err
			case <-c.waits: // the engine may be handing over its next wait; never fire it
			case <-timeout:
				t.Fatal("Run did not return after cancel")
				return nil
			}
		}
	}
	t.Cleanup(func() { cancel() })
	return l, c, p, stop
}

const (
	H  = gpio.High
	L  = gpio.Low
	ms = time.Millisecond
)

func TestTimelines(t *testing.T) {
	tests := []struct {
		state status.State
		busy  bool
		cycle []levelStep // one period, active high
	}{
		{status.Starting, false, []levelStep{{H, 100 * ms}, {L, 100 * ms}}},
		{status.OK, false, []levelStep{{H, time.Minute}}},
		{status.OK, true, []levelStep{{H, 900 * ms}, {L, 100 * ms}}},
		{status.Degraded, false, []levelStep{{H, time.Second}, {L, time.Second}}},
		{status.Degraded, true, []levelStep{{H, time.Second}, {L, time.Second}}}, // busy only matters when ok
		{status.Failing, false, []levelStep{{H, 150 * ms}, {L, 150 * ms}, {H, 150 * ms}, {L, 1050 * ms}}},
		{status.Stopping, false, []levelStep{{L, time.Minute}}},
		{"no-such-state", false, []levelStep{{H, 150 * ms}, {L, 150 * ms}, {H, 150 * ms}, {L, 1050 * ms}}},
	}
	for _, tt := range tests {
		for _, activeLow := range []bool{false, true} {
			name := string(tt.state)
			if tt.busy {
				name += "+busy"
			}
			if activeLow {
				name += "/active_low"
			}
			t.Run(name, func(t *testing.T) {
				_, c, p, stop := start(t, tt.state, tt.busy, activeLow)
				var want []levelStep
				for range 3 { // three periods: the pattern repeats exactly
					for _, s := range tt.cycle {
						if activeLow {
							s.L = !s.L
						}
						want = append(want, s)
					}
				}
				got := record(t, c, p, len(want))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("timeline\n got %v\nwant %v", got, want)
				}
				if err := stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				if off := gpio.Level(activeLow); p.Read() != off {
					t.Fatalf("after Run the pin is %v; want %v (LED off)", p.Read(), off)
				}
			})
		}
	}
}

func TestChangeMidPattern(t *testing.T) {
	l, c, p, stop := start(t, status.Failing, false, true)
	// First blink of the double blink: LED on (pin low, active low).
	if w := c.next(t); p.Read() != L || w.d != 150*ms {
		t.Fatalf("first step: pin %v for %v; want Low for 150ms", p.Read(), w.d)
	}
	// The state changes while that step is being waited out: the new
	// pattern starts at its first step at once; the old timer is abandoned.
	l.Set(status.OK, true)
	got := record(t, c, p, 4)
	want := []levelStep{{L, 900 * ms}, {H, 100 * ms}, {L, 900 * ms}, {H, 100 * ms}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after change\n got %v\nwant %v", got, want)
	}
	// Setting the same state again must not restart the rhythm: the engine
	// keeps waiting out the step it is in.
	w := c.next(t)
	l.Set(status.OK, true)
	c.fire(w)
	if w2 := c.next(t); p.Read() != H || w2.d != 100*ms {
		t.Fatalf("repeated Set restarted the pattern: pin %v for %v; want High (off) for 100ms", p.Read(), w2.d)
	} else {
		l.Set(status.Stopping, false)
		if w3 := c.next(t); p.Read() != H || w3.d != time.Minute {
			t.Fatalf("stopping: pin %v for %v; want High (off) held", p.Read(), w3.d)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// failPin fails every Out, like a GPIO the process may not write.
type failPin struct{ gpiotest.Pin }

var errDenied = errors.New("permission denied")

func (*failPin) Out(gpio.Level) error { return errDenied }

func TestRunReturnsPinError(t *testing.T) {
	l := New(&failPin{gpiotest.Pin{N: "GPIO17"}}, false, newFakeClock())
	err := l.Run(context.Background())
	if !errors.Is(err, errDenied) || err.Error() != "led: drive GPIO17: permission denied" {
		t.Fatalf("Run = %v; want the pin error naming the pin", err)
	}
}

func TestFollow(t *testing.T) {
	c := newFakeClock()
	l := New(&gpiotest.Pin{N: "GPIO17"}, false, c)
	answers := []struct {
		state status.State
		busy  bool
	}{{status.Starting, false}, {status.OK, true}, {status.Degraded, true}}
	i := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Follow(ctx, 250*ms, func() (status.State, bool) {
			a := answers[min(i, len(answers)-1)]
			i++
			return a.state, a.busy
		})
	}()
	for _, a := range answers {
		w := c.next(t)
		if w.d != 250*ms {
			t.Fatalf("poll interval %v; want 250ms", w.d)
		}
		state, busy := l.current()
		wantBusy := a.busy && a.state == status.OK
		if state != a.state || busy != wantBusy {
			t.Fatalf("after poll: %s/%v; want %s/%v", state, busy, a.state, wantBusy)
		}
		c.fire(w)
	}
	_ = c.next(t) // Follow is waiting again; cancel must end it
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after cancel")
	}
}

func TestPatternIsACopy(t *testing.T) {
	p := Pattern(status.Failing, false)
	p[0].For = time.Hour
	if Pattern(status.Failing, false)[0].For != 150*ms {
		t.Fatal("Pattern returned shared storage")
	}
}

// Describe follows Pattern: each distinct timeline gets its own words, and
// a state that blinks like failing is described as failing.
func TestDescribeFollowsPattern(t *testing.T) {
	seen := map[string]string{}
	for _, st := range []status.State{status.Starting, status.OK, status.Degraded, status.Failing, status.Stopping, "bogus"} {
		for _, busy := range []bool{false, true} {
			key := fmt.Sprint(Pattern(st, busy))
			d := Describe(st, busy)
			if prev, ok := seen[key]; ok && prev != d {
				t.Errorf("%s busy=%v: one pattern, two descriptions: %q and %q", st, busy, prev, d)
			}
			seen[key] = d
		}
	}
	if len(seen) != 6 {
		t.Errorf("%d distinct patterns described, want 6: %v", len(seen), seen)
	}
}
