package deliver

import (
	"context"
	"strings"
	"testing"
	"time"
)

// One held message is "1 message held", not "1 messages held".
func TestSchedulerHeldGrammar(t *testing.T) {
	h := newHarness(t, newDialer(), nil)
	h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.tick()
	log := strings.Join(h.logs.lines(), "\n")
	if !strings.Contains(log, "no upstream configured: 1 message held") || strings.Contains(log, "1 messages") {
		t.Fatalf("held line:\n%s", log)
	}
}

// Reconfigure while Run is running: the next pass uses the new upstream
// list; mail held without an upstream goes out without a restart.
func TestSchedulerReconfigure(t *testing.T) {
	h := newHarness(t, newDialer(), nil)
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.sched.Run(ctx) }()
	defer func() { cancel(); <-done }()

	bad := h.sched.opt
	bad.MinBackoff, bad.MaxBackoff = time.Hour, time.Minute
	if err := h.sched.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure accepted min backoff above max backoff")
	}

	up := &fakeUp{name: up1}
	opt := h.sched.opt
	opt.Dialer = newDialer(up)
	if err := h.sched.Reconfigure(opt); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.store.count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered after Reconfigure: %+v", m.ID, h.store.get(m.ID))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pass stuck inside one attempt reads as stalled once it passes the
// limit; between passes the scheduler is never stalled.
func TestSchedulerPassStalled(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	if h.sched.PassStalled(h.clock.Now(), time.Minute) {
		t.Fatal("stalled before any pass")
	}
	inside, gate := make(chan struct{}), make(chan struct{})
	d.during = func(*fakeConn, []string) { close(inside); <-gate }
	done := make(chan struct{})
	go func() { h.tick(); close(done) }()
	<-inside
	if h.sched.PassStalled(h.clock.Now(), time.Minute) {
		t.Fatal("stalled at the start of an attempt")
	}
	if !h.sched.PassStalled(h.clock.Now().Add(2*time.Minute), time.Minute) {
		t.Fatal("an attempt silent for 2m is not stalled with a 1m limit")
	}
	close(gate)
	<-done
	if h.sched.PassStalled(h.clock.Now().Add(time.Hour), time.Minute) {
		t.Fatal("stalled after the pass ended")
	}
}
