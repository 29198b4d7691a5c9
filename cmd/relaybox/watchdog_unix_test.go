//go:build unix

package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"relaybox/internal/systemd"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WATCHDOG=1 flows while the liveness check passes and stops, with one
// error line, as soon as it names a stalled part; it resumes when the
// part recovers.
func TestWatchdogWithheldWhileStalled(t *testing.T) {
	sock, ch := fakeNotifySocket(t)
	t.Setenv("WATCHDOG_USEC", "150000") // a ping every 50ms
	t.Setenv("WATCHDOG_PID", "")
	var logs syncBuffer
	d := &daemon{log: slog.New(slog.NewTextHandler(&logs, nil)),
		opts: runOptions{notify: systemd.NewNotifier(func(string) string { return sock })}}
	var stuck atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	d.startWatchdog(ctx, func(time.Time) string {
		if stuck.Load() {
			return "spool commit running for over 1m0s"
		}
		return ""
	})
	defer func() { cancel(); d.wg.Wait() }()

	var seen []string
	waitNotify(t, ch, "WATCHDOG=1", &seen)
	stuck.Store(true)
	// Let a ping already on its way arrive, then expect silence.
	time.Sleep(100 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}
	select {
	case m := <-ch:
		t.Fatalf("got %q while stalled", m)
	case <-time.After(400 * time.Millisecond):
	}
	if n := strings.Count(logs.String(), "watchdog withheld"); n != 1 {
		t.Fatalf("%d withheld lines, want 1:\n%s", n, logs.String())
	}
	stuck.Store(false)
	waitNotify(t, ch, "WATCHDOG=1", &seen)
}
