package throttle

import (
	"net/netip"
	"sync"
	"time"
)

// Reports rate-limits repeated log lines per client and kind: the first
// one of an interval is logged, the rest are counted, and the first one of
// a later interval is logged with that count. A client refused 10,000
// times a second then costs one line an interval, not 10,000.
type Reports struct {
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	seen    map[reportKey]*reportState
	sweepAt int
}

type reportKey struct {
	kind string
	ip   netip.Addr
}

type reportState struct {
	last       time.Time // logged then
	suppressed int
}

// NewReports logs each client's lines of one kind at most once per every
// (default a minute). now defaults to time.Now.
func NewReports(every time.Duration, now func() time.Time) *Reports {
	if every <= 0 {
		every = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Reports{every: every, now: now, seen: map[reportKey]*reportState{}, sweepAt: minSweep}
}

// Report is Note's answer.
type Report struct {
	Log        bool // write this line
	Suppressed int  // lines of this kind not written since the last one
}

// Note records one occurrence of kind for ip and says whether to log it.
// A nil Reports logs everything.
func (r *Reports) Note(kind string, ip netip.Addr) Report {
	if r == nil {
		return Report{Log: true}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	k := reportKey{kind, ip}
	st := r.seen[k]
	if st == nil {
		if len(r.seen) >= r.sweepAt {
			for k, s := range r.seen {
				if now.Sub(s.last) >= r.every && s.suppressed == 0 {
					delete(r.seen, k)
				}
			}
			r.sweepAt = max(minSweep, 2*len(r.seen))
		}
		r.seen[k] = &reportState{last: now}
		return Report{Log: true}
	}
	if now.Sub(st.last) < r.every {
		st.suppressed++
		return Report{}
	}
	rep := Report{Log: true, Suppressed: st.suppressed}
	st.last, st.suppressed = now, 0
	return rep
}
