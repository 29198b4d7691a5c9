package smtpd

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"relaybox/internal/throttle"
)

// slots counts the open connections of all of a Server's listeners, per
// client address and in total, and decides stress mode.
//
// Stress mode starts when every slot is taken (Postfix's stress mode does
// the same when its process limit is reached): open connections get the
// short listen.stress_timeout at their next read (and silent ones at once),
// and an address already holding a quarter of the slots may not open more,
// so the slots that come free go to other devices, not back to the clients
// that held them. It ends when stressHold has passed with the slots no
// longer full.
type slots struct {
	t         Timeouts
	max       int          // all clients together
	perClient atomic.Int64 // one client address; 0 = no limit of its own (a reload may change it)
	log       *slog.Logger
	reports   *throttle.Reports
	now       func() time.Time

	stressed atomic.Bool

	mu          sync.Mutex
	active      int
	clients     map[netip.Addr]int
	open        map[*deviceConn]struct{}
	stressUntil time.Time
	stressSince time.Time
	cuts        int // connections cut by a limit during this stress period
}

// stressHold: stress mode lasts this long after the slots were last full.
const stressHold = time.Minute

// admission is slots.admit's answer.
type admission int

const (
	admitted admission = iota
	refusedFull
	refusedClient // the address is at its own limit
	refusedShare  // stress mode: the address holds its share already
)

func (s *slots) admit(ip netip.Addr) (admission, int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateStress(now)
	open := s.clients[ip]
	switch {
	case s.active >= s.max:
		s.startStress(now)
		return refusedFull, open
	case s.perClient.Load() > 0 && open >= int(s.perClient.Load()):
		return refusedClient, open
	case s.stressed.Load() && open >= max(1, s.max/4):
		return refusedShare, open
	}
	if s.clients == nil {
		s.clients = map[netip.Addr]int{}
		s.open = map[*deviceConn]struct{}{}
	}
	s.active++
	s.clients[ip]++
	if s.active >= s.max {
		s.startStress(now)
	}
	return admitted, open + 1
}

// track adds c to the open connections that stress mode may hurry.
func (s *slots) track(c *deviceConn) {
	s.mu.Lock()
	s.open[c] = struct{}{}
	s.mu.Unlock()
}

func (s *slots) release(c *deviceConn) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
	s.active--
	if s.clients[c.client]--; s.clients[c.client] <= 0 {
		delete(s.clients, c.client)
	}
	s.updateStress(now)
}

// startStress enters (or extends) stress mode. Callers hold mu.
func (s *slots) startStress(now time.Time) {
	s.stressUntil = now.Add(stressHold)
	if s.stressed.Load() {
		return
	}
	s.stressed.Store(true)
	s.stressSince, s.cuts = now, 0
	s.log.Warn("all connection slots taken: stress mode, shorter timeouts", "open", s.active, "max", s.max,
		"timeout", s.t.Stress.String(),
		"hint", "slow or stuck clients are cut sooner; raise listen.max_connections if these are real devices")
	// Silent connections would keep their long deadline until they next
	// send a byte: hurry them now. Their next read sets the stress limits.
	d := time.Now().Add(s.t.Stress)
	for c := range s.open {
		_ = c.Conn.SetReadDeadline(d)
	}
}

// updateStress leaves stress mode once the hold has passed with slots
// free. Callers hold mu.
func (s *slots) updateStress(now time.Time) {
	if !s.stressed.Load() || now.Before(s.stressUntil) || s.active >= s.max {
		return
	}
	s.stressed.Store(false)
	s.log.Info("stress mode over", "lasted", now.Sub(s.stressSince).Round(time.Second).String(),
		"cut", s.cuts, "open", s.active, "max", s.max)
}

// cut logs a connection closed by one of its time limits (rate-limited per
// client and limit).
func (s *slots) cut(c *deviceConn, k limitKind) {
	s.mu.Lock()
	stressed := s.stressed.Load()
	if stressed {
		s.cuts++
	}
	s.mu.Unlock()
	if r := s.reports.Note("cut:"+k.String(), c.client); r.Log {
		s.log.Info("closing slow connection", "client", c.client.String(), "limit", k.String(),
			"stress", stressed, "bytes", c.clock.bytes, "not_logged", r.Suppressed,
			"lasted", time.Since(c.clock.start).Round(time.Second).String())
	}
}
