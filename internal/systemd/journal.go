package systemd

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// Priority is the syslog priority journald reads from a "<N>" line prefix.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

// PriorityHandler returns the handler mk builds on w, with each record's
// line prefixed by its syslog priority ("<4>level=WARN ..."), so that
// `journalctl -p warning` finds relaybox's warnings. Use it only when
// stderr is a journal stream (IsJournal): on a terminal the prefix is noise.
func PriorityHandler(w io.Writer, mk func(io.Writer) slog.Handler) slog.Handler {
	pw := &prefixWriter{w: w}
	return &prioHandler{pw: pw, next: mk(pw)}
}

// prefixWriter carries the priority of the record being formatted from
// Handle to Write; mu keeps each record's priority and line together.
type prefixWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prio int
	buf  []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf[:0], '<', byte('0'+p.prio), '>')
	p.buf = append(p.buf, b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

type prioHandler struct {
	pw   *prefixWriter
	next slog.Handler
}

// Enabled implements slog.Handler.
func (h *prioHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *prioHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prio = Priority(r.Level)
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *prioHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &prioHandler{pw: h.pw, next: h.next.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h *prioHandler) WithGroup(name string) slog.Handler {
	return &prioHandler{pw: h.pw, next: h.next.WithGroup(name)}
}
