package deliver

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// TestSchedulerPartialFailure: 5xx on one of two RCPTs delivers one,
// fails the other, dead-letters the message and notices the admin; the
// notice is then delivered like any mail.
func TestSchedulerPartialFailure(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, send: noSuchUser("nobody@example.edu")})
	h := newHarness(t, d, nil)
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu", "nobody@example.edu"}, schedBody)
	h.tick()

	got := h.store.get(m.ID)
	if got == nil || got.State != spool.StateDead || rcptStates(got) != "alice@example.edu=delivered nobody@example.edu=failed" {
		t.Fatalf("message %+v", got)
	}
	if got.Recipients[1].Reply() != "550 5.1.1 no such user" || got.History[0].Outcome != "partial" {
		t.Fatalf("reply %q history %+v", got.Recipients[1].Reply(), got.History)
	}
	// The refusal is kept as data: the admin's retry reads it, not the text.
	if o := got.Recipients[1].Outcome; !o.Permanent || o.Code != 550 || o.Enhanced != "5.1.1" || o.Text != "no such user" || o.Expired {
		t.Fatalf("outcome %+v", o)
	}
	if o := got.Recipients[0].Outcome; o.Permanent || o.Code != 250 {
		t.Fatalf("delivered outcome %+v", o)
	}
	if k := h.kinds(); !slices.Equal(k, []string{"sent:alice@example.edu", "failed:nobody@example.edu"}) {
		t.Fatalf("events %v", k)
	}
	notices := h.notices()
	if len(notices) != 1 {
		t.Fatalf("%d notices", len(notices))
	}
	n := h.store.body(notices[0].ID)
	for _, want := range []string{
		"From: MAILER-DAEMON@relaybox.test\r\n", "Subject: Undelivered mail: Scan from copier 3\r\n",
		"Message-ID: <notice." + m.ID + ".", m.ID, "<nobody@example.edu>: 550 5.1.1 no such user",
		"Last reply from the upstream relay: 550 5.1.1 no such user", "\r\nMessage-ID: <x1@lab>\r\n",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("notice lacks %q:\n%s", want, n)
		}
	}
	if strings.Contains(n, "SECRET BODY") || strings.Contains(n, "alice@example.edu>:") {
		t.Errorf("notice quotes the body or a delivered recipient:\n%s", n)
	}

	// The notice is ordinary mail: the next Tick delivers it and nothing
	// notices about it again.
	h.tick()
	if h.store.get(notices[0].ID) != nil || h.store.count() != 1 {
		t.Fatalf("notice not delivered; %d messages left", h.store.count())
	}
	_, _, _, _, _, sends := d.stats()
	if last := sends[len(sends)-1]; last.from != "" || !slices.Equal(last.rcpts, []string{"postmaster@example.edu"}) {
		t.Fatalf("notice sent as %+v", last)
	}
}

// TestSchedulerNoNoticeAboutNotices: a failing null-sender message goes
// dead silently, or notices would loop.
func TestSchedulerNoNoticeAboutNotices(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, send: func([]string) ([]RcptResult, error) {
		return nil, reply(up1, "mail", 554, "5.7.1", "rejected")
	}})
	h := newHarness(t, d, nil)
	m := h.store.add("", []string{"alice@example.edu"}, schedBody)
	h.tick()
	if got := h.store.get(m.ID); got.State != spool.StateDead || rcptStates(got) != "alice@example.edu=failed" {
		t.Fatalf("message %+v", got)
	}
	if h.store.count() != 1 {
		t.Fatalf("a notice was created about a null-sender message")
	}
}

// TestSchedulerExpiry: an upstream down longer than MaxAge dead-letters
// the message with a notice; backoff never overshoots the expiry; the
// notice is delivered once the upstream is back.
func TestSchedulerExpiry(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, dialErr: netErr(up1, "dial", "connection refused")})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.MaxAge = 2 * time.Hour })
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu", "bob@example.edu"}, schedBody)
	exp := h.clock.Now().Add(2 * time.Hour)
	ticks := 0
	for h.store.get(m.ID).State == spool.StateQueued {
		if ticks++; ticks > 20 {
			t.Fatal("never expired")
		}
		next := h.tick()
		if next.After(exp) {
			t.Fatalf("next attempt %v after expiry %v", next, exp)
		}
		if !next.IsZero() {
			h.clock.Set(next)
		}
	}
	got := h.store.get(m.ID)
	want := "expired after 2h0m0s: connection refused"
	if got.State != spool.StateDead || rcptStates(got) != "alice@example.edu=failed bob@example.edu=failed" || got.Recipients[0].Reply() != want {
		t.Fatalf("expired message %+v", got)
	}
	if o := got.Recipients[0].Outcome; !o.Expired || o.Permanent || o.Code != 0 || o.Text != want {
		t.Fatalf("expired outcome %+v", o)
	}
	ev := h.lastEvent()
	if ev.Kind != "expired" || strings.Join(ev.To, ",") != "alice@example.edu,bob@example.edu" || ev.Reply != want || ev.Upstream != up1 {
		t.Fatalf("expired event %+v", ev)
	}
	notices := h.notices()
	if len(notices) != 1 || !strings.Contains(h.store.body(notices[0].ID), "<bob@example.edu>: "+want) {
		t.Fatalf("notices %d", len(notices))
	}
	d.set(0, func(u *fakeUp) { u.dialErr = nil })
	h.clock.Add(10 * time.Minute)
	h.tick()
	if h.store.get(notices[0].ID) != nil || h.store.get(m.ID) == nil {
		t.Fatal("notice not delivered, or the dead letter was removed")
	}
}

// TestSchedulerFinishesLeftovers: messages a crash or a failed Delete left
// queued with nothing pending are finished on the next Tick, never resent.
func TestSchedulerFinishesLeftovers(t *testing.T) {
	d := newDialer(&fakeUp{name: up1})
	h := newHarness(t, d, nil)
	h.store.failDel = errors.New("disk busy")
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.tick()
	if got := h.store.get(m.ID); got == nil || rcptStates(got) != "alice@example.edu=delivered" || got.State != spool.StateQueued {
		t.Fatalf("after a failed delete: %+v", got)
	}
	h.store.mu.Lock()
	h.store.failDel = nil
	h.store.mu.Unlock()
	mixed := h.store.add("scanner@lab.example.edu", []string{"a@example.edu", "b@example.edu"}, schedBody)
	h.store.Update(mixed.ID, func(m *spool.Message) error {
		m.Recipients[0].State, m.Recipients[1].State = spool.RcptDelivered, spool.RcptFailed
		return nil
	})
	h.tick()
	if h.store.get(m.ID) != nil {
		t.Fatal("delivered leftover not deleted")
	}
	if got := h.store.get(mixed.ID); got.State != spool.StateDead {
		t.Fatalf("failed leftover: %+v", got)
	}
	// The original once, then the notice about the failed leftover (queued
	// by the sweep, so delivered in the same Tick); no leftover resent.
	_, _, _, _, _, sends := d.stats()
	if len(sends) != 2 || sends[1].from != "" || !strings.Contains(sends[1].body, "<b@example.edu>") {
		t.Fatalf("sends %+v", sends)
	}
}

// TestSchedulerClockJumps: the wall clock jumping 40 days ahead (a board
// that booted with a stale clock and met NTP) expires nothing; the message
// expires once max_age has really passed and it had an attempt after the
// jump. A clock set back a day does not keep an old message alive.
func TestSchedulerClockJumps(t *testing.T) {
	d := newDialer(&fakeUp{name: up1, dialErr: netErr(up1, "tls", "x509: certificate has expired or is not yet valid")})
	h := newHarness(t, d, func(o *SchedulerOptions) { o.MaxAge = 120 * time.Hour; o.UpstreamHold = time.Minute })
	m := h.store.add("scanner@lab.example.edu", []string{"alice@example.edu"}, schedBody)
	h.tick()

	// Four real days pass, then the clock jumps 40 days ahead.
	h.clock.Add(96 * time.Hour)
	h.tick()
	h.clock.Jump(40 * 24 * time.Hour)
	h.tick()
	if got := h.store.get(m.ID); got.State != spool.StateQueued {
		t.Fatalf("a 40-day clock jump dead-lettered the message: %+v", got)
	}
	if !strings.Contains(h.logs.String(), "system clock jumped") {
		t.Errorf("the jump was not logged:\n%s", h.logs)
	}
	// A day later in real time it is 5 days old: expired after the
	// attempt it is due, not before.
	h.clock.Add(24*time.Hour + time.Minute)
	tries := h.store.get(m.ID).Attempts
	h.tick()
	got := h.store.get(m.ID)
	if got.State != spool.StateDead || got.Attempts <= tries && got.TriedRun == 0 {
		t.Fatalf("after 5 real days: %+v", got)
	}
	if ev := h.lastEvent(); ev.Kind != "expired" || !strings.HasPrefix(ev.Reply, "expired after 5d0h: ") {
		t.Fatalf("event %+v, want expired after 5d0h (real age, not 45 days)", ev)
	}

	// Set back a day: the run clock still says 5 days.
	m2 := h.store.add("scanner@lab.example.edu", []string{"bob@example.edu"}, schedBody)
	h.tick()
	h.clock.Jump(-24 * time.Hour)
	h.tick()
	if got := h.store.get(m2.ID); got.State != spool.StateQueued {
		t.Fatalf("set back a day: %+v", got)
	}
	for i := 0; h.store.get(m2.ID).State == spool.StateQueued; i++ {
		if i > 200 {
			t.Fatalf("not expired after 5 real days with the clock set back: %+v", h.store.get(m2.ID))
		}
		h.clock.Add(time.Hour)
		h.tick()
	}
	if ev := h.lastEvent(); ev.Kind != "expired" || !strings.HasPrefix(ev.Reply, "expired after 5d0h: ") {
		t.Fatalf("event %+v", ev)
	}
}
