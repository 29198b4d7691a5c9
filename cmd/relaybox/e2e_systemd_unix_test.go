//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeNotifySocket listens where NOTIFY_SOCKET will point and collects the
// datagrams.
func fakeNotifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	// Unix socket paths are short (108 bytes); t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "rbx-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func waitNotify(t *testing.T, ch <-chan string, want string, seen *[]string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("notify socket closed before %q; got %q", want, *seen)
			}
			*seen = append(*seen, m)
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return
				}
			}
		case <-deadline:
			t.Fatalf("no %q from relaybox; got %q", want, *seen)
		}
	}
}

// Under systemd (Type=notify, WatchdogSec, journald on stderr): READY=1 once
// the listener accepts, WATCHDOG=1 while it runs, STOPPING=1 at stop, and
// each log line carries its syslog priority.
func TestE2ESystemdNotifyAndJournal(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	sock, ch := fakeNotifySocket(t)
	logf, journal := journalFile(t, dir)
	cmd := exec.Command(relayBinary, "run", "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=300000", journal)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	var seen []string
	waitNotify(t, ch, "READY=1", &seen)
	if c, err := net.Dial("tcp", addr); err != nil {
		t.Fatalf("READY=1 before the listener accepts: %v", err)
	} else {
		c.Close()
	}
	waitNotify(t, ch, "WATCHDOG=1", &seen)
	waitNotify(t, ch, "WATCHDOG=1", &seen)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitNotify(t, ch, "STOPPING=1", &seen)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	b, err := os.ReadFile(logf.Name())
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.HasPrefix(l, "<") {
			t.Errorf("line without a priority prefix: %q", l)
		}
	}
	mustContain(t, log, "<4>time=", "level=WARN", "<6>time=", "msg=\"relaybox started\"")
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && !strings.HasPrefix(l, "<4>") {
			t.Errorf("warning with the wrong priority: %q", l)
		}
	}
}

// The line a failed start ends with is filed as an error in the journal.
func TestE2EStartFailureJournalPriority(t *testing.T) {
	dir := t.TempDir()
	busy := takePort(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), busy))
	logf, journal := journalFile(t, dir)
	cmd := exec.Command(relayBinary, "run", "-config", cfg)
	cmd.Env = append(os.Environ(), journal)
	cmd.Stderr = logf
	if err := cmd.Run(); err == nil {
		t.Fatal("started on a taken port")
	}
	b, _ := os.ReadFile(logf.Name())
	if !strings.Contains(string(b), "\n<3>relaybox run: "+cfg+":4: listen.smtp[0]: another program already listens") {
		t.Fatalf("journal:\n%s", b)
	}
}

// journalFile is a file standing in for the journal's stream, and the
// JOURNAL_STREAM setting (its dev:inode) that makes relaybox treat a stderr
// written to it as the journal.
func journalFile(t *testing.T, dir string) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino)
}
