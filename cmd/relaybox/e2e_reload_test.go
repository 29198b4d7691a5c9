package main

// Config reload against the real binary: SIGHUP, `relaybox reload` and
// POST /api/reload; a broken file; reload while devices send.

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// reloadConfig is a relay config with the given SMTP addresses, recipient
// domains and extra lines at the end of [listen].
func reloadConfig(dataDir, adminAddr, hostname string, smtpAddrs, domains []string, listenExtra string) string {
	q := func(ss []string) string {
		var out []string
		for _, s := range ss {
			out = append(out, fmt.Sprintf("%q", s))
		}
		return strings.Join(out, ", ")
	}
	return fmt.Sprintf(`hostname = %q
data_dir = %q
[listen]
smtp = [%s]
allowed_networks = ["127.0.0.0/8"]
per_client_rate = 10000
per_client_burst = 10000
%s
[policy]
recipient_domains = [%s]
[admin]
listen = %q
`, hostname, dataDir, q(smtpAddrs), listenExtra, q(domains), adminAddr)
}

// rcptCode is the reply code the relay at addr gives RCPT TO:<to>.
func rcptCode(t *testing.T, addr, to string) int {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := c.Hello("e2e"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("dev@campus.test"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(to)
	if err == nil {
		return 250
	}
	var code int
	fmt.Sscanf(err.Error(), "%d", &code)
	return code
}

func reloadCLI(t *testing.T, adminAddr string) (string, int) {
	t.Helper()
	return runExit(t, nil, "reload", "-admin", adminAddr)
}

// A good reload applies the new policy to the next session, rebinds a
// changed listen address, and names what needs a restart; SIGHUP and the
// CLI do the same.
func TestE2EReloadGood(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr, addr2, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "relaybox.toml")
	writeFile(t, path, reloadConfig(data, adminAddr, "relaybox.e2e.test", []string{addr}, []string{"campus.test"}, ""))
	p := startRelay(t, path, addr)
	defer p.stop()
	if code := rcptCode(t, addr, "a@other.test"); code != 550 {
		t.Fatalf("before reload: other.test got %d, want 550", code)
	}

	// CLI: new domain, new address beside the old one, new hostname.
	writeFile(t, path, reloadConfig(data, adminAddr, "renamed.e2e.test", []string{addr, addr2}, []string{"campus.test", "other.test"}, ""))
	out, code := reloadCLI(t, adminAddr)
	if code != 0 {
		t.Fatalf("reload: exit %d\n%s", code, out)
	}
	mustContain(t, out, "config reloaded from "+path, "restart needed to apply: hostname")
	if code := rcptCode(t, addr, "a@other.test"); code != 250 {
		t.Fatalf("after reload: other.test got %d, want 250", code)
	}
	if code := rcptCode(t, addr2, "a@other.test"); code != 250 {
		t.Fatalf("new listener: other.test got %d, want 250", code)
	}

	// SIGHUP: the old address goes, campus.test goes.
	writeFile(t, path, reloadConfig(data, adminAddr, "renamed.e2e.test", []string{addr2}, []string{"other.test"}, ""))
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded", 2)
	if code := rcptCode(t, addr2, "a@campus.test"); code != 550 {
		t.Fatalf("after SIGHUP: campus.test got %d, want 550", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := smtp.Dial(addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts after it left listen.smtp", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !p.running() {
		t.Fatal("SIGHUP stopped the relay")
	}
	mustContain(t, p.Log(), "SIGHUP: reloading the config", "stopped listening (removed from the config)")
}

// A broken file keeps the running config: the reload says FILE:LINE, the
// log and `relaybox status` show it, and mail still flows; the next good
// reload clears it.
func TestE2EReloadBroken(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr, adminAddr := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "relaybox.toml")
	good := reloadConfig(data, adminAddr, "relaybox.e2e.test", []string{addr}, []string{"campus.test"}, "")
	writeFile(t, path, good)
	p := startRelay(t, path, addr)
	defer p.stop()

	writeFile(t, path, reloadConfig(data, adminAddr, "relaybox.e2e.test", []string{addr}, []string{"*.edu"}, ""))
	out, code := reloadCLI(t, adminAddr)
	wantPos := path + ":10: policy.recipient_domains[0]"
	if code == 0 || !strings.Contains(out, wantPos) || !strings.Contains(out, "running config stays") {
		t.Fatalf("broken reload: exit %d, want non-zero naming %s\n%s", code, wantPos, out)
	}
	// With -config the CLI reads the file itself and stops there.
	if out, code := runExit(t, nil, "reload", "-config", path); code != 2 || !strings.Contains(out, wantPos) ||
		!strings.Contains(out, "daemon was not asked") {
		t.Fatalf("reload -config on a broken file: exit %d\n%s", code, out)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "config reload failed", 2)
	if !p.running() {
		t.Fatal("a broken reload stopped the relay")
	}
	mustContain(t, p.Log(), wantPos)
	if code := rcptCode(t, addr, "a@campus.test"); code != 250 {
		t.Fatalf("after a broken reload: campus.test got %d, want the old policy's 250", code)
	}
	st, code := runExit(t, nil, "status", "-admin", adminAddr)
	if code != 0 || !strings.Contains(st, "reload failed") || !strings.Contains(st, wantPos) {
		t.Fatalf("status after a broken reload (exit %d):\n%s", code, st)
	}
	ev, _ := runExit(t, nil, "log", "-admin", adminAddr)
	mustContain(t, ev, "config reload failed", wantPos)

	// A syntax error too.
	writeFile(t, path, "[listen\n")
	if out, code := reloadCLI(t, adminAddr); code == 0 || !strings.Contains(out, path+":1") {
		t.Fatalf("syntax error: exit %d\n%s", code, out)
	}

	writeFile(t, path, good)
	if out, code := reloadCLI(t, adminAddr); code != 0 {
		t.Fatalf("good reload after a broken one: exit %d\n%s", code, out)
	}
	if st, _ := runExit(t, nil, "status", "-admin", adminAddr); strings.Contains(st, "reload failed") {
		t.Fatalf("a good reload did not clear the error:\n%s", st)
	}
}

// Reloads while devices send: every session finishes and every message
// that got a 250 is in the spool afterwards.
func TestE2EReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr, adminAddr := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "relaybox.toml")
	configs := []string{
		reloadConfig(data, adminAddr, "relaybox.e2e.test", []string{addr}, []string{"campus.test"}, ""),
		reloadConfig(data, adminAddr, "relaybox.e2e.test", []string{addr}, []string{"campus.test", "other.test"},
			"per_client_connections = 40\n[log]\nlevel = \"debug\""),
	}
	writeFile(t, path, configs[0])
	p := startRelay(t, path, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var reloads atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			// Replace, not rewrite in place: a reload never reads half a file.
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte(configs[i%2]), 0o600); err == nil && os.Rename(tmp, path) == nil {
				if i%3 == 0 {
					_ = p.cmd.Process.Signal(syscall.SIGHUP)
				} else if _, code := runExit(t, nil, "reload", "-admin", adminAddr); code != 0 {
					t.Errorf("reload %d failed", i)
				}
				reloads.Add(1)
			}
		}
	}()
	const count = 200
	ids := sendPython(t, ctx, addr, count, 8, "alice@campus.test", 2000)
	close(stop)
	wg.Wait()
	p.stop()
	if reloads.Load() < 5 {
		t.Fatalf("only %d reloads during the load", reloads.Load())
	}
	if len(ids) != count {
		t.Fatalf("%d of %d messages got a 250 across %d reloads", len(ids), count, reloads.Load())
	}
	sp, err := spool.Open(filepath.Join(data, "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for n, id := range ids {
		if _, err := sp.Get(id); err != nil {
			t.Errorf("message %d (%s) accepted but not in the spool: %v", n, id, err)
		}
	}
	t.Logf("%d messages, %d reloads", len(ids), reloads.Load())
}
