//go:build unix

package systemd

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// fakeManager is a NOTIFY_SOCKET that records the datagrams it gets.
func fakeManager(t *testing.T) (path string, next func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotify(t *testing.T) {
	path, next := fakeManager(t)
	n := NewNotifier(env(map[string]string{"NOTIFY_SOCKET": path}))
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	if err := n.Notify(Watchdog, "STATUS=relaying"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "WATCHDOG=1\nSTATUS=relaying" {
		t.Errorf("got %q", got)
	}
}

// Outside systemd nothing is sent and nothing fails.
func TestNotifyWithoutSocket(t *testing.T) {
	n := NewNotifier(env(nil))
	if n != nil {
		t.Fatalf("notifier %+v without NOTIFY_SOCKET", n)
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("relaybox-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "\x00" + name, Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract sockets here: %v", err)
	}
	defer c.Close()
	if err := NewNotifier(env(map[string]string{"NOTIFY_SOCKET": "@" + name})).Notify(Stopping); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tt := range []struct {
		env    map[string]string
		want   time.Duration
		ok     bool
		hasErr bool
	}{
		{nil, 0, false, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, true, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 30 * time.Second, true, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, 0, false, false}, // another process's
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, false, true},
		{map[string]string{"WATCHDOG_USEC": "0"}, 0, false, true},
	} {
		d, ok, err := WatchdogInterval(env(tt.env), 42)
		if d != tt.want || ok != tt.ok || (err != nil) != tt.hasErr {
			t.Errorf("%v: got %v %v %v", tt.env, d, ok, err)
		}
	}
}

func devIno(t *testing.T, f *os.File) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// A stderr whose device and inode match JOURNAL_STREAM is the journal; the
// same variable with another file (stderr redirected) is not.
func TestIsJournal(t *testing.T) {
	dir := t.TempDir()
	a, err := os.Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Create(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e := env(map[string]string{"JOURNAL_STREAM": devIno(t, a)})
	if !IsJournal(a, e) {
		t.Error("matching dev:inode not recognised")
	}
	if IsJournal(b, e) {
		t.Error("another file taken for the journal")
	}
	if IsJournal(a, env(nil)) {
		t.Error("journal without JOURNAL_STREAM")
	}
}

func TestPriorityHandler(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(PriorityHandler(&out, func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})).With("component", "test")
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s", out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") || !strings.Contains(l, "component=test") {
			t.Errorf("line %d %q, want prefix %s", i, l, want[i])
		}
	}
}
