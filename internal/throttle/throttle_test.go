package throttle

import (
	"net/netip"
	"testing"
	"time"

	"relaybox/internal/clocktest"
)

var (
	attacker = netip.MustParseAddr("10.0.0.66")
	device   = netip.MustParseAddr("10.0.0.7")
)

// guess is one wrong password from ip, as a client sees it: it counts when
// the guard let the password be evaluated.
func guess(g *Guard, ip netip.Addr) bool {
	if !g.Allow(ip).OK {
		return false
	}
	g.Failed(ip)
	return true
}

// The target: from one address, at most 30 passwords evaluated in
// the first 12 s and about 2 a second at most after that, however fast it
// tries (here every 10 ms, as 40 parallel connections would).
func TestGuessesPerAddressAreBounded(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now})
	step := 10 * time.Millisecond
	evaluated := 0
	for el := time.Duration(0); el < 12*time.Second; el += step {
		if guess(g, attacker) {
			evaluated++
		}
		clk.Add(step)
	}
	if evaluated > 30 {
		t.Errorf("%d passwords evaluated in the first 12 s, want at most 30", evaluated)
	}
	if evaluated < 5 {
		t.Errorf("only %d passwords evaluated in 12 s; a device with a typo needs a few tries", evaluated)
	}
	later := 0
	const span = 120 * time.Second
	for el := time.Duration(0); el < span; el += step {
		if guess(g, attacker) {
			later++
		}
		clk.Add(step)
	}
	if rate := float64(later) / span.Seconds(); rate > 2 {
		t.Errorf("%.2f guesses a second after the first 12 s, want at most 2", rate)
	}
	// Another address's device is not touched by the attacker's refusals.
	if v := g.Allow(device); !v.OK {
		t.Fatalf("device on another address refused: %+v", v)
	}
	g.Succeeded(device)
}

func TestRefusalReportedOncePerCooldown(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now, Burst: 3, Refill: time.Minute, Cooldown: 10 * time.Second})
	for range 3 {
		if !guess(g, attacker) {
			t.Fatal("refused within the burst")
		}
	}
	reports, refused := 0, 0
	var first Verdict
	for range 50 {
		v := g.Allow(attacker)
		if v.OK {
			t.Fatal("allowed after the budget was spent")
		}
		if v.Report {
			reports++
			first = v
		}
		refused++
	}
	if reports != 1 || first.Failures != 3 || first.RetryAfter != 10*time.Second {
		t.Fatalf("reports = %d, first = %+v; want one report counting 3 failures, retry after 10s", reports, first)
	}
	clk.Add(11 * time.Second)
	v := g.Allow(attacker)
	if v.OK || !v.Report || v.Refused != 50 {
		t.Fatalf("after the cooldown, with no check back yet: %+v; want a new report counting the 49+1 refusals", v)
	}
}

func TestSuccessGivesTheCheckBackAndNoDelay(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now, Burst: 3})
	// A busy device authenticating on every connection never runs out.
	for range 100 {
		if !g.Allow(device).OK {
			t.Fatal("a device whose password is right was refused")
		}
		g.Succeeded(device)
	}
	if d := g.Failed(device); d != 0 {
		t.Fatalf("first failure delayed %v, want none", d)
	}
}

func TestDelayGrowsWithFailures(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now, Burst: 100})
	var got []time.Duration
	for range 9 {
		g.Allow(attacker)
		got = append(got, g.Failed(attacker))
	}
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	// A quiet address starts again without delay.
	clk.Add(time.Hour)
	g.Allow(attacker)
	if d := g.Failed(attacker); d != 0 {
		t.Fatalf("after an hour's quiet the first failure is delayed %v", d)
	}
}

// Guessing spread over many addresses spends the budget of all together;
// then addresses that fail are refused, but a device whose password is
// right still gets in.
func TestTotalBudgetSparesDevicesThatSucceed(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now, TotalBurst: 20, TotalRefill: time.Second})
	evaluated := 0
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(1 + i%250)})
		for range 2 {
			if guess(g, ip) {
				evaluated++
			}
		}
	}
	if evaluated > 220 {
		t.Fatalf("%d guesses evaluated from 200 addresses at once, want the total budget to stop most second tries", evaluated)
	}
	if !g.Allow(device).OK {
		t.Fatal("device refused because others spent the total budget")
	}
	g.Succeeded(device)
}

func TestManyAddressesDoNotGrowWithoutBound(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g := New(Options{Now: clk.Now})
	for i := range 100000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.Allow(ip)
		g.Succeeded(ip)
		if i%1000 == 0 {
			clk.Add(time.Minute)
		}
	}
	if n := len(g.clients); n > 4*minSweep {
		t.Fatalf("%d addresses tracked after 100000 fresh ones, want a bounded map", n)
	}
}

// The target: at most 50 log lines for 5,000 refusals of one
// address, however they spread over a few minutes.
func TestReportsOncePerIntervalWithCount(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := NewReports(time.Minute, clk.Now)
	lines, counted := 0, 0
	for range 5000 {
		rep := r.Note("outside", attacker)
		if rep.Log {
			lines++
			counted += 1 + rep.Suppressed
		}
		clk.Add(40 * time.Millisecond) // 5,000 over 200 s
	}
	if lines > 50 || lines < 2 {
		t.Fatalf("%d lines for 5,000 refusals, want a handful", lines)
	}
	// The last interval's refusals are counted by the next line.
	clk.Add(time.Minute)
	rep := r.Note("outside", attacker)
	if counted+rep.Suppressed != 5000 {
		t.Fatalf("lines account for %d refusals, want all 5000", counted+rep.Suppressed)
	}
	if !r.Note("outside", device).Log || !r.Note("full", attacker).Log {
		t.Fatal("another client or another kind was suppressed")
	}
}
