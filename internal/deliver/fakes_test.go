package deliver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"relaybox/internal/clocktest"
	"relaybox/internal/spool"
)

// The test moves time with a clocktest.Clock.

func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
}

// fakeStore is an in-memory Store with the spool's semantics: Update works
// on a copy and commits only when fn succeeds.
type fakeStore struct {
	clock *clocktest.Clock

	mu       sync.Mutex
	msgs     map[string]*spool.Message
	bodies   map[string][]byte
	seq      int
	open     int // body readers not yet closed
	failDel  error
	enqueued []string
	// onDelete, if set, runs first in Delete, without the lock.
	onDelete func(id string)
	// prepay, when set, is stored in each new message as the spool's
	// Options.Prepay would (spool.Message.Prepaid).
	prepay time.Duration
	// writes counts Updates and Deletes that changed something.
	writes int
	// deleting counts DeleteDelivered calls in progress, maxDeleting the
	// most at once.
	deleting, maxDeleting int
}

func newStore(c *clocktest.Clock) *fakeStore {
	return &fakeStore{clock: c, msgs: map[string]*spool.Message{}, bodies: map[string][]byte{}}
}

var _ Store = (*fakeStore)(nil)

func clone(m *spool.Message) *spool.Message {
	c := *m
	c.Recipients = slices.Clone(m.Recipients)
	c.History = slices.Clone(m.History)
	return &c
}

// add queues a message received now and due at once.
func (f *fakeStore) add(from string, rcpts []string, body string) *spool.Message {
	m, err := f.Enqueue(spool.Envelope{ClientAddr: "10.0.0.5:40000", Helo: "printer", From: from, Recipients: rcpts}, []byte(body))
	if err != nil {
		panic(err)
	}
	return m
}

func (f *fakeStore) Enqueue(env spool.Envelope, body []byte) (*spool.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	now := f.clock.Now()
	m := &spool.Message{
		ID: fmt.Sprintf("M%03d", f.seq), Received: now, ClientAddr: env.ClientAddr, Helo: env.Helo,
		From: env.From, Size: int64(len(body)), State: spool.StateQueued, NextAttempt: now,
		QueuedRun: f.clock.Mono() + 1, Prepaid: f.prepay,
	}
	for _, r := range env.Recipients {
		m.Recipients = append(m.Recipients, spool.Recipient{Address: r, State: spool.RcptPending})
	}
	f.msgs[m.ID] = m
	f.bodies[m.ID] = slices.Clone(body)
	f.enqueued = append(f.enqueued, m.ID)
	return clone(m), nil
}

// get returns a copy of the stored message, nil when gone.
func (f *fakeStore) get(id string) *spool.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.msgs[id]; ok {
		return clone(m)
	}
	return nil
}

func (f *fakeStore) body(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(f.bodies[id])
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

func (f *fakeStore) sorted(keep func(*spool.Message) bool) []*spool.Message {
	var out []*spool.Message
	for _, m := range f.msgs {
		if keep(m) {
			out = append(out, clone(m))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Received.Equal(out[j].Received) {
			return out[i].Received.Before(out[j].Received)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (f *fakeStore) Due(now time.Time, limit int) ([]*spool.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.sorted(func(m *spool.Message) bool {
		return m.State == spool.StateQueued && !m.NextAttempt.After(now) && len(m.Pending()) > 0
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeStore) NextDue() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t time.Time
	for _, m := range f.msgs {
		if m.State == spool.StateQueued && len(m.Pending()) > 0 && (t.IsZero() || m.NextAttempt.Before(t)) {
			t = m.NextAttempt
		}
	}
	return t, !t.IsZero()
}

// Run is the run clock: the fake clock's monotonic side, from 1ns as the
// spool's is.
func (f *fakeStore) Run() time.Duration { return f.clock.Mono() + 1 }

func (f *fakeStore) Waiting() []spool.Waiting {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []spool.Waiting
	for _, m := range f.sorted(func(m *spool.Message) bool { return m.State == spool.StateQueued && len(m.Pending()) > 0 }) {
		out = append(out, spool.Waiting{ID: m.ID, Since: queuedSince(m), QueuedRun: m.QueuedRun})
	}
	return out
}

func (f *fakeStore) Finished() ([]*spool.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sorted(func(m *spool.Message) bool { return m.State == spool.StateQueued && len(m.Pending()) == 0 }), nil
}

func (f *fakeStore) Get(id string) (*spool.Message, error) {
	if m := f.get(id); m != nil {
		return m, nil
	}
	return nil, spool.ErrNotFound
}

func (f *fakeStore) Update(id string, fn func(*spool.Message) error) (*spool.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.msgs[id]
	if !ok {
		return nil, spool.ErrNotFound
	}
	c := clone(m)
	if err := fn(c); err != nil {
		return nil, err
	}
	f.msgs[id] = c
	f.writes++
	return clone(c), nil
}

func (f *fakeStore) Delete(id string) error {
	if f.onDelete != nil {
		f.onDelete(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDel != nil {
		return f.failDel
	}
	if _, ok := f.msgs[id]; !ok {
		return spool.ErrNotFound
	}
	delete(f.msgs, id)
	delete(f.bodies, id)
	f.writes++
	return nil
}

func (f *fakeStore) DeleteDelivered(id string) error {
	f.mu.Lock()
	f.deleting++
	f.maxDeleting = max(f.maxDeleting, f.deleting)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.deleting--
		f.mu.Unlock()
	}()
	return f.Delete(id)
}

// writeCount is how many writes the store has taken so far.
func (f *fakeStore) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

type trackedBody struct {
	io.Reader
	f    *fakeStore
	once sync.Once
}

func (b *trackedBody) Close() error {
	b.once.Do(func() {
		b.f.mu.Lock()
		b.f.open--
		b.f.mu.Unlock()
	})
	return nil
}

func (f *fakeStore) OpenBody(m *spool.Message) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bodies[m.ID]
	if !ok {
		return nil, spool.ErrNotFound
	}
	f.open++
	return &trackedBody{Reader: bytes.NewReader(b), f: f}, nil
}

func (f *fakeStore) openBodies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

func (f *fakeStore) Headers(id string, max int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.bodies[id]
	if !ok {
		return nil, spool.ErrNotFound
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i+2]
	}
	if len(b) > max {
		b = b[:max]
	}
	return slices.Clone(b), nil
}

// fakeUp scripts one fake relay. Fields may change between Ticks.
type fakeUp struct {
	name     string
	dialErr  error // Dial fails with this
	resetErr error // Reset fails with this
	// send answers a transaction; nil accepts every recipient.
	send func(rcpts []string) ([]RcptResult, error)
}

type sendRec struct {
	upstream, from string
	rcpts          []string
	body           string
}

// fakeDialer hands out scripted Conns and counts what the scheduler did.
type fakeDialer struct {
	mu      sync.Mutex
	ups     []*fakeUp
	dials   map[string]int
	resets  int
	closes  int
	open    int // Conns dialled and not closed
	maxOpen int
	sends   []sendRec
	// during, if set, runs inside Send (without the lock) before answering.
	during func(c *fakeConn, rcpts []string)
}

func newDialer(ups ...*fakeUp) *fakeDialer {
	return &fakeDialer{ups: ups, dials: map[string]int{}}
}

func (d *fakeDialer) Count() int        { return len(d.ups) }
func (d *fakeDialer) Name(i int) string { return d.ups[i].name }

func (d *fakeDialer) Dial(ctx context.Context, i int) (Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.ups[i]
	d.dials[u.name]++
	if u.dialErr != nil {
		return nil, u.dialErr
	}
	d.open++
	d.maxOpen = max(d.maxOpen, d.open)
	return &fakeConn{d: d, u: u}, nil
}

// set changes an upstream's script between Ticks.
func (d *fakeDialer) set(i int, fn func(u *fakeUp)) {
	d.mu.Lock()
	fn(d.ups[i])
	d.mu.Unlock()
}

func (d *fakeDialer) stats() (dials map[string]int, resets, closes, open, maxOpen int, sends []sendRec) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return copyCounts(d.dials), d.resets, d.closes, d.open, d.maxOpen, slices.Clone(d.sends)
}

func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

type fakeConn struct {
	d      *fakeDialer
	u      *fakeUp
	closed bool
	inTx   bool // a transaction ran and was not reset
}

func (c *fakeConn) Upstream() string { return c.u.name }

func (c *fakeConn) Send(ctx context.Context, msg Outgoing, body io.Reader) ([]RcptResult, error) {
	from, rcpts := msg.From, msg.Rcpts
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	c.d.mu.Lock()
	if c.closed {
		c.d.mu.Unlock()
		panic("Send on a closed Conn")
	}
	if c.inTx {
		c.d.mu.Unlock()
		panic("Send without Reset after the previous transaction")
	}
	c.inTx = true
	c.d.sends = append(c.d.sends, sendRec{c.u.name, from, slices.Clone(rcpts), string(b)})
	send, during := c.u.send, c.d.during
	c.d.mu.Unlock()
	if during != nil {
		during(c, rcpts)
	}
	if send == nil {
		return accept(rcpts), nil
	}
	return send(rcpts)
}

func (c *fakeConn) Reset(ctx context.Context) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.resets++
	if c.u.resetErr != nil {
		return c.u.resetErr
	}
	c.inTx = false
	return nil
}

func (c *fakeConn) Close() error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.d.open--
		c.d.closes++
	}
	return nil
}

func accept(rcpts []string) []RcptResult {
	out := make([]RcptResult, len(rcpts))
	for i, r := range rcpts {
		out[i] = RcptResult{Address: r, Reply: queuedAs}
	}
	return out
}

// queuedAs is the fake upstream's final reply to DATA.
const queuedAs = "250 2.0.0 Ok: queued as 4BxQ7"

// noSuchUser is up1 accepting every recipient but addr, which gets 550.
func noSuchUser(addr string) func(rcpts []string) ([]RcptResult, error) {
	return func(r []string) ([]RcptResult, error) {
		res := accept(r)
		for i, a := range r {
			if a == addr {
				res[i].Err = reply(up1, "rcpt", 550, "5.1.1", "no such user")
			}
		}
		return res, nil
	}
}

// reply builds an upstream SMTP reply error.
func reply(up, op string, code int, enh, text string) *Error {
	return &Error{Upstream: up, Op: op, Code: code, Enhanced: enh, Text: text, Permanent: code >= 500}
}

// netErr builds a network-level failure (no SMTP code).
func netErr(up, op, text string) *Error {
	return &Error{Upstream: up, Op: op, Text: text}
}

// logBuffer collects slog output across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) lines() []string {
	return strings.Split(strings.TrimSpace(l.String()), "\n")
}

// harness wires a scheduler to the fakes with test-friendly defaults:
// jitter 0.5 makes the backoff exact (factor 1.0).
type harness struct {
	t      *testing.T
	clock  *clocktest.Clock
	store  *fakeStore
	dialer *fakeDialer
	sched  *Scheduler
	logs   *logBuffer

	mu     sync.Mutex
	events []Event
	ups    []string // OnUpstream calls: "name ok" / "name fail"
}

func newHarness(t *testing.T, d *fakeDialer, edit func(*SchedulerOptions)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), dialer: d, logs: &logBuffer{}}
	h.store = newStore(h.clock)
	opt := SchedulerOptions{
		Store: h.store, Connections: 2,
		MinBackoff: time.Minute, MaxBackoff: time.Hour,
		IdleClose: 30 * time.Second, UpstreamHold: 5 * time.Minute, MaxAge: 120 * time.Hour,
		Notify: "postmaster@example.edu", Hostname: "relaybox.test",
		Now: h.clock.Now, Jitter: func() float64 { return 0.5 },
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		OnEvent: func(ev Event) {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		},
		OnUpstream: func(name string, err error) {
			h.mu.Lock()
			if err == nil {
				h.ups = append(h.ups, name+" ok")
			} else {
				h.ups = append(h.ups, name+" fail")
			}
			h.mu.Unlock()
		},
	}
	if d != nil {
		opt.Dialer = d
	}
	if edit != nil {
		edit(&opt)
	}
	s, err := NewScheduler(opt)
	if err != nil {
		t.Fatal(err)
	}
	h.sched = s
	t.Cleanup(func() { s.Close() })
	return h
}

// tick runs one pass and checks no body reader was left open.
func (h *harness) tick() time.Time {
	h.t.Helper()
	next, err := h.sched.Tick(context.Background())
	if err != nil {
		h.t.Fatalf("Tick: %v", err)
	}
	if n := h.store.openBodies(); n != 0 {
		h.t.Fatalf("%d body readers left open after Tick", n)
	}
	return next
}

// kinds lists the events so far as "kind:to" strings.
func (h *harness) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		out = append(out, string(ev.Kind)+":"+strings.Join(ev.To, ","))
	}
	return out
}

func (h *harness) lastEvent() Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		h.t.Fatal("no event")
	}
	return h.events[len(h.events)-1]
}

// notices returns the messages the scheduler spooled to the notify address.
func (h *harness) notices() []*spool.Message {
	var out []*spool.Message
	for _, m := range h.store.all() {
		if m.From == "" && len(m.Recipients) == 1 && m.Recipients[0].Address == "postmaster@example.edu" {
			out = append(out, m)
		}
	}
	return out
}

func (f *fakeStore) all() []*spool.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sorted(func(*spool.Message) bool { return true })
}

const schedBody = "From: scanner@lab.example.edu\r\nTo: alice@example.edu\r\nSubject: Scan from copier 3\r\n" +
	"Message-ID: <x1@lab>\r\n\r\nSECRET BODY LINE\r\n"
