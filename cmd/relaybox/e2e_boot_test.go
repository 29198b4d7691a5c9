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
	mustContain(t, out, "listen.smtp[0]", addr+" is free", "data_dir", "can be created and written", "result: ok")
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("probe left the data_dir it created behind (it would belong to whoever ran the probe)")
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, code = runExit(t, nil, "check-config", "-probe", "-config", good)
	if code != 0 || !strings.Contains(out, "data") || !strings.Contains(out, "is writable") {
		t.Fatalf("probe of an existing data_dir: exit %d\n%s", code, out)
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
