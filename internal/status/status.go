// Package status is relaybox's one health model. Every subsystem reports
// into it (the scheduler's upstream results and message events, the
// listener's accepts, spool errors) and every reader (LED, serial console,
// admin API, /metrics) reads a Snapshot of it, so no reader computes health
// on its own and they can never disagree.
//
// The overall state is derived when a Snapshot is taken, from the reports
// and the queue figures at that moment, so time-based rules ("no upstream
// took mail for 30m") need no timer.
package status

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"relaybox/internal/text"
)

// State is the overall health of the relay. The LED (internal/led) shows
// the same values, so they are declared once, here.
type State string

const (
	Starting State = "starting"
	OK       State = "ok"
	Degraded State = "degraded"
	Failing  State = "failing"
	Stopping State = "stopping"
)

// States lists every state in a stable order (for /metrics, which writes a
// 0 or 1 sample for each).
func States() []State { return []State{Starting, OK, Degraded, Failing, Stopping} }

// Upstream is what the model knows about one upstream relay.
type Upstream struct {
	Name                string    `json:"name"`
	Up                  bool      `json:"up"` // false while its last result was a failure
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastFailure         time.Time `json:"last_failure,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	FailingSince        time.Time `json:"failing_since,omitzero"` // first failure of the current streak
}

// QueueStats are the spool figures, supplied by Options.Queue.
type QueueStats struct {
	Messages         int       `json:"messages"` // queued, not dead (held included)
	Bytes            int64     `json:"bytes"`
	Held             int       `json:"held"` // of Messages, repeats held until an admin releases them
	HeldBytes        int64     `json:"held_bytes"`
	Oldest           time.Time `json:"oldest,omitzero"` // Received of the oldest queued message
	OldestAgeSeconds float64   `json:"oldest_age_seconds"`
	Dead             int       `json:"dead"`
	DeadBytes        int64     `json:"dead_bytes"`
	Quota            int64     `json:"quota"` // queue.max_size; 0 = unlimited
}

// Counters count message events since the daemon started.
type Counters struct {
	Accepted  uint64 `json:"accepted"`
	Delivered uint64 `json:"delivered"`
	Deferred  uint64 `json:"deferred"`
	Failed    uint64 `json:"failed"`
	Expired   uint64 `json:"expired"`
}

// Snapshot is the model at one moment.
type Snapshot struct {
	State      State      `json:"state"`
	Reason     string     `json:"reason,omitempty"` // a sentence for a technician
	Since      time.Time  `json:"since"`            // when State was first seen
	Upstreams  []Upstream `json:"upstreams"`
	NoUpstream bool       `json:"no_upstream"` // none configured: mail is held
	Queue      QueueStats `json:"queue"`
	Counters   Counters   `json:"counters"`
	Warnings   []string   `json:"warnings,omitempty"` // standing configuration warnings
	// Clock is whether the system clock is synchronised: synchronised,
	// not synchronised, or unknown.
	Clock string `json:"clock"`
	// ConfigError is why the last config reload failed ("" after a good
	// one); the relay keeps running on the config it had.
	ConfigError string    `json:"config_error,omitempty"`
	Version     string    `json:"version"`
	Hostname    string    `json:"hostname,omitempty"`
	Started     time.Time `json:"started,omitzero"`
	Now         time.Time `json:"now"` // the daemon's clock, so readers compute ages like it does
}

// Options configure New. Zero values take the documented defaults.
type Options struct {
	Now       func() time.Time  // default time.Now
	Upstreams []string          // configured upstream names, in order; empty = mail is held
	Queue     func() QueueStats // spool figures; nil = empty queue
	Version   string
	Hostname  string // the name the relay greets with (hostname in the config)
	// Warnings are standing configuration warnings (an insecure upstream,
	// no recipient domains) that every reader should show.
	Warnings []string
	// DegradedAfter consecutive failures of one upstream make the relay
	// degraded (default 1).
	DegradedAfter int
	// FailingAfter: mail queued and no upstream success for this long, or
	// mail held this long with no upstream configured, is failing
	// (default 30m).
	FailingAfter time.Duration
	RingSize     int // recent log events kept, and as many message events (default 300)
	// DeferredRate: when at least this share of the delivery outcomes
	// (sent or deferred) in the last DeferredWindow were deferred, and
	// there were DeferredMin of them or more, the relay is degraded. An
	// upstream that answers 4xx to one message in ten never fails long
	// enough to count as down, yet delays mail. Default 0.05, 15m, 20.
	DeferredRate   float64
	DeferredWindow time.Duration
	DeferredMin    int
	// ClockSynced says whether the system clock is synchronised (NTP);
	// known false: cannot tell. Nil: not asked (KernelClockSynced asks
	// the kernel).
	ClockSynced func() (synced, known bool)
}

// Clock states as Snapshot.Clock says them.
const (
	ClockSynchronised   = "synchronised"
	ClockUnsynchronised = "not synchronised"
	ClockUnknown        = "unknown"
)

// quotaFailingPercent is how full the spool may get before the relay is
// failing: beyond it devices are about to get 452 for every message.
const quotaFailingPercent = 95

// Model is the health model. Its methods are safe for concurrent use.
type Model struct {
	opt Options

	mu        sync.Mutex
	started   bool
	stopping  bool
	startedAt time.Time
	spoolErr  string
	spoolAt   time.Time
	configErr string
	ups       []Upstream
	counters  Counters
	state     State
	since     time.Time
	ring      ring // recent log events other than message events
	msgRing   ring // recent message events (accepted, sent, deferred, ...)
	eventSeq  uint64
	// recent counts sent and deferred outcomes per minute over
	// DeferredWindow, for the deferred-rate rule.
	recent       []outcomeBucket
	lastDeferred string // reply of the latest deferral
}

// outcomeBucket counts the delivery outcomes of one minute.
type outcomeBucket struct {
	minute         int64 // Unix minute
	sent, deferred int
}

// New builds a Model in the starting state.
func New(opt Options) *Model {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.DegradedAfter <= 0 {
		opt.DegradedAfter = 1
	}
	if opt.FailingAfter <= 0 {
		opt.FailingAfter = 30 * time.Minute
	}
	if opt.RingSize <= 0 {
		opt.RingSize = 300
	}
	if opt.DeferredRate <= 0 {
		opt.DeferredRate = 0.05
	}
	if opt.DeferredWindow < time.Minute {
		opt.DeferredWindow = 15 * time.Minute
	}
	if opt.DeferredMin <= 0 {
		opt.DeferredMin = 20
	}
	opt.Warnings = append([]string(nil), opt.Warnings...)
	m := &Model{opt: opt, state: Starting, since: opt.Now(), ring: newRing(opt.RingSize), msgRing: newRing(opt.RingSize),
		recent: make([]outcomeBucket, int(opt.DeferredWindow/time.Minute))}
	for _, name := range opt.Upstreams {
		m.ups = append(m.ups, Upstream{Name: name, Up: true})
	}
	return m
}

// Started marks the daemon as up: listeners open, delivery running.
func (m *Model) Started() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = true
	m.startedAt = m.opt.Now()
}

// Stopping marks the daemon as shutting down; the state stays stopping.
func (m *Model) Stopping() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopping = true
}

// Accepted counts one message committed to the spool.
func (m *Model) Accepted() {
	m.mu.Lock()
	m.counters.Accepted++
	m.mu.Unlock()
}

// EventKind names a message event the scheduler reports: the "event"
// attribute of its log line and what Delivery counts.
type EventKind string

const (
	EventSent     EventKind = "sent"
	EventDeferred EventKind = "deferred" // a temporary failure; tried again later
	EventFailed   EventKind = "failed"   // refused for good; dead-lettered when none is left pending
	EventExpired  EventKind = "expired"  // past queue.max_age; dead-lettered
)

// Delivery counts one message event of the scheduler, with the upstream's
// reply. Other kinds are ignored.
func (m *Model) Delivery(kind EventKind, reply string) {
	now := m.opt.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch kind {
	case EventSent:
		m.counters.Delivered++
		m.bucket(now).sent++
	case EventDeferred:
		m.counters.Deferred++
		m.bucket(now).deferred++
		m.lastDeferred = text.OneLine(reply)
	case EventFailed:
		m.counters.Failed++
	case EventExpired:
		m.counters.Expired++
	}
}

// bucket is the outcome count of now's minute; m.mu is held.
func (m *Model) bucket(now time.Time) *outcomeBucket {
	minute := now.Unix() / 60
	b := &m.recent[int(minute%int64(len(m.recent)))]
	if b.minute != minute {
		*b = outcomeBucket{minute: minute}
	}
	return b
}

// recentOutcomes sums the buckets of the last DeferredWindow; m.mu is held.
func (m *Model) recentOutcomes(now time.Time) (sent, deferred int) {
	minute := now.Unix() / 60
	for _, b := range m.recent {
		if b.minute <= minute && minute-b.minute < int64(len(m.recent)) {
			sent += b.sent
			deferred += b.deferred
		}
	}
	return sent, deferred
}

// UpstreamResult records the outcome of using upstream name: nil means it
// worked (even if it refused a recipient), an error means it could not be
// used. An unknown name is added, so the model never drops a report.
func (m *Model) UpstreamResult(name string, err error) {
	now := m.opt.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.upstream(name)
	if err == nil {
		u.Up, u.LastSuccess, u.ConsecutiveFailures, u.FailingSince = true, now, 0, time.Time{}
		return
	}
	if u.ConsecutiveFailures == 0 {
		u.FailingSince = now
	}
	u.Up, u.LastFailure, u.LastError = false, now, errText(err)
	u.ConsecutiveFailures++
}

func (m *Model) upstream(name string) *Upstream {
	for i := range m.ups {
		if m.ups[i].Name == name {
			return &m.ups[i]
		}
	}
	m.ups = append(m.ups, Upstream{Name: name, Up: true})
	return &m.ups[len(m.ups)-1]
}

// errText prefers the bare SMTP reply ("421 4.7.0 try later") when the
// error offers one (deliver.Error does), since the upstream's name is
// shown beside it anyway.
func errText(err error) string {
	var r interface{ Reply() string }
	if errors.As(err, &r) {
		if s := r.Reply(); s != "" {
			return text.OneLine(s)
		}
	}
	return text.OneLine(err.Error())
}

// SpoolError makes the relay failing until SpoolOK: mail cannot be kept
// safe, so devices are being refused.
func (m *Model) SpoolError(err error) {
	if err == nil {
		m.SpoolOK()
		return
	}
	now := m.opt.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spoolErr == "" {
		m.spoolAt = now
	}
	m.spoolErr = text.OneLine(err.Error())
}

// SpoolOK clears a spool error after a successful spool write.
func (m *Model) SpoolOK() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spoolErr, m.spoolAt = "", time.Time{}
}

// Reconfigured takes a reloaded config's upstream list and warnings. An
// upstream still listed keeps what the model knows of it; one no longer
// listed is forgotten. It clears a previous reload error.
func (m *Model) Reconfigured(upstreams, warnings []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ups []Upstream
	for _, name := range upstreams {
		ups = append(ups, *m.upstream(name))
	}
	m.ups = ups
	m.opt.Upstreams = append([]string(nil), upstreams...)
	m.opt.Warnings = append([]string(nil), warnings...)
	m.configErr = ""
}

// ConfigError records why a config reload failed; readers show it until a
// reload succeeds.
func (m *Model) ConfigError(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.configErr = text.OneLine(err.Error())
}

// Snapshot evaluates the state now and returns a copy of the model.
func (m *Model) Snapshot() Snapshot {
	var q QueueStats
	if m.opt.Queue != nil {
		// Outside the lock: the queue function takes the spool's own lock.
		q = m.opt.Queue()
	}
	now := m.opt.Now()
	if !q.Oldest.IsZero() {
		q.OldestAgeSeconds = max(now.Sub(q.Oldest).Seconds(), 0)
	} else {
		q.OldestAgeSeconds = 0
	}
	clock := ClockUnknown
	if m.opt.ClockSynced != nil {
		switch synced, known := m.opt.ClockSynced(); {
		case known && synced:
			clock = ClockSynchronised
		case known:
			clock = ClockUnsynchronised
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	state, reason := m.evaluate(now, q, clock)
	if state != m.state {
		m.state, m.since = state, now
	}
	return Snapshot{
		State:      state,
		Reason:     reason,
		Since:      m.since,
		Upstreams:  append([]Upstream{}, m.ups...),
		NoUpstream: len(m.opt.Upstreams) == 0,
		Queue:      q,
		Counters:   m.counters,
		Warnings:   append([]string(nil), m.opt.Warnings...),
		Clock:      clock,

		ConfigError: m.configErr,
		Version:     m.opt.Version,
		Hostname:    m.opt.Hostname,
		Started:     m.startedAt,
		Now:         now,
	}
}

// evaluate applies the state rules; m.mu is held. When several causes
// apply, the reason names each, worst first.
func (m *Model) evaluate(now time.Time, q QueueStats, clock string) (State, string) {
	switch {
	case m.stopping:
		return Stopping, "shutting down"
	case !m.started:
		return Starting, "starting up"
	}
	var failing, degraded []string
	if m.spoolErr != "" {
		failing = append(failing, fmt.Sprintf("spool error for %s: %s; new mail is refused with 451 (check the disk holding data_dir)",
			FormatDuration(now.Sub(m.spoolAt)), m.spoolErr))
	}
	if used := q.Bytes + q.DeadBytes; q.Quota > 0 && used*100 >= q.Quota*quotaFailingPercent {
		failing = append(failing, fmt.Sprintf("spool %d%% full (%s of %s): new mail is refused with 452 at the limit; delete dead letters or get the upstream working",
			used*100/q.Quota, FormatBytes(used), FormatBytes(q.Quota)))
	}
	noUpstream := len(m.opt.Upstreams) == 0
	if q.Messages > 0 {
		age := now.Sub(q.Oldest)
		switch {
		case noUpstream && !q.Oldest.IsZero() && age >= m.opt.FailingAfter:
			failing = append(failing, fmt.Sprintf("no upstream configured: %s held, the oldest for %s; add an [[upstream]] to the config",
				Plural(q.Messages, "message"), FormatDuration(age)))
		case noUpstream:
			degraded = append(degraded, fmt.Sprintf("no upstream configured: %s held until one is added to the config",
				Plural(q.Messages, "message")))
		default:
			// Mail has been waiting at least this long with nothing taken
			// upstream: counting from the oldest message (or the start)
			// keeps a quiet week without mail from looking like an outage.
			ref := m.startedAt
			if q.Oldest.After(ref) {
				ref = q.Oldest
			}
			for _, u := range m.ups {
				if u.LastSuccess.After(ref) {
					ref = u.LastSuccess
				}
			}
			if d := now.Sub(ref); d >= m.opt.FailingAfter {
				failing = append(failing, fmt.Sprintf("no upstream has taken mail for %s while %s wait%s",
					FormatDuration(d), Plural(q.Messages, "message"), m.lastErrorClause()))
			}
		}
	}
	for _, u := range m.ups {
		if u.ConsecutiveFailures >= m.opt.DegradedAfter {
			why := fmt.Sprintf("upstream %s failing for %s: %s", u.Name, FormatDuration(now.Sub(u.FailingSince)), u.LastError)
			if clock == ClockUnsynchronised && strings.Contains(u.LastError, "certificate") {
				why += " (the system clock is not synchronised: a wrong date fails certificate checks; check NTP)"
			}
			degraded = append(degraded, why)
		}
	}
	if sent, deferred := m.recentOutcomes(now); sent+deferred >= m.opt.DeferredMin &&
		float64(deferred) >= m.opt.DeferredRate*float64(sent+deferred) {
		degraded = append(degraded, fmt.Sprintf("%d of %d deliveries in the last %s deferred (%d%%, threshold %d%%); last reply: %s",
			deferred, sent+deferred, FormatDuration(m.opt.DeferredWindow), deferred*100/(sent+deferred),
			int(m.opt.DeferredRate*100+0.5), m.lastDeferred))
	}
	switch {
	case len(failing) > 0:
		return Failing, strings.Join(append(failing, degraded...), "; ")
	case len(degraded) > 0:
		return Degraded, strings.Join(degraded, "; ")
	case noUpstream:
		return OK, "no upstream configured: mail will be held"
	}
	return OK, ""
}

// lastErrorClause names the most recent upstream failure, if any.
func (m *Model) lastErrorClause() string {
	var last *Upstream
	for i := range m.ups {
		u := &m.ups[i]
		if u.LastError != "" && (last == nil || u.LastFailure.After(last.LastFailure)) {
			last = u
		}
	}
	if last == nil {
		return ""
	}
	return fmt.Sprintf("; last error from %s: %s", last.Name, last.LastError)
}

// FormatDuration renders a duration the way a technician says it: "45s",
// "12m", "3h5m", "2d4h".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, mins := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if mins == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, mins)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// FormatBytes renders a byte count in binary units, as queue.max_size is
// written: "512 B", "12.3 KiB", "1.0 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
