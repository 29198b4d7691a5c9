package main

// Start-up that fails well, and systemd's notify protocol, against the
// real binary.

import (
	"errors"
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

// runExit runs the binary to its end and returns its combined output and
// exit code.
func runExit(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(relayBinary, args...)
	cmd.Env = append(os.Environ(), env...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("relaybox %s did not exit:\n%s", strings.Join(args, " "), out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("relaybox %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// takePort occupies a loopback port for the test, as another MTA would.
func takePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// Each listener kind with its port taken: exit 1 (not 2, not a panic) and
// one line naming the key, its line in the file, the address and the fix.
func TestE2EBusyPortExitsOne(t *testing.T) {
	for _, tt := range []struct {
		kind string
		conf func(dir, busy, free string) string
		key  string
		line string
	}{
		{"smtp", func(dir, busy, free string) string {
			return acceptConfig(dir, busy)
		}, "listen.smtp", ":4: listen.smtp[0]"},
		{"smtps", func(dir, busy, free string) string {
			return strings.Replace(acceptConfig(dir, free), "[policy]",
				"tls_cert = \"auto\"\nsmtps = [\""+busy+"\"]\n[policy]", 1)
		}, "listen.smtps", ":12: listen.smtps[0]"},
		{"admin", func(dir, busy, free string) string {
			return strings.Replace(acceptConfig(dir, free), "listen = \"\"", "listen = \""+busy+"\"", 1)
		}, "admin.listen", ":14: admin.listen"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			busy := takePort(t)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), tt.conf(filepath.Join(dir, "data"), busy, freeAddr(t)))
			out, code := runExit(t, nil, "run", "-config", cfg)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			for _, bad := range []string{"panic", "goroutine ", "nil pointer"} {
				if strings.Contains(out, bad) {
					t.Fatalf("output has %q:\n%s", bad, out)
				}
			}
			var failure []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(l, "relaybox run:") {
					failure = append(failure, l)
				}
			}
			want := fmt.Sprintf("another program already listens on %s: stop it", busy)
			if len(failure) != 1 || !strings.Contains(failure[0], want) ||
				!strings.Contains(failure[0], "change "+tt.key) || !strings.Contains(failure[0], cfg+tt.line) {
				t.Fatalf("want one line naming %s, %s and %s; got:\n%s", cfg+tt.line, want, tt.key, out)
			}
			// Nothing was left behind: a second start on free ports works.
			if _, err := os.Stat(filepath.Join(dir, "data", "spool.db")); err == nil {
				free := freeAddr(t)
				ok := writeFile(t, filepath.Join(dir, "ok.toml"), acceptConfig(filepath.Join(dir, "data"), free))
				startRelay(t, ok, free).stop()
			}
		})
	}
}

// A data_dir that cannot hold the spool, and a spool another relaybox
// holds: exit 1 with one line naming data_dir, its line and the fix.
func TestE2ESpoolFailureExitsOne(t *testing.T) {
	dir := t.TempDir()
	blocker := writeFile(t, filepath.Join(dir, "a-file"), "x")
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(blocker, "data"), freeAddr(t)))
	out, code := runExit(t, nil, "run", "-config", cfg)
	if code != 1 || !strings.Contains(out, "relaybox run: "+cfg+":2: data_dir: cannot open the spool") ||
		!strings.Contains(out, "is a file, not a directory") || strings.Contains(out, "panic") {
		t.Fatalf("exit %d\n%s", code, out)
	}

	addr := freeAddr(t)
	first := writeFile(t, filepath.Join(dir, "first.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	p := startRelay(t, first, addr)
	defer p.stop()
	second := writeFile(t, filepath.Join(dir, "second.toml"), acceptConfig(filepath.Join(dir, "data"), freeAddr(t)))
	out, code = runExit(t, nil, "run", "-config", second)
	if code != 1 || !strings.Contains(out, second+":2: data_dir: the spool") ||
		!strings.Contains(out, "another relaybox already runs on this data_dir") {
		t.Fatalf("second relaybox on one data_dir: exit %d\n%s", code, out)
	}
}

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
	logf, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(logf.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(relayBinary, "run", "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=300000",
		fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
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

// With stderr not the journal (JOURNAL_STREAM names another file), no
// prefixes: a terminal or a redirected log stays plain.
func TestE2EJournalStreamMismatch(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	t.Setenv("JOURNAL_STREAM", "1:1")
	p := startRelay(t, cfg, addr)
	p.stop()
	if strings.Contains(p.Log(), "<6>") || !strings.HasPrefix(p.Log(), "time=") {
		t.Fatalf("prefixes on a stderr that is not the journal:\n%s", p.Log())
	}
}

// check-config -probe tries what run will open and says which step fails:
// a taken port, a missing serial device, a data_dir that cannot be made.
func TestE2ECheckConfigProbe(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	good := writeFile(t, filepath.Join(dir, "good.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	out, code := runExit(t, nil, "check-config", "-probe", "-config", good)
	if code != 0 {
		t.Fatalf("probe of a good config: exit %d\n%s", code, out)
	}
	mustContain(t, out, "listen.smtp[0]", addr+" is free", "data_dir", "is writable", "result: ok")
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("probe did not create data_dir: %v", err)
	}

	busy := takePort(t)
	blocker := writeFile(t, filepath.Join(dir, "a-file"), "x")
	conf := strings.Replace(acceptConfig(filepath.Join(blocker, "data"), busy), "[admin]",
		"[console]\ndevice = \""+filepath.Join(dir, "no-such-tty")+"\"\n[admin]", 1)
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), conf)
	out, code = runExit(t, nil, "check-config", "-probe", "-config", bad)
	if code == 0 {
		t.Fatalf("probe of a bad setup: exit 0\n%s", out)
	}
	t.Log(out)
	for _, want := range []string{
		"listen.smtp[0]", "FAILED: another program already listens on " + busy,
		"data_dir", "FAILED: cannot create",
		"console.device", "no-such-tty",
		"steps failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
}

// A missing LED or serial adapter costs the light or the console, not the
// mail: the relay starts, and says in one line which device and why.
func TestE2EMissingPeripheralsDoNotStopMail(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	tty := filepath.Join(dir, "no-such-tty")
	conf := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), "[admin]",
		"[led]\npin = \"sysfs:relaybox-no-such-led\"\n[console]\ndevice = \""+tty+"\"\n[admin]", 1)
	p := startRelay(t, writeFile(t, filepath.Join(dir, "relaybox.toml"), conf), addr)
	waitLog(t, p, "console: cannot open the device", 1)
	if code := rcptCode(t, addr, "a@campus.test"); code != 250 {
		t.Fatalf("relay without its LED and console: RCPT %d", code)
	}
	p.stop()
	if n := strings.Count(p.Log(), "status LED disabled"); n != 1 {
		t.Fatalf("%d LED lines, want 1:\n%s", n, p.Log())
	}
	mustContain(t, p.Log(), "led.pin sysfs:relaybox-no-such-led", "device="+tty)
}
