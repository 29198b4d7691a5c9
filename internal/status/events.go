package status

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"relaybox/internal/text"
)

// Event is one log record kept in the ring of recent events, for the
// console's `log` command and the admin API.
type Event struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	Attrs string    `json:"attrs,omitempty"` // key=value text, as in the log line
}

// String renders the event as one log-like line.
func (e Event) String() string {
	s := e.Time.Format("2006-01-02 15:04:05") + " " + e.Level + " " + e.Msg
	if e.Attrs != "" {
		s += " " + e.Attrs
	}
	return s
}

// ringLevel: debug records would push the interesting ones out of a
// few hundred slots, so the ring keeps Info and above.
const ringLevel = slog.LevelInfo

// ring is a fixed number of the newest events, each with its place in the
// order of all events, so two rings merge back into that order.
type ring struct {
	ev   []Event
	seq  []uint64
	next int // where the next event goes
	n    int
}

func newRing(size int) ring { return ring{ev: make([]Event, size), seq: make([]uint64, size)} }

func (r *ring) push(e Event, seq uint64) {
	r.ev[r.next], r.seq[r.next] = e, seq
	r.next = (r.next + 1) % len(r.ev)
	r.n = min(r.n+1, len(r.ev))
}

// at returns the i-th of the newest events kept, oldest first.
func (r *ring) at(i int) (Event, uint64) {
	j := (r.next - r.n + i + len(r.ev)) % len(r.ev)
	return r.ev[j], r.seq[j]
}

// record keeps e in one of two rings: message events (records with an
// "event" attribute: accepted, sent, deferred, ...) and everything else.
// A flood of refusals or warnings then cannot push the message events out.
func (m *Model) record(e Event, message bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.eventSeq++
	if message {
		m.msgRing.push(e, m.eventSeq)
	} else {
		m.ring.push(e, m.eventSeq)
	}
}

// Recent returns the newest n events, oldest first (all kept when n <= 0).
func (m *Model) Recent(n int) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.ring.n + m.msgRing.n
	if n <= 0 || n > total {
		n = total
	}
	// Merge both rings by order of arrival, then keep the newest n.
	out := make([]Event, 0, total)
	i, j := 0, 0
	for i < m.ring.n || j < m.msgRing.n {
		var a, b uint64 = ^uint64(0), ^uint64(0)
		var ea, eb Event
		if i < m.ring.n {
			ea, a = m.ring.at(i)
		}
		if j < m.msgRing.n {
			eb, b = m.msgRing.at(j)
		}
		if a < b {
			out = append(out, ea)
			i++
		} else {
			out = append(out, eb)
			j++
		}
	}
	return out[len(out)-n:]
}

// Handler returns a slog.Handler that keeps every record at Info or above
// in the ring of recent events and passes records on to next as next's own
// level allows. The ring therefore holds the message events even when the
// log itself is set to warn.
func (m *Model) Handler(next slog.Handler) slog.Handler {
	return &tee{m: m, next: next}
}

type tee struct {
	m      *Model
	next   slog.Handler
	attrs  string // pre-rendered WithAttrs attributes
	prefix string // group prefix for keys, "g1.g2."
	// message: WithAttrs gave an "event" attribute, so every record is a
	// message event.
	message bool
}

// Enabled implements slog.Handler.
func (t *tee) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= ringLevel || t.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (t *tee) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= ringLevel {
		var b strings.Builder
		b.WriteString(t.attrs)
		message := t.message
		r.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, t.prefix, a)
			message = message || a.Key == "event"
			return true
		})
		when := r.Time
		if when.IsZero() {
			when = t.m.opt.Now()
		}
		t.m.record(Event{Time: when, Level: r.Level.String(), Msg: text.OneLine(r.Message), Attrs: b.String()}, message)
	}
	if t.next.Enabled(ctx, r.Level) {
		return t.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (t *tee) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(t.attrs)
	message := t.message
	for _, a := range as {
		appendAttr(&b, t.prefix, a)
		message = message || a.Key == "event"
	}
	return &tee{m: t.m, next: t.next.WithAttrs(as), attrs: b.String(), prefix: t.prefix, message: message}
}

// WithGroup implements slog.Handler.
func (t *tee) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	return &tee{m: t.m, next: t.next.WithGroup(name), attrs: t.attrs, prefix: t.prefix + name + ".", message: t.message}
}

// appendAttr writes " key=value" (groups flattened to "group.key"), in the
// style of slog's text handler.
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	var v string
	switch a.Value.Kind() {
	case slog.KindTime:
		v = a.Value.Time().Format(time.RFC3339)
	case slog.KindDuration:
		v = a.Value.Duration().String()
	default:
		v = fmt.Sprint(a.Value.Any())
	}
	b.WriteString(quoteIfNeeded(v))
}

// quoteIfNeeded quotes values that would otherwise break key=value
// parsing or carry control characters to a terminal.
func quoteIfNeeded(s string) string {
	if s == "" || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
