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

func (m *Model) record(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ring[m.ringNext] = e
	m.ringNext = (m.ringNext + 1) % len(m.ring)
	if m.ringLen < len(m.ring) {
		m.ringLen++
	}
}

// Recent returns the newest n events, oldest first (all kept when n <= 0).
func (m *Model) Recent(n int) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 0 || n > m.ringLen {
		n = m.ringLen
	}
	out := make([]Event, n)
	start := m.ringNext - n
	if start < 0 {
		start += len(m.ring)
	}
	for i := range out {
		out[i] = m.ring[(start+i)%len(m.ring)]
	}
	return out
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
		r.Attrs(func(a slog.Attr) bool {
			appendAttr(&b, t.prefix, a)
			return true
		})
		when := r.Time
		if when.IsZero() {
			when = t.m.opt.Now()
		}
		t.m.record(Event{Time: when, Level: r.Level.String(), Msg: oneLine(r.Message), Attrs: b.String()})
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
	for _, a := range as {
		appendAttr(&b, t.prefix, a)
	}
	return &tee{m: t.m, next: t.next.WithAttrs(as), attrs: b.String(), prefix: t.prefix}
}

// WithGroup implements slog.Handler.
func (t *tee) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	return &tee{m: t.m, next: t.next.WithGroup(name), attrs: t.attrs, prefix: t.prefix + name + "."}
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
