//go:build linux

package console

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ptyScreen is a screen on a pty master; m is the master, for hanging up.
type ptyScreen struct {
	*screen
	m *os.File
}

func newPTY(t *testing.T) (*ptyScreen, *os.File) {
	t.Helper()
	pm, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	// pty.Open leaves the master in blocking mode (it calls Fd), so a
	// Close would wait for the pending Read and never hang up the slave.
	// A non-blocking duplicate goes through the poller and closes at once.
	fd, err := unix.Dup(int(pm.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	pm.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "/dev/ptmx")
	p := &ptyScreen{screen: newScreen(t, m, m), m: m}
	t.Cleanup(func() { m.Close(); s.Close() })
	return p, s
}

// TestSerialThroughPTY runs the console with Run on the slave side of a
// pseudo-terminal, opened as a serial port at 115200 8N1 through a
// symlink (as /dev/serial0 is one), as a terminal program on the master
// side would see it: status, exit and a new session, then the adapter
// "unplugged" and another one plugged in under the same name.
func TestSerialThroughPTY(t *testing.T) {
	f := newFixture(t)
	c := f.console()
	c.minBackoff, c.maxBackoff = 5*time.Millisecond, 20*time.Millisecond
	first, slave1 := newPTY(t)
	link := filepath.Join(t.TempDir(), "serial0")
	if err := os.Symlink(slave1.Name(), link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var logs bytes.Buffer // read only after Run returns
	go func() { done <- c.Run(ctx, link, 115200, slog.New(slog.NewTextHandler(&logs, nil))) }()

	first.until("type help for commands\r\n" + prompt)
	first.typeText("status\r")
	got := first.until(prompt)
	if !strings.HasPrefix(got, "status\r\nstate:      ok for ") || !strings.Contains(got, "upstream:   "+upstreamName+" up") {
		t.Errorf("status through the pty:\n%q", got)
	}
	checkTerminalSafe(t, got)

	// exit ends the session; Enter (CRLF here) starts the next one.
	first.typeText("exit\r\n")
	first.until("bye\r\nsession ended; press Enter for a new one\r\n")
	first.typeText("\r\n")
	first.until("type help for commands\r\n" + prompt)

	// Swap the device behind the name, then pull the old one.
	second, slave2 := newPTY(t)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(slave2.Name(), link); err != nil {
		t.Fatal(err)
	}
	first.m.Close()
	slave1.Close()
	second.until("type help for commands\r\n" + prompt)
	second.typeText("version\r")
	if got := second.until(prompt); !strings.HasPrefix(got, "version\r\nrelaybox 1.0-test (") {
		t.Errorf("version after reopening:\n%q", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, want := range []string{"console: session ended", "console: device failed; reopening", "console: stopped"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}
