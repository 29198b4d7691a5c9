package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// Store is the part of the spool the scheduler uses. *spool.Spool provides
// all of it but Enqueue (its Create returns a concrete *spool.Writer a fake
// cannot make); SpoolStore adds that.
type Store interface {
	// Due returns queued messages with a pending recipient and
	// NextAttempt <= now, oldest first, at most limit.
	Due(now time.Time, limit int) ([]*spool.Message, error)
	// NextDue is the earliest NextAttempt of a queued message.
	NextDue() (time.Time, bool)
	// Waiting lists the queued messages with a pending recipient, from
	// the index (no record read); Finished returns the queued ones with
	// none left.
	Waiting() []spool.Waiting
	Finished() ([]*spool.Message, error)
	Get(id string) (*spool.Message, error)
	// Run is the spool's run clock (spool.Spool.Run): message ages are
	// taken from it, never from the wall clock alone.
	Run() time.Duration
	// Update runs fn on a fresh copy of the message in one durable
	// transaction; an error from fn aborts it and is returned. The store
	// bounds History (spool.Options.HistoryLimit).
	Update(id string, fn func(*spool.Message) error) (*spool.Message, error)
	Delete(id string) error
	// DeleteDelivered is Delete for a message the upstream has taken: the
	// store may hold it back briefly to share a commit that happens
	// anyway. It returns once the delete is durable.
	DeleteDelivered(id string) error
	// OpenBody reads the body of m, a record fresh from Update.
	OpenBody(m *spool.Message) (io.ReadCloser, error)
	Headers(id string, max int) ([]byte, error)
	// Enqueue spools a new message (a failure notice) and commits it.
	Enqueue(env spool.Envelope, body []byte) (*spool.Message, error)
}

// SpoolStore adapts the real spool to Store.
func SpoolStore(sp *spool.Spool) Store { return spoolStore{sp} }

type spoolStore struct{ *spool.Spool }

// OpenBody implements Store without reading the record again.
func (s spoolStore) OpenBody(m *spool.Message) (io.ReadCloser, error) { return s.BodyOf(m), nil }

// Enqueue implements Store: a notice goes through the same writer, quota
// and fsync as device mail.
func (s spoolStore) Enqueue(env spool.Envelope, body []byte) (*spool.Message, error) {
	w, err := s.Create(env)
	if err != nil {
		return nil, fmt.Errorf("deliver: queue notice: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		w.Abort()
		return nil, fmt.Errorf("deliver: queue notice: %w", err)
	}
	m, err := w.Commit()
	if err != nil {
		return nil, fmt.Errorf("deliver: queue notice: %w", err)
	}
	return m, nil
}

// SchedulerOptions configure NewScheduler. Zero durations take defaults.
type SchedulerOptions struct {
	Store Store
	// Dialer may be nil or have Count() == 0: no upstream is configured
	// and mail is held (no attempt recorded, no backoff).
	Dialer       Dialer
	Connections  int           // max concurrent upstream sessions (default 2)
	MinBackoff   time.Duration // default 1m
	MaxBackoff   time.Duration // default 1h
	IdleClose    time.Duration // close a reused session idle this long (default 30s)
	UpstreamHold time.Duration // skip an upstream that failed to connect this long (default 1m)
	MaxAge       time.Duration // queue.max_age (default 120h)
	Notify       string        // failure notices go here; "" = none
	Hostname     string        // for notices; default: OS host name
	Now          func() time.Time
	Jitter       func() float64 // in [0,1); default math/rand/v2
	Logger       *slog.Logger
	// OnEvent and OnUpstream may be nil; they are called from the
	// delivery goroutines, so they must be safe for concurrent use.
	OnEvent    func(Event)
	OnUpstream func(name string, err error) // nil err = the upstream worked
}

// Scheduler delivers due messages from the spool to the upstream relays.
type Scheduler struct {
	opt     SchedulerOptions
	backoff Backoff
	log     *slog.Logger
	kick    chan struct{}
	store   Store // opt.Store, kept apart: Reconfigure reads it while Run may replace opt

	tickMu     sync.Mutex  // one Tick at a time, so the session bound holds
	heldLogged bool        // guarded by tickMu
	orphans    atomic.Bool // look for finished messages left behind
	retry      atomic.Bool // the next Tick forgets the upstream holds (Retry)
	// skipped is set by a worker that left a due message alone because
	// every upstream was held back; the Tick then wakes when a hold ends.
	skipped atomic.Bool
	// passStep is when the pass in progress started or last finished a
	// delivery attempt, nil between passes: PassStalled. Times from
	// time.Now keep their monotonic reading, so a clock jump is no stall.
	passStep atomic.Pointer[time.Time]

	mu   sync.Mutex
	idle []*session        // open sessions not in use, most recently used last
	down map[int]downState // upstream index -> held back until

	// The wall clock and the run clock at the last Tick, to notice a
	// jump of the wall clock; jumpRun is the run clock when the last jump
	// was seen (0: none). Guarded by tickMu.
	lastWall time.Time
	lastRun  time.Duration
	jumpRun  atomic.Int64
	pendMu   sync.Mutex
	pending  *SchedulerOptions // from Reconfigure; Run applies it between passes
}

// jumpTolerance is how far the wall clock may drift from the run clock
// between two passes before it counts as a jump (NTP slews by far less).
const jumpTolerance = time.Minute

type downState struct {
	until time.Time
	last  spool.Outcome // what put it there
}

// session is one open upstream connection.
type session struct {
	conn  Conn
	idx   int
	dirty bool      // a transaction ran on it: RSET before the next
	since time.Time // idle since
}

// batchSize bounds how many messages one Due call loads.
const batchSize = 256

// NewScheduler checks opt and fills in defaults.
func NewScheduler(opt SchedulerOptions) (*Scheduler, error) {
	if opt.Store == nil {
		return nil, errors.New("deliver: scheduler needs a store")
	}
	if err := opt.fill(); err != nil {
		return nil, err
	}
	sc := &Scheduler{
		opt:     opt,
		backoff: Backoff{Min: opt.MinBackoff, Max: opt.MaxBackoff, Jitter: opt.Jitter},
		log:     opt.Logger,
		kick:    make(chan struct{}, 1),
		store:   opt.Store,
		down:    make(map[int]downState),
	}
	sc.orphans.Store(true) // a crash may have left some
	return sc, nil
}

// Reconfigure replaces the options (a config reload: new upstreams,
// backoff, connections, max age, notify address). It checks them like
// NewScheduler and returns at once; Run applies them before its next pass,
// so a pass in flight finishes under the options it started with. Sessions
// to the old upstreams are closed then, and upstream holds forgotten: the
// list they indexed may have changed. Store stays as NewScheduler got it.
func (s *Scheduler) Reconfigure(opt SchedulerOptions) error {
	opt.Store = s.store
	if err := opt.fill(); err != nil {
		return err
	}
	s.pendMu.Lock()
	s.pending = &opt
	s.pendMu.Unlock()
	s.Kick()
	return nil
}

// applyPending installs the options of the last Reconfigure. Only Run
// calls it, between passes, so no worker reads s.opt meanwhile.
func (s *Scheduler) applyPending() {
	s.pendMu.Lock()
	p := s.pending
	s.pending = nil
	s.pendMu.Unlock()
	if p == nil {
		return
	}
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	s.mu.Lock()
	s.opt = *p
	s.log = p.Logger
	s.backoff = Backoff{Min: p.MinBackoff, Max: p.MaxBackoff, Jitter: p.Jitter}
	idle := s.idle
	s.idle = nil
	s.down = make(map[int]downState)
	s.heldLogged = false
	s.mu.Unlock()
	for _, ss := range idle {
		ss.conn.Close()
	}
}

// fill checks opt and fills in defaults.
func (opt *SchedulerOptions) fill() error {
	if opt.Connections < 0 || opt.MinBackoff < 0 || opt.MaxBackoff < 0 || opt.IdleClose < 0 ||
		opt.UpstreamHold < 0 || opt.MaxAge < 0 {
		return errors.New("deliver: negative scheduler option")
	}
	if opt.Connections == 0 {
		opt.Connections = 2
	}
	if opt.MinBackoff == 0 {
		opt.MinBackoff = time.Minute
	}
	if opt.MaxBackoff == 0 {
		opt.MaxBackoff = time.Hour
	}
	if opt.MinBackoff > opt.MaxBackoff {
		return fmt.Errorf("deliver: min backoff %s above max backoff %s", opt.MinBackoff, opt.MaxBackoff)
	}
	if opt.IdleClose == 0 {
		opt.IdleClose = 30 * time.Second
	}
	if opt.UpstreamHold == 0 {
		opt.UpstreamHold = time.Minute
	}
	if opt.MaxAge == 0 {
		opt.MaxAge = 120 * time.Hour
	}
	if strings.ContainsAny(opt.Notify, "\r\n<>") {
		return fmt.Errorf("deliver: notify address %q is not a plain address", opt.Notify)
	}
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
		if opt.Hostname == "" {
			opt.Hostname = "localhost"
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Jitter == nil {
		opt.Jitter = rand.Float64
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Prepay is the spool's Options.Prepay for these options: the backoff
// (jitter included) a message's first attempt earns, so the accept commit
// can charge it in advance and the attempt needs no write of its own
// (spool.Message.Prepaid). nil when no upstream is configured: held mail
// earns no backoff, even across a crash.
func Prepay(opt SchedulerOptions) func() time.Duration {
	if opt.fill() != nil || opt.Dialer == nil || opt.Dialer.Count() == 0 {
		return nil
	}
	b := Backoff{Min: opt.MinBackoff, Max: opt.MaxBackoff, Jitter: opt.Jitter}
	return func() time.Duration { return b.Delay(1) }
}

// Kick wakes Run without blocking: new mail, or a manual retry.
func (s *Scheduler) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Retry wakes Run for a pass that forgets every upstream hold and dials at
// once: an operator who asks for a retry has usually just fixed the cause,
// and a retry answered from a hold would report the old failure again
// without trying. A dial that fails again holds the upstream anew, with
// the reply just received.
func (s *Scheduler) Retry() {
	s.retry.Store(true)
	s.Kick()
}

// Run ticks until ctx is done, sleeping until the next message is due, a
// session must be closed, or Kick. It closes all sessions on return and
// returns nil when ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.Close()
	for {
		s.applyPending()
		next, err := s.Tick(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := s.opt.Now()
		if err != nil {
			// A spool error is usually passing (disk busy); try again
			// later instead of spinning or giving up.
			s.log.Error("deliver: tick failed", "err", err)
			next = now.Add(s.opt.MinBackoff)
		}
		if t, ok := s.idleDeadline(); ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(max(next.Sub(now), 0))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// PassStalled reports whether a delivery pass has gone longer than limit
// without finishing an attempt; between passes it is false. A watchdog
// asks it: every attempt is bounded by the client's timeouts, so a longer
// silence means the scheduler is stuck (usually on storage).
func (s *Scheduler) PassStalled(now time.Time, limit time.Duration) bool {
	step := s.passStep.Load()
	return step != nil && now.Sub(*step) > limit
}

// Close closes the idle upstream sessions. Sessions in use by a running
// Tick go back to the pool when it ends.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, ss := range idle {
		ss.conn.Close()
	}
	return nil
}

// Tick makes one pass at Now(): expire old messages, then deliver every due
// message over at most Connections sessions in parallel. It returns when all
// are done, with the time the next message is due (zero: nothing queued).
func (s *Scheduler) Tick(ctx context.Context) (time.Time, error) {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	now := s.opt.Now()
	s.noticeJump(now)
	s.passStep.Store(&now)
	defer s.passStep.Store(nil)
	s.closeIdle(now)
	if s.opt.Dialer == nil || s.opt.Dialer.Count() == 0 {
		return s.hold(now)
	}
	if s.retry.Swap(false) {
		s.mu.Lock()
		clear(s.down)
		s.mu.Unlock()
	}
	s.skipped.Store(false)
	if s.orphans.Load() {
		if err := s.sweep(now); err != nil {
			return time.Time{}, err
		}
	}
	// Expiry goes by the messages' real age, not by when they are due: a
	// wall clock set back leaves NextAttempt in the future.
	next, err := s.deliverDue(ctx, now)
	if err != nil {
		return next, err
	}
	expNext, _ := s.expireOld(now, time.Duration(s.jumpRun.Load()))
	if !expNext.IsZero() && (next.IsZero() || expNext.Before(next)) {
		next = expNext
	}
	return next, nil
}

// deliverDue delivers every due message and says when to come back.
func (s *Scheduler) deliverDue(ctx context.Context, now time.Time) (time.Time, error) {
	seen := make(map[string]bool)
	for ctx.Err() == nil {
		due, err := s.opt.Store.Due(now, batchSize)
		if err != nil {
			return time.Time{}, fmt.Errorf("deliver: due messages: %w", err)
		}
		// A message whose spool update failed stays due; seen keeps one
		// Tick from trying it again and again.
		var todo []*spool.Message
		fresh := 0
		for _, m := range due {
			if seen[m.ID] {
				continue
			}
			seen[m.ID] = true
			fresh++
			if s.expired(m, now) {
				s.expire(m, now, time.Duration(s.jumpRun.Load()))
				continue
			}
			todo = append(todo, m)
		}
		s.deliverAll(ctx, todo)
		if fresh == 0 || len(due) < batchSize {
			break
		}
	}
	next, ok := s.opt.Store.NextDue()
	if !ok {
		return time.Time{}, nil
	}
	if next.After(now) {
		return next, nil
	}
	// Due already: new mail (a notice) is worth an immediate pass, but a
	// message this pass saw stays due only because its update failed:
	// come back later rather than spin.
	due, err := s.opt.Store.Due(now, batchSize)
	if err != nil {
		return time.Time{}, fmt.Errorf("deliver: due messages: %w", err)
	}
	for _, m := range due {
		if !seen[m.ID] {
			return now, nil
		}
	}
	wait := now.Add(s.opt.MinBackoff)
	if t, ok := s.holdEnd(now); ok && s.skipped.Load() {
		wait = t // messages wait for an upstream, not for a backoff
	}
	return wait, nil
}

// hold is the Tick without an upstream: nothing is tried, so nothing earns
// backoff; only expiry runs. The next wake is the first expiry. Without an
// upstream no attempt can follow a clock jump, and none is waited for.
func (s *Scheduler) hold(now time.Time) (time.Time, error) {
	next, held := s.expireOld(now, 0)
	if held > 0 && !s.heldLogged {
		s.heldLogged = true
		s.log.Warn(fmt.Sprintf("no upstream configured: %s held", status.Plural(held, "message")))
	}
	return next, nil
}

// expireOld dead-letters the waiting messages past MaxAge (jumpRun: see
// expired) and returns how many wait on and when the first of them is due
// to expire. It works from the index: a queue of 20,000 messages is not
// read on every pass (each accepted message makes one); only the records of
// messages old enough are.
func (s *Scheduler) expireOld(now time.Time, jumpRun time.Duration) (next time.Time, held int) {
	run := s.opt.Store.Run()
	for _, w := range s.opt.Store.Waiting() {
		exp := expiryAt(age(w.QueuedRun, w.Since, now, run), s.opt.MaxAge, now)
		if !exp.IsZero() && !now.Before(exp) {
			m, err := s.opt.Store.Get(w.ID)
			if err == nil && expired(m, s.opt.MaxAge, now, run, jumpRun) {
				s.expire(m, now, jumpRun)
				continue
			}
			// Kept until an attempt after a clock jump (or gone
			// meanwhile): its next attempt brings the next look.
			exp = time.Time{}
		}
		held++
		if !exp.IsZero() && (next.IsZero() || exp.Before(next)) {
			next = exp
		}
	}
	return next, held
}

// expired applies the expiry rule (see the function of that name) at now.
func (s *Scheduler) expired(m *spool.Message, now time.Time) bool {
	return expired(m, s.opt.MaxAge, now, s.opt.Store.Run(), time.Duration(s.jumpRun.Load()))
}

// expiry is when m should be looked at for expiry, by its age now.
func (s *Scheduler) expiry(m *spool.Message, now time.Time) time.Time {
	return expiryAt(age(m.QueuedRun, queuedSince(m), now, s.opt.Store.Run()), s.opt.MaxAge, now)
}

// noticeJump compares how far the wall clock and the run clock moved since
// the last pass; tickMu is held.
func (s *Scheduler) noticeJump(now time.Time) {
	run := s.opt.Store.Run()
	if !s.lastWall.IsZero() {
		if d := now.Sub(s.lastWall) - (run - s.lastRun); d > jumpTolerance || d < -jumpTolerance {
			s.jumpRun.Store(int64(run))
			s.log.Warn("deliver: the system clock jumped; no message expires before one more attempt",
				"jump", d.Round(time.Second).String())
		}
	}
	s.lastWall, s.lastRun = now, run
}

// deliverAll runs the messages through up to Connections workers.
func (s *Scheduler) deliverAll(ctx context.Context, msgs []*spool.Message) {
	if len(msgs) == 0 {
		return
	}
	n := min(s.opt.Connections, len(msgs))
	work := make(chan *spool.Message)
	var wg sync.WaitGroup
	for range n {
		w := &worker{s: s, sess: s.takeIdle()}
		wg.Go(func() {
			for m := range work {
				w.deliver(ctx, m)
				step := s.opt.Now()
				s.passStep.Store(&step)
			}
			w.bg.Wait() // the Tick ends with every delivered message gone
			s.putIdle(w.sess)
		})
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
}

// takeIdle hands a worker the most recently used idle session, if any.
// Workers never dial while holding one, and never exceed Connections, so
// open sessions stay within the bound.
func (s *Scheduler) takeIdle() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) == 0 {
		return nil
	}
	ss := s.idle[len(s.idle)-1]
	s.idle = s.idle[:len(s.idle)-1]
	return ss
}

func (s *Scheduler) putIdle(ss *session) {
	if ss == nil {
		return
	}
	ss.since = s.opt.Now()
	s.mu.Lock()
	s.idle = append(s.idle, ss)
	s.mu.Unlock()
}

// closeIdle closes sessions idle for IdleClose or longer.
func (s *Scheduler) closeIdle(now time.Time) {
	s.mu.Lock()
	var keep, stale []*session
	for _, ss := range s.idle {
		if now.Sub(ss.since) >= s.opt.IdleClose {
			stale = append(stale, ss)
		} else {
			keep = append(keep, ss)
		}
	}
	s.idle = keep
	s.mu.Unlock()
	for _, ss := range stale {
		ss.conn.Close()
	}
}

// idleDeadline is when the first idle session is due to be closed.
func (s *Scheduler) idleDeadline() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, ss := range s.idle {
		if d := ss.since.Add(s.opt.IdleClose); t.IsZero() || d.Before(t) {
			t = d
		}
	}
	return t, !t.IsZero()
}

// isDown reports whether upstream i is held back at now, with the reply
// that put it there.
func (s *Scheduler) isDown(i int, now time.Time) (spool.Outcome, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.down[i]
	if !ok || !now.Before(d.until) {
		delete(s.down, i)
		return spool.Outcome{}, false
	}
	return d.last, true
}

// holdEnd is when the first upstream hold still running at now ends.
func (s *Scheduler) holdEnd(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, d := range s.down {
		if d.until.After(now) && (t.IsZero() || d.until.Before(t)) {
			t = d.until
		}
	}
	return t, !t.IsZero()
}

func (s *Scheduler) markDown(i int, now time.Time, err error) {
	s.mu.Lock()
	s.down[i] = downState{until: now.Add(s.opt.UpstreamHold), last: outcomeOf(err)}
	s.mu.Unlock()
	s.upstream(i, err)
}

func (s *Scheduler) upstream(i int, err error) {
	if s.opt.OnUpstream != nil {
		s.opt.OnUpstream(s.opt.Dialer.Name(i), err)
	}
}

// errGone aborts an Update when the message is no longer ours to deliver
// (delivered, dead, or deleted by an operator meanwhile).
var errGone = errors.New("deliver: message no longer queued")

// charge writes pass p into msg inside an Update: it closes the History
// entry a failover left open, counts the attempt and sets its backoff once
// per pass, and appends add.
func (s *Scheduler) charge(msg *spool.Message, p *pass, add ...spool.Attempt) error {
	if msg.State != spool.StateQueued || len(msg.Pending()) == 0 {
		return errGone
	}
	p.closeOpen(msg, "deferred")
	s.count(msg, p)
	msg.History = append(msg.History, add...)
	return nil
}

// count charges msg the attempt of pass p, once per pass: the attempt
// counts, its backoff is set, and a prepayment (spool.Message.Prepaid) is
// used up.
func (s *Scheduler) count(msg *spool.Message, p *pass) {
	if p.recorded {
		return
	}
	msg.Attempts++
	msg.TriedRun = s.opt.Store.Run()
	msg.NextAttempt = s.backoff.Next(p.now, msg.Attempts, s.expiry(msg, p.now))
	msg.Prepaid = 0
}

// begin readies the attempt of pass p on upstream at a session that is
// open: it returns the message as it stands. An attempt is recorded before
// it is made (Attempts, backoff, an open History entry), so a crash
// mid-send costs one backoff step, never a retry storm. A first attempt
// prepaid at accept (spool.Message.Prepaid) already has that guarantee
// from the accept commit, and is only read: its record waits for the
// outcome (record), or is never written when the message is delivered and
// deleted.
func (w *worker) begin(m *spool.Message, p *pass, upstream string) (*spool.Message, error) {
	s := w.s
	if !p.recorded {
		cur, err := s.opt.Store.Get(m.ID)
		if err != nil {
			return nil, err
		}
		if cur.FirstPrepaid() {
			if cur.State != spool.StateQueued || len(cur.Pending()) == 0 {
				return nil, errGone
			}
			return cur, nil
		}
	}
	fresh, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		return s.charge(msg, p, append(p.tried, spool.Attempt{At: p.now, Upstream: upstream})...)
	})
	if err != nil {
		return nil, err
	}
	p.recorded, p.open, p.tried = true, upstream, nil
	return fresh, nil
}

// worker delivers messages one at a time over at most one session.
type worker struct {
	s    *Scheduler
	sess *session
	// bg waits for the deletes of delivered messages (settle), which run
	// beside the worker's next attempt.
	bg sync.WaitGroup
}

// conn returns a ready session to upstream i: the worker's own after RSET,
// or a new one.
func (w *worker) conn(ctx context.Context, i int) (Conn, error) {
	if w.sess != nil && w.sess.idx != i {
		w.drop()
	}
	if w.sess != nil && w.sess.dirty {
		if err := w.sess.conn.Reset(ctx); err != nil {
			// The relay may have timed the session out; only a fresh
			// dial says whether the upstream itself is unwell.
			w.s.log.Debug("deliver: reused session failed RSET, redialling", "upstream", w.sess.conn.Upstream(), "err", err)
			w.drop()
		} else {
			w.sess.dirty = false
		}
	}
	if w.sess == nil {
		c, err := w.s.opt.Dialer.Dial(ctx, i)
		if err != nil {
			return nil, err
		}
		w.sess = &session{conn: c, idx: i}
	}
	return w.sess.conn, nil
}

func (w *worker) drop() {
	if w.sess != nil {
		w.sess.conn.Close()
		w.sess = nil
	}
}

// deliver makes one delivery attempt for m: the first healthy upstream that
// connects gets it; connection-level failures move on to the next at once.
func (w *worker) deliver(ctx context.Context, m *spool.Message) {
	s := w.s
	if ctx.Err() != nil {
		return // shutting down: not an attempt, so no backoff either
	}
	now := s.opt.Now()
	p := &pass{now: now}
	for i := 0; i < s.opt.Dialer.Count() && ctx.Err() == nil; i++ {
		name := s.opt.Dialer.Name(i)
		if last, down := s.isDown(i, now); down {
			p.lastUp, p.last = name, last
			continue
		}
		conn, err := w.conn(ctx, i)
		if err != nil {
			if ctx.Err() != nil {
				break // shutdown interrupted the dial: says nothing of the upstream
			}
			s.markDown(i, now, err)
			p.lastUp, p.last = name, outcomeOf(err)
			p.tried = append(p.tried, spool.Attempt{At: now, Upstream: name, Outcome: "deferred", Reply: p.last.Reply()})
			continue
		}
		fresh, err := w.begin(m, p, name)
		if err != nil {
			if !errors.Is(err, errGone) && !errors.Is(err, spool.ErrNotFound) {
				s.log.Error("deliver: cannot record attempt", "id", m.ID, "err", err)
			}
			return
		}
		p.begun = true
		pending := fresh.Pending()
		body, err := s.opt.Store.OpenBody(fresh)
		if err != nil {
			s.log.Error("deliver: cannot read spooled body", "id", m.ID, "err", err)
			p.lastUp, p.last = name, spool.Outcome{Text: "local error: cannot read the spooled message"}
			if !p.recorded {
				p.tried = append(p.tried, spool.Attempt{At: now, Upstream: name, Outcome: "deferred", Reply: p.last.Reply()})
			}
			break
		}
		w.sess.dirty = true
		results, sendErr := conn.Send(ctx, Outgoing{From: fresh.From, Rcpts: pending, Size: fresh.Size,
			EightBit: fresh.EightBit, SMTPUTF8: fresh.SMTPUTF8}, body)
		// Closed before any spool write: no read transaction outlives
		// the attempt.
		body.Close()
		if connLevel(sendErr) {
			w.drop()
			s.markDown(i, now, sendErr)
			p.lastUp, p.last = name, outcomeOf(sendErr)
			if !p.recorded {
				// Prepaid: nothing written yet, so this upstream's
				// entry waits with the failed dials.
				p.tried = append(p.tried, spool.Attempt{At: now, Upstream: name, Outcome: "deferred", Reply: p.last.Reply()})
			}
			continue
		}
		var e *Error
		if sendErr != nil && (!errors.As(sendErr, &e) || e.Code == 0) {
			// A network failure mid-transaction leaves the session in an
			// unknown state; the upstream may have taken the message, so
			// no failover: retry later.
			w.drop()
			s.upstream(i, sendErr)
		} else {
			s.upstream(i, nil)
		}
		s.settle(fresh, p, name, pending, results, sendErr, &w.bg)
		return
	}
	if ctx.Err() != nil && !p.begun {
		return // nothing was sent: leave the message as it was
	}
	if !p.begun && len(p.tried) == 0 {
		// Every upstream is held back after a failed dial for another
		// message: nothing was tried for this one, so nothing is recorded
		// (no attempt, no backoff, no log line repeating an old reply).
		// It stays due and goes out in the first pass after the hold,
		// or at once on a manual retry.
		s.skipped.Store(true)
		return
	}
	s.deferAll(m, p)
}
