package smtpd

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"relaybox/internal/clocktest"
)

func TestRateLimiter(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.5")
	b := netip.MustParseAddr("10.0.0.6")
	type step struct {
		after time.Duration
		ip    netip.Addr
		want  bool
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refused", 1, 3, []step{{0, a, true}, {0, a, true}, {0, a, true}, {0, a, false}}},
		{"refills at rate", 2, 1, []step{{0, a, true}, {0, a, false}, {400 * time.Millisecond, a, false},
			{100 * time.Millisecond, a, true}, {0, a, false}}},
		{"refill capped at burst", 10, 2, []step{{0, a, true}, {0, a, true}, {time.Hour, a, true},
			{0, a, true}, {0, a, false}}},
		{"clients apart", 1, 1, []step{{0, a, true}, {0, a, false}, {0, b, true}, {0, b, false}}},
		{"no limit", 0, 0, []step{{0, a, true}, {0, a, true}, {0, a, true}}},
		{"burst 0 means 1", 1, 0, []step{{0, a, true}, {0, a, false}}},
		{"design default: 50 at once, then 50 a second", 50, 50, append(
			slices.Repeat([]step{{0, a, true}}, 50),
			step{0, a, false}, step{time.Second, a, true})},
		{"clock stepping back gives nothing", 1, 1, []step{{0, a, true}, {-time.Hour, a, false},
			{time.Hour, a, false}, {time.Second, a, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			r := newRateLimiter(tt.rate, tt.burst, clk.Now)
			for i, s := range tt.steps {
				clk.Add(s.after)
				if got := r.allow(s.ip).ok; got != s.want {
					t.Fatalf("step %d (%s after %v): allowed = %v, want %v", i, s.ip, s.after, got, s.want)
				}
			}
		})
	}
}

// The log reports the first refusal of a flood once, and the count when the
// client is back under its rate.
func TestRateLimiterReportsFloods(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	r := newRateLimiter(1, 1, clk.Now)
	a := netip.MustParseAddr("192.0.2.1")
	r.allow(a)
	if d := r.allow(a); d.ok || !d.firstRefusal {
		t.Fatalf("first refusal: %+v", d)
	}
	if d := r.allow(a); d.ok || d.firstRefusal {
		t.Fatalf("second refusal: %+v", d)
	}
	clk.Add(time.Second)
	if d := r.allow(a); !d.ok || d.refusedTotal != 2 {
		t.Fatalf("back under the rate: %+v, want refusedTotal 2", d)
	}
}

// Idle clients are forgotten once the map is large, so a scan of the LAN
// cannot grow it without bound.
func TestRateLimiterSweepsIdleClients(t *testing.T) {
	clk := clocktest.New(time.Unix(1e9, 0))
	r := newRateLimiter(100, 1, clk.Now)
	for i := range minSweep {
		r.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	clk.Add(time.Second)
	r.allow(netip.MustParseAddr("192.0.2.1"))
	if n := len(r.buckets.m); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}
