package deliver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"relaybox/internal/spool"
)

const up1, up2 = "relay1.example.edu:587", "relay2.example.edu:587"

func rcptStates(m *spool.Message) string {
	var out []string
	for _, r := range m.Recipients {
		out = append(out, r.Address+"="+string(r.State))
	}
	return strings.Join(out, " ")
}

// TestSchedulerConnectionFailures: an upstream that cannot be reached
// defers the message with attempts recorded and a growing backoff, holds
// the upstream back, and delivers once it works again.
func TestSchedulerConnectionFailures(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		reply string
	}{
		{"refused", netErr(up1, "dial", "connection refused"), "connection refused"},
		{"never greets", netErr(up1, "greeting", "no greeting within 30s"), "no greeting within 30s"},
		{"greets 421", reply(up1, "greeting", 421, "4.3.2", "too busy"), "421 4.3.2 too busy"},
		{"non-smtp dial error", errors.New("no route to host"), "no route to host"},
		// OAuth: a refused token and a failed refresh defer the mail, never fail it.
		{"token refused 535", reply(up1, "auth", 535, "5.7.8", "Username and Password not accepted"), "535 5.7.8 Username and Password not accepted"},
		{"token refresh failed", &Error{Upstream: up1, Op: "token", Text: "token refresh failed: invalid_grant (run relaybox oauth-login -upstream 0)"},
			"token refresh failed: invalid_grant (run relaybox oauth-login -upstream 0)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDialer(&fakeUp{name: up1, dialErr: tc.err})
			h := newHarness(t, d, func(o *SchedulerOptions) { o.UpstreamHold = 3 * time.Minute })
			m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
			start := h.clock.Now()

			// Backoff doubles per attempt. While the upstream is held back
			// nobody dials and nothing is recorded: the due message waits
			// for the hold to end, not for another backoff step.
			var wakes []time.Duration
			for got := h.store.get(m.ID); got.Attempts < 4; got = h.store.get(m.ID) {
				next := h.tick()
				wakes = append(wakes, next.Sub(start))
				h.clock.Set(next)
				if len(wakes) > 10 {
					t.Fatalf("no 4th attempt after wakes %v", wakes)
				}
			}
			// Attempts at 0 (next 1m), 3m (next 5m), 6m (next 10m), 10m
			// (next 18m); held back at 1m (until 3m) and 5m (until 6m).
			if want := []time.Duration{time.Minute, 3 * time.Minute, 5 * time.Minute, 6 * time.Minute,
				10 * time.Minute, 18 * time.Minute}; !slices.Equal(wakes, want) {
				t.Fatalf("wakes %v, want %v", wakes, want)
			}
			got := h.store.get(m.ID)
			if got.Attempts != 4 || got.State != spool.StateQueued || got.LastReply != tc.reply {
				t.Fatalf("after 4 attempts: attempts %d state %s last reply %q", got.Attempts, got.State, got.LastReply)
			}
			if len(got.History) != 4 || got.History[0].Upstream != up1 || got.History[0].Outcome != "deferred" {
				t.Fatalf("history %+v", got.History)
			}
			dials, _, _, open, _, sends := d.stats()
			// One dial per recorded attempt: a hold never records one.
			if dials[up1] != 4 || open != 0 || len(sends) != 0 {
				t.Fatalf("dials %v open %d sends %d; want 4 dials (hold respected), nothing open or sent", dials, open, len(sends))
			}
			if k := h.kinds(); len(k) != 4 || k[0] != "deferred:alice@example.edu" {
				t.Fatalf("events %v", k)
			}
			if !strings.Contains(strings.Join(h.ups, " "), up1+" fail") {
				t.Fatalf("OnUpstream calls %v", h.ups)
			}

			d.set(0, func(u *fakeUp) { u.dialErr = nil })
			h.clock.Add(time.Hour)
			if next := h.tick(); !next.IsZero() {
				t.Fatalf("next wake %v with an empty queue", next)
			}
			if h.store.count() != 0 {
				t.Fatalf("message not delivered: %s", rcptStates(h.store.get(m.ID)))
			}
			ev := h.lastEvent()
			if ev.Kind != "sent" || ev.Upstream != up1 || ev.Delay != h.clock.Now().Sub(start) {
				t.Fatalf("last event %+v", ev)
			}
		})
	}
}

// TestSchedulerMessageLevelFaults covers faults after a good connection.
func TestSchedulerMessageLevelFaults(t *testing.T) {
	cases := []struct {
		name      string
		send      func(rcpts []string) ([]RcptResult, error)
		states    string // after the faulty attempt
		reply     string // LastReply
		closed    bool   // session dropped
		held      bool   // upstream held back
		nextUsed2 bool   // a second upstream took over at once (must not)
	}{
		{
			name: "4xx on MAIL",
			send: func([]string) ([]RcptResult, error) {
				return nil, reply(up1, "mail", 451, "4.3.0", "try later")
			},
			states: "a@example.edu=pending b@example.edu=pending", reply: "451 4.3.0 try later",
		},
		{
			name: "4xx after DATA",
			send: func(r []string) ([]RcptResult, error) {
				return accept(r), reply(up1, "dot", 452, "4.3.1", "insufficient storage")
			},
			states: "a@example.edu=pending b@example.edu=pending", reply: "452 4.3.1 insufficient storage",
		},
		{
			name: "connection cut during DATA",
			send: func(r []string) ([]RcptResult, error) {
				return accept(r), netErr(up1, "data", "connection reset by peer")
			},
			states: "a@example.edu=pending b@example.edu=pending", reply: "connection reset by peer", closed: true,
		},
		{
			name: "slow upstream past the client timeout",
			send: func(r []string) ([]RcptResult, error) {
				return accept(r), netErr(up1, "dot", "no reply to the final dot within 10m0s")
			},
			states: "a@example.edu=pending b@example.edu=pending", reply: "no reply to the final dot within 10m0s", closed: true,
		},
		{
			name: "4xx on one RCPT",
			send: func(r []string) ([]RcptResult, error) {
				res := accept(r)
				res[1].Err = reply(up1, "rcpt", 450, "4.2.1", "mailbox busy")
				return res, nil
			},
			states: "a@example.edu=delivered b@example.edu=pending", reply: "450 4.2.1 mailbox busy",
		},
		{
			name: "421 on MAIL fails over",
			send: func([]string) ([]RcptResult, error) {
				return nil, reply(up1, "mail", 421, "4.7.0", "shutting down")
			},
			states: "", closed: true, held: true, nextUsed2: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDialer(&fakeUp{name: up1, send: tc.send}, &fakeUp{name: up2})
			h := newHarness(t, d, nil)
			m := h.store.add("scanner@lab.example.edu", []string{"a@example.edu", "b@example.edu"}, schedBody)
			h.tick()
			dials, _, closes, _, _, sends := d.stats()
			if tc.nextUsed2 {
				if h.store.count() != 0 || len(sends) != 2 || sends[1].upstream != up2 {
					t.Fatalf("no failover: %d messages left, sends %+v", h.store.count(), sends)
				}
			} else {
				got := h.store.get(m.ID)
				if rcptStates(got) != tc.states || got.LastReply != tc.reply || got.Attempts != 1 {
					t.Fatalf("got %q last %q attempts %d", rcptStates(got), got.LastReply, got.Attempts)
				}
				if !got.NextAttempt.Equal(h.clock.Now().Add(time.Minute)) || got.State != spool.StateQueued {
					t.Fatalf("next attempt %v state %s", got.NextAttempt, got.State)
				}
				// Deferral never moves on to the next upstream: the first
				// may already hold the message.
				if dials[up2] != 0 || len(sends) != 1 {
					t.Fatalf("second upstream used: dials %v sends %d", dials, len(sends))
				}
			}
			if (closes == 1) != tc.closed {
				t.Fatalf("closes %d, want closed=%v", closes, tc.closed)
			}
			if _, down := h.sched.isDown(0, h.clock.Now()); down != tc.held {
				t.Fatalf("upstream held=%v, want %v", down, tc.held)
			}

			// The next attempt after the fault completes the message.
			d.set(0, func(u *fakeUp) { u.send = nil })
			h.clock.Add(10 * time.Minute)
			h.tick()
			if h.store.count() != 0 {
				t.Fatalf("not delivered after recovery: %s", rcptStates(h.store.get(m.ID)))
			}
			_, _, _, _, _, sends = d.stats()
			last := sends[len(sends)-1]
			if tc.states == "a@example.edu=delivered b@example.edu=pending" && !slices.Equal(last.rcpts, []string{"b@example.edu"}) {
				t.Fatalf("retry sent to %v, want only the pending recipient", last.rcpts)
			}
		})
	}
}

// TestSchedulerFailover: the first upstream refuses, the second takes the
// message at once; the first is skipped for UpstreamHold, then tried again.
func TestSchedulerFailover(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, dialErr: netErr(up1, "dial", "connection refused")}, &fakeUp{name: up2})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 1 })
	m1 := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.tick()
	dials, _, _, _, _, sends := d.stats()
	if h.store.count() != 0 || dials[up1] != 1 || dials[up2] != 1 || len(sends) != 2 {
		t.Fatalf("left %d, dials %v, sends %d", h.store.count(), dials, len(sends))
	}
	if ups := strings.Join(h.ups, ", "); ups != up1+" fail, "+up2+" ok, "+up2+" ok" {
		t.Fatalf("OnUpstream: %s", ups)
	}
	_ = m1

	// Within the hold, new mail goes straight to the second upstream.
	h.clock.Add(4 * time.Minute)
	h.store.add("scanner@lab.example.edu", []string{"carol@example.edu"}, schedBody)
	h.tick()
	if dials, _, _, _, _, _ = d.stats(); dials[up1] != 1 {
		t.Fatalf("held upstream dialled: %v", dials)
	}
	// After the hold, the first upstream is preferred again.
	d.set(0, func(u *fakeUp) { u.dialErr = nil })
	h.clock.Add(2 * time.Minute)
	h.store.add("scanner@lab.example.edu", []string{"dave@example.edu"}, schedBody)
	h.tick()
	_, _, _, _, _, sends = d.stats()
	if last := sends[len(sends)-1]; last.upstream != up1 {
		t.Fatalf("after the hold mail went to %s", last.upstream)
	}
}

// TestSchedulerFailoverHistory: each upstream tried in one attempt leaves a
// History entry, the attempt counts once.
func TestSchedulerFailoverHistory(t *testing.T) {
	for _, prepay := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("prepaid %v", prepay), func(t *testing.T) { testFailoverHistory(t, prepay) })
	}
}

func testFailoverHistory(t *testing.T, prepay time.Duration) {
	d := newDialer(
		&fakeUp{name: up1, send: func([]string) ([]RcptResult, error) {
			return nil, reply(up1, "mail", 421, "", "closing")
		}},
		&fakeUp{name: up2, send: func([]string) ([]RcptResult, error) {
			return nil, reply(up2, "mail", 451, "", "greylisted")
		}},
	)
	h := newHarness(t, d, nil)
	h.store.prepay = prepay
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.tick()
	got := h.store.get(m.ID)
	if got.Attempts != 1 || len(got.History) != 2 || got.Prepaid != 0 {
		t.Fatalf("attempts %d history %+v", got.Attempts, got.History)
	}
	if h0, h1 := got.History[0], got.History[1]; h0.Upstream != up1 || h0.Outcome != "deferred" || h0.Reply != "421 closing" ||
		h1.Upstream != up2 || h1.Outcome != "deferred" || h1.Reply != "451 greylisted" {
		t.Fatalf("history %+v", got.History)
	}
}

// TestSchedulerNoUpstream: without an upstream mail is held (no attempt,
// no backoff, one log line) and goes out the moment one is configured.
func TestSchedulerNoUpstream(t *testing.T) {
	h := newHarness(t, newDialer(), nil)
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	before := h.store.get(m.ID)
	next := h.tick()
	h.clock.Add(time.Hour)
	h.tick()
	got := h.store.get(m.ID)
	if got.Attempts != 0 || !got.NextAttempt.Equal(before.NextAttempt) || len(got.History) != 0 {
		t.Fatalf("held message changed: %+v", got)
	}
	if want := before.Received.Add(120 * time.Hour); !next.Equal(want) {
		t.Fatalf("held wake %v, want the expiry %v", next, want)
	}
	if n := strings.Count(strings.Join(h.logs.lines(), "\n"), "no upstream configured: 2 messages held"); n != 1 {
		t.Fatalf("held line logged %d times:\n%s", n, strings.Join(h.logs.lines(), "\n"))
	}
	if len(h.kinds()) != 0 {
		t.Fatalf("held mail produced events %v", h.kinds())
	}

	// Same spool, now with an upstream: delivered on the first Tick.
	d := newDialer(&fakeUp{name: up1})
	s, err := NewScheduler(SchedulerOptions{Store: h.store, Dialer: d, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.store.count() != 0 {
		t.Fatalf("%d messages left after an upstream appeared", h.store.count())
	}
}

// TestSchedulerRecordsAttemptBeforeSend: while the upstream is receiving
// the message, the spool already shows the attempt and its backoff.
func TestSchedulerRecordsAttemptBeforeSend(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	checked := false
	d.during = func(c *fakeConn, rcpts []string) {
		got := h.store.get(m.ID)
		n := len(got.History)
		if got.Attempts != 1 || !got.NextAttempt.After(h.clock.Now()) || n != 1 || got.History[0].Upstream != up1 || got.History[0].Outcome != "" {
			t.Errorf("during Send the spool shows %+v", got)
		}
		checked = true
	}
	h.tick()
	if !checked || h.store.count() != 0 {
		t.Fatalf("checked %v, %d left", checked, h.store.count())
	}
}

// TestSchedulerPrepaidFirstAttempt: a first attempt the accept commit paid
// for (spool.Message.Prepaid) is made without writing anything first, and
// a delivered message then costs the store one write, its delete.
func TestSchedulerPrepaidFirstAttempt(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	h.store.prepay = time.Minute
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	checked := false
	d.during = func(c *fakeConn, rcpts []string) {
		if got, n := h.store.get(m.ID), h.store.writeCount(); n != 0 || got.Attempts != 0 || len(got.History) != 0 {
			t.Errorf("during a prepaid first Send: %d writes so far, attempts %d, history %+v; want none", n, got.Attempts, got.History)
		}
		checked = true
	}
	h.tick()
	if !checked || h.store.count() != 0 {
		t.Fatalf("checked %v, %d left", checked, h.store.count())
	}
	if n := h.store.writeCount(); n != 1 {
		t.Errorf("%d writes for a delivered message, want 1 (the delete)", n)
	}
}

// TestSchedulerPrepaidDeferral: a prepaid first attempt that is deferred is
// recorded with its outcome in one write (attempt, backoff, History); the
// retry is recorded before it is made, as every later attempt is.
func TestSchedulerPrepaidDeferral(t *testing.T) {
	answer := func([]string) ([]RcptResult, error) { return nil, reply(up1, "data", 451, "4.3.0", "try later") }
	d := newDialer(&fakeUp{name: up1, send: answer})
	h := newHarness(t, d, nil)
	h.store.prepay = time.Minute
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	start := h.clock.Now()
	next := h.tick()
	got := h.store.get(m.ID)
	if got.Attempts != 1 || got.Prepaid != 0 || !got.NextAttempt.Equal(start.Add(time.Minute)) || !next.Equal(got.NextAttempt) {
		t.Fatalf("after a deferred first attempt: attempts %d prepaid %v next %v (wake %v)", got.Attempts, got.Prepaid, got.NextAttempt, next)
	}
	if len(got.History) != 1 || got.History[0].Upstream != up1 || got.History[0].Outcome != "deferred" ||
		got.History[0].Reply != "451 4.3.0 try later" || got.LastReply != "451 4.3.0 try later" {
		t.Fatalf("history %+v last reply %q", got.History, got.LastReply)
	}
	if n := h.store.writeCount(); n != 1 {
		t.Errorf("%d writes for the deferred first attempt, want 1", n)
	}
	checked := false
	d.during = func(c *fakeConn, rcpts []string) {
		got := h.store.get(m.ID)
		if got.Attempts != 2 || len(got.History) != 2 || got.History[1].Outcome != "" {
			t.Errorf("during the retry the spool shows attempts %d history %+v; want it recorded", got.Attempts, got.History)
		}
		checked = true
	}
	h.clock.Set(next)
	h.tick()
	if !checked {
		t.Fatal("no retry")
	}
}

// TestSchedulerDeleteBesideNextAttempt: a delivered message's delete does
// not hold up the worker's next attempt, so the two can share a group
// commit; the Tick still ends with the message deleted.
func TestSchedulerDeleteBesideNextAttempt(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 1 })
	first := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	second := h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	secondSent := make(chan struct{})
	d.during = func(c *fakeConn, rcpts []string) {
		if rcpts[0] == "bob@example.edu" {
			close(secondSent)
		}
	}
	h.store.onDelete = func(id string) {
		if id != first.ID {
			return
		}
		select {
		case <-secondSent:
		case <-time.After(5 * time.Second):
			t.Error("the first message's delete held up the second attempt")
		}
	}
	h.tick()
	if h.store.get(first.ID) != nil || h.store.get(second.ID) != nil || h.store.count() != 0 {
		t.Fatalf("%d messages left after the Tick", h.store.count())
	}
}

// TestSchedulerOneDeleteInFlight: a worker waits for its last delivered
// message's delete before it starts another, since the spool may hold a
// delete back to share a commit, and every delivered message not yet
// deleted is sent again after a crash: at most one per connection.
func TestSchedulerOneDeleteInFlight(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 1 })
	first := h.store.add("scanner@lab.example.edu", []string{"a@example.edu"}, schedBody)
	h.store.add("scanner@lab.example.edu", []string{"b@example.edu"}, schedBody)
	h.store.add("scanner@lab.example.edu", []string{"c@example.edu"}, schedBody)
	thirdSent := make(chan struct{})
	d.during = func(c *fakeConn, rcpts []string) {
		if rcpts[0] == "c@example.edu" {
			close(thirdSent)
		}
	}
	h.store.onDelete = func(id string) {
		if id != first.ID {
			return
		}
		// Without the bound the third message goes out meanwhile.
		select {
		case <-thirdSent:
		case <-time.After(time.Second):
		}
	}
	h.tick()
	if h.store.count() != 0 {
		t.Fatalf("%d messages left", h.store.count())
	}
	h.store.mu.Lock()
	most := h.store.maxDeleting
	h.store.mu.Unlock()
	if most != 1 {
		t.Errorf("%d deletes in flight at once on one connection, want 1", most)
	}
}

// TestSchedulerSessionReuse: one session carries consecutive messages with
// RSET between, survives a short idle, and is closed after IdleClose.
func TestSchedulerSessionReuse(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 1 })
	h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.tick()
	dials, resets, closes, open, _, sends := d.stats()
	if dials[up1] != 1 || resets != 1 || closes != 0 || open != 1 || len(sends) != 2 {
		t.Fatalf("dials %v resets %d closes %d open %d sends %d", dials, resets, closes, open, len(sends))
	}
	h.clock.Add(20 * time.Second)
	h.store.add("scanner@lab.example.edu", []string{"carol@example.edu"}, schedBody)
	h.tick()
	if dials, resets, _, _, _, _ = d.stats(); dials[up1] != 1 || resets != 2 {
		t.Fatalf("idle session not reused: dials %v resets %d", dials, resets)
	}
	h.clock.Add(30 * time.Second)
	h.tick()
	if _, _, closes, open, _, _ = d.stats(); closes != 1 || open != 0 {
		t.Fatalf("idle session not closed: closes %d open %d", closes, open)
	}
}

// TestSchedulerResetFailureRedials: a reused session that fails RSET is
// replaced; the upstream is not held back for it.
func TestSchedulerResetFailureRedials(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.tick()
	d.set(0, func(u *fakeUp) { u.resetErr = netErr(up1, "rset", "broken pipe") })
	h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.tick()
	dials, _, closes, _, _, sends := d.stats()
	if h.store.count() != 0 || dials[up1] != 2 || closes != 1 || len(sends) != 2 {
		t.Fatalf("left %d dials %v closes %d sends %d", h.store.count(), dials, closes, len(sends))
	}
	if _, down := h.sched.isDown(0, h.clock.Now()); down {
		t.Fatal("upstream held back for a stale session")
	}
}

// TestSchedulerConnectionsBound: never more than Connections sessions,
// and they do run in parallel.
func TestSchedulerConnectionsBound(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 3 })
	for i := range 10 {
		h.store.add("scanner@lab.example.edu", []string{"user" + string(rune('a'+i)) + "@example.edu"}, schedBody)
	}
	var mu sync.Mutex
	inflight, most, started := 0, 0, 0
	all := make(chan struct{})
	d.during = func(*fakeConn, []string) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if started++; started == 3 {
			close(all)
		}
		first := started <= 3
		mu.Unlock()
		if first {
			// The first three wait for each other: proof of parallelism.
			select {
			case <-all:
			case <-time.After(5 * time.Second):
				t.Error("sends did not run in parallel")
			}
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	h.tick()
	_, _, _, _, maxOpen, sends := d.stats()
	if h.store.count() != 0 || len(sends) != 10 || most != 3 || maxOpen > 3 {
		t.Fatalf("left %d sends %d most in flight %d max open %d", h.store.count(), len(sends), most, maxOpen)
	}
	// Idle sessions from this Tick plus new dials never pass the bound,
	// even when the preferred upstream changes under them.
	d.ups = append(d.ups, &fakeUp{name: up2})
	d.during = nil
	d.set(0, func(u *fakeUp) { u.resetErr = errors.New("gone"); u.dialErr = errors.New("refused") })
	for range 5 {
		h.store.add("scanner@lab.example.edu", []string{"zed@example.edu"}, schedBody)
	}
	h.tick()
	if _, _, _, _, maxOpen, _ = d.stats(); maxOpen > 3 || h.store.count() != 0 {
		t.Fatalf("max open %d, %d left", maxOpen, h.store.count())
	}
}

// TestSchedulerLogLine: one key=value line per event with exactly the
// agreed keys.
func TestSchedulerLogLine(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, send: func(r []string) ([]RcptResult, error) {
		res := accept(r)
		res[2].Err = reply(up1, "rcpt", 451, "4.3.0", "try \"later\"")
		return res, nil
	}})
	h := newHarness(t, d, nil)
	h.store.add("scanner@lab.example.edu", []string{"a@example.edu", "b@example.edu", "c@example.edu"}, schedBody)
	h.clock.Add(90 * time.Second)
	h.tick()
	var events []string
	for _, l := range h.logs.lines() {
		if strings.Contains(l, " event=") {
			events = append(events, l)
		}
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^time=\S+ level=INFO msg=message id=M001 event=sent from=scanner@lab\.example\.edu to=a@example\.edu,b@example\.edu upstream=relay1\.example\.edu:587 reply="250 2\.0\.0 Ok: queued as 4BxQ7" delay=1m30s$`),
		regexp.MustCompile(`^time=\S+ level=WARN msg=message id=M001 event=deferred from=scanner@lab\.example\.edu to=c@example\.edu upstream=relay1\.example\.edu:587 reply="451 4\.3\.0 try \\"later\\"" delay=1m30s$`),
	}
	if len(events) != len(want) {
		t.Fatalf("event lines:\n%s", strings.Join(events, "\n"))
	}
	for i, re := range want {
		if !re.MatchString(events[i]) {
			t.Errorf("line %d:\n%s\ndoes not match\n%s", i, events[i], re)
		}
	}
	// The record keeps the upstream's queue ID for the delivered
	// recipients: queue show and the API read it from there.
	m := h.store.get("M001")
	for _, r := range m.Recipients[:2] {
		if r.State != spool.RcptDelivered || r.Reply() != queuedAs {
			t.Errorf("recipient %+v, want delivered with %q", r, queuedAs)
		}
	}
}

// TestSchedulerRunAndKick: Run delivers what is due, wakes on Kick, and
// closes its sessions when the context ends.
func TestSchedulerRunAndKick(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	got := make(chan Event, 10)
	h := newHarness(t, d, func(o *SchedulerOptions) { o.OnEvent = func(ev Event) { got <- ev } })
	h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.sched.Run(ctx) }()
	wait := func(who string) {
		t.Helper()
		select {
		case ev := <-got:
			if ev.Kind != "sent" || ev.To[0] != who {
				t.Fatalf("event %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not delivered", who)
		}
	}
	wait("alice@example.edu")
	h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.sched.Kick()
	wait("bob@example.edu")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, _, _, open, _, _ := d.stats(); open != 0 {
		t.Fatalf("%d sessions open after Run", open)
	}
}

// TestSchedulerCancelledIsNoAttempt: a Tick on a cancelled context (shutdown)
// charges no attempt.
func TestSchedulerCancelledIsNoAttempt(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.sched.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.store.get(m.ID); got.Attempts != 0 || !got.NextAttempt.Equal(m.NextAttempt) {
		t.Fatalf("shutdown charged an attempt: %+v", got)
	}
}

func TestNewSchedulerRejects(t *testing.T) {
	st := newStore(newClock())
	for name, opt := range map[string]SchedulerOptions{
		"no store":       {},
		"min above max":  {Store: st, MinBackoff: time.Hour, MaxBackoff: time.Minute},
		"negative":       {Store: st, Connections: -1},
		"header in addr": {Store: st, Notify: "a@b\r\nBcc: x@y"},
	} {
		if _, err := NewScheduler(opt); err == nil || !strings.HasPrefix(err.Error(), "deliver: ") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// TestSchedulerWithSpool runs the partial-failure path against the real
// spool: outcome, dead letter, notice spooled and then delivered.
func TestSchedulerWithSpool(t *testing.T) {
	clock := newClock()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{Now: clock.Now, ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	w, err := sp.Create(spool.Envelope{From: "scanner@lab.example.edu", Recipients: []string{"alice@example.edu", "nobody@example.edu"}})
	if err != nil {
		t.Fatal(err)
	}
	body := schedBody + strings.Repeat("scan data line\r\n", 500)
	w.Write([]byte(body))
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer(&fakeUp{name: up1, send: noSuchUser("nobody@example.edu")})
	s, err := NewScheduler(SchedulerOptions{Store: SpoolStore(sp), Dialer: d, Now: clock.Now, Notify: "postmaster@example.edu", Hostname: "relaybox.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := sp.Get(m.ID)
	if err != nil || got.State != spool.StateDead || rcptStates(got) != "alice@example.edu=delivered nobody@example.edu=failed" || got.Attempts != 1 {
		t.Fatalf("message %+v, %v", got, err)
	}
	queued, _ := sp.List(spool.StateQueued)
	if len(queued) != 1 || queued[0].From != "" {
		t.Fatalf("queued after the failure: %+v", queued)
	}
	_, _, _, _, _, sends := d.stats()
	if sends[0].body != body {
		t.Fatal("body changed on its way through the spool")
	}
	if _, err := s.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if queued, _ = sp.List(spool.StateQueued); len(queued) != 0 {
		t.Fatalf("notice not delivered: %+v", queued)
	}
	_, _, _, _, _, sends = d.stats()
	if n := sends[len(sends)-1]; n.from != "" || !strings.Contains(n.body, "Subject: Undelivered mail: Scan from copier 3\r\n") ||
		strings.Contains(n.body, "scan data line") {
		t.Fatalf("notice as sent:\n%s", n.body)
	}
}

// TestSchedulerSpoolCommits: a lone message delivered at the first attempt
// costs the real spool two commits (accept, then the delete) when its first
// attempt was prepaid, three when it was not (accept, attempt, delete).
func TestSchedulerSpoolCommits(t *testing.T) {
	for _, tc := range []struct {
		prepaid bool
		want    int64
	}{{false, 3}, {true, 2}} {
		t.Run(fmt.Sprintf("prepaid %v", tc.prepaid), func(t *testing.T) {
			clock := newClock()
			d := newDialer(&fakeUp{name: up1})
			opt := SchedulerOptions{Dialer: d, Now: clock.Now, Hostname: "relaybox.test"}
			sopt := spool.Options{Now: clock.Now}
			if tc.prepaid {
				sopt.Prepay = Prepay(opt)
			}
			sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), sopt)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			opt.Store = SpoolStore(sp)
			s, err := NewScheduler(opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c0 := sp.Commits()
			m, err := opt.Store.Enqueue(spool.Envelope{From: "scanner@lab.example.edu", Recipients: []string{"alice@example.edu"}}, []byte(schedBody))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Prepaid > 0; got != tc.prepaid {
				t.Fatalf("prepaid %v", m.Prepaid)
			}
			if _, err := s.Tick(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := sp.Get(m.ID); !errors.Is(err, spool.ErrNotFound) {
				t.Fatalf("message left after delivery: %v", err)
			}
			if n := sp.Commits() - c0; n != tc.want {
				t.Errorf("%d commits for a lone delivered message, want %d", n, tc.want)
			}
		})
	}
}

// TestPrepayNeedsUpstream: without an upstream nothing is prepaid; with
// one the charge is the first backoff step.
func TestPrepayNeedsUpstream(t *testing.T) {
	if Prepay(SchedulerOptions{}) != nil || Prepay(SchedulerOptions{Dialer: newDialer()}) != nil {
		t.Fatal("prepaid without an upstream")
	}
	fn := Prepay(SchedulerOptions{Dialer: newDialer(&fakeUp{name: up1}), MinBackoff: 2 * time.Minute, MaxBackoff: time.Hour,
		Jitter: func() float64 { return 0.5 }})
	if fn == nil || fn() != 2*time.Minute {
		t.Fatal("prepay is not the first backoff step")
	}
}

// TestSchedulerRetryDialsThroughHold: a manual retry forgets the upstream's
// hold and dials at once. Upstream still down: one fresh dial, its reply
// recorded, and the other due message is left alone, not charged an attempt
// nobody made. Upstream back: everything goes out in that pass.
func TestSchedulerRetryDialsThroughHold(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, dialErr: netErr(up1, "dial", "connection refused")})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.Connections = 1; o.UpstreamHold = 10 * time.Minute })
	m1 := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	m2 := h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.tick() // m1 dials and fails; m2 finds the upstream held
	if a1, a2 := h.store.get(m1.ID).Attempts, h.store.get(m2.ID).Attempts; a1 != 1 || a2 != 0 {
		t.Fatalf("attempts %d %d, want 1 0 (no attempt recorded without a dial)", a1, a2)
	}
	makeDue := func() {
		for _, m := range []*spool.Message{m1, m2} {
			h.store.Update(m.ID, func(msg *spool.Message) error { msg.NextAttempt = h.clock.Now(); return nil })
		}
	}

	// Still down, with a new cause: the retry dials once and says so.
	h.clock.Add(10 * time.Second)
	d.set(0, func(u *fakeUp) { u.dialErr = netErr(up1, "dial", "no route to host") })
	makeDue()
	h.sched.Retry()
	next := h.tick()
	dials, _, _, _, _, _ := d.stats()
	if dials[up1] != 2 {
		t.Fatalf("dials %v after retry, want a fresh dial", dials)
	}
	if got := h.store.get(m1.ID); got.Attempts != 2 || got.LastReply != "no route to host" {
		t.Fatalf("m1 attempts %d last reply %q, want 2 and the reply of the dial just made", got.Attempts, got.LastReply)
	}
	if got := h.store.get(m2.ID); got.Attempts != 0 || len(got.History) != 0 {
		t.Fatalf("m2 charged an attempt nobody made: %+v", got)
	}
	if want := h.clock.Now().Add(10 * time.Minute); !next.Equal(want) {
		t.Fatalf("next wake %v, want the end of the new hold %v", next, want)
	}
	for _, k := range h.kinds() {
		if k == "deferred:bob@example.edu" {
			t.Fatalf("deferred event for a message nothing was tried for: %v", h.kinds())
		}
	}

	// Back up: without Retry the hold still stands...
	h.clock.Add(10 * time.Second)
	d.set(0, func(u *fakeUp) { u.dialErr = nil })
	makeDue()
	h.tick()
	if h.store.count() != 2 {
		t.Fatalf("delivered through a hold without a retry")
	}
	// ...and the retry delivers both at once.
	h.sched.Retry()
	h.tick()
	if h.store.count() != 0 {
		t.Fatalf("%d messages left after a retry with the upstream back", h.store.count())
	}
}
