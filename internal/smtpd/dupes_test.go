package smtpd

import (
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"relaybox/internal/clocktest"
)

func TestDupTracker(t *testing.T) {
	type step struct {
		after time.Duration
		key   byte
		hold  bool
		copy  int
	}
	tests := []struct {
		name   string
		max    int
		window time.Duration
		steps  []step
	}{
		{"past max within window", 2, 10 * time.Minute, []step{
			{0, 1, false, 1}, {time.Minute, 1, false, 2}, {time.Minute, 1, true, 3}, {time.Minute, 1, true, 4}}},
		{"other content is counted apart", 1, 10 * time.Minute, []step{
			{0, 1, false, 1}, {0, 2, false, 1}, {0, 1, true, 2}, {0, 2, true, 2}}},
		{"sliding window: old copies stop counting", 2, 10 * time.Minute, []step{
			{0, 1, false, 1}, {9 * time.Minute, 1, false, 2},
			// The first copy is now 10 minutes old: one copy in the window.
			{time.Minute, 1, false, 3},
			{time.Second, 1, true, 4}}},
		{"held copies keep the device held", 1, time.Minute, []step{
			{0, 1, false, 1}, {50 * time.Second, 1, true, 2}, {50 * time.Second, 1, true, 3},
			{50 * time.Second, 1, true, 4}}},
		{"a quiet window starts a new run", 1, time.Minute, []step{
			{0, 1, false, 1}, {time.Second, 1, true, 2}, {time.Minute, 1, false, 1}}},
		{"design default: 5 in 10 minutes", 5, 10 * time.Minute, []step{
			{0, 1, false, 1}, {0, 1, false, 2}, {0, 1, false, 3}, {0, 1, false, 4}, {0, 1, false, 5},
			{0, 1, true, 6}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			d := newDupTracker(tt.max, tt.window, clk.Now)
			for i, s := range tt.steps {
				clk.Add(s.after)
				v := d.record(dupKey{s.key})
				if v.hold != s.hold || v.copy != s.copy {
					t.Fatalf("step %d: hold %v copy %d, want hold %v copy %d", i, v.hold, v.copy, s.hold, s.copy)
				}
			}
		})
	}
}

// Contents with no copy left in the window are forgotten once the map is
// large, so a device sending many distinct messages cannot grow it without
// bound; a content still in its window is kept.
func TestDupTrackerSweepsQuietContent(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	d := newDupTracker(1, time.Minute, clk.Now)
	for i := range minSweep {
		d.record(dupKey{byte(i >> 8), byte(i)})
	}
	clk.Add(30 * time.Second)
	d.record(dupKey{0, 0}) // a second copy: this content stays in its window
	clk.Add(40 * time.Second)
	d.record(dupKey{0xff}) // new, and the map is full: the quiet ones go first
	if n := len(d.seen.m); n != 2 {
		t.Fatalf("%d contents after the sweep, want 2", n)
	}
	if v := d.record(dupKey{0, 0}); v.copy != 3 || !v.hold {
		t.Errorf("the content kept through the sweep: copy %d hold %v, want 3 and held", v.copy, v.hold)
	}
}

func TestDupTrackerOff(t *testing.T) {
	for _, d := range []*dupTracker{newDupTracker(0, time.Minute, time.Now), newDupTracker(5, 0, time.Now)} {
		if d != nil {
			t.Fatalf("tracker with a zero limit = %+v, want nil (off)", d)
		}
		for range 10 {
			if v := d.record(dupKey{1}); v.hold {
				t.Fatal("a switched-off tracker held a message")
			}
		}
	}
}

func TestDupKeyOf(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	body := sha256.Sum256([]byte("page 1"))
	base := dupKeyOf(ip, "", "a@x.test", []string{"b@x.test", "c@x.test"}, body)
	if k := dupKeyOf(ip, "", "a@x.test", []string{"c@x.test", "b@x.test"}, body); k != base {
		t.Error("recipient order changed the key")
	}
	for name, k := range map[string]dupKey{
		"client":     dupKeyOf(netip.MustParseAddr("10.0.0.6"), "", "a@x.test", []string{"b@x.test", "c@x.test"}, body),
		"sender":     dupKeyOf(ip, "", "z@x.test", []string{"b@x.test", "c@x.test"}, body),
		"recipients": dupKeyOf(ip, "", "a@x.test", []string{"b@x.test"}, body),
		"body":       dupKeyOf(ip, "", "a@x.test", []string{"b@x.test", "c@x.test"}, sha256.Sum256([]byte("page 2"))),
		"run-on":     dupKeyOf(ip, "", "a@x.testb@x.test", []string{"c@x.test"}, body),
	} {
		if k == base {
			t.Errorf("a different %s gave the same key", name)
		}
	}
}
