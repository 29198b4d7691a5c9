package service

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	ks "github.com/kardianos/service"
)

// sysHandler writes log records to a kardianos Logger (the Windows Event
// Log) as one key=value line each, at the matching severity. The time and
// level are left out: the log keeps its own.
type sysHandler struct {
	out  *sysWriter
	text slog.Handler
}

// sysWriter carries the level of the record being formatted from Handle to
// Write; mu keeps each record's level and line together.
type sysWriter struct {
	mu    sync.Mutex
	log   ks.Logger
	level slog.Level
}

func (w *sysWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	var err error
	switch {
	case w.level >= slog.LevelError:
		err = w.log.Error(line)
	case w.level >= slog.LevelWarn:
		err = w.log.Warning(line)
	default:
		err = w.log.Info(line)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func newSysHandler(l ks.Logger, level slog.Leveler) *sysHandler {
	w := &sysWriter{log: l}
	drop := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{}
		}
		return a
	}
	return &sysHandler{out: w, text: slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: drop})}
}

// Enabled implements slog.Handler.
func (h *sysHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.text.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *sysHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.level = r.Level
	return h.text.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *sysHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sysHandler{out: h.out, text: h.text.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h *sysHandler) WithGroup(name string) slog.Handler {
	return &sysHandler{out: h.out, text: h.text.WithGroup(name)}
}
