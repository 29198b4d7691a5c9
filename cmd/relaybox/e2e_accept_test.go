package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

func acceptConfig(dir, addr string) string {
	return fmt.Sprintf(`hostname = "relaybox.e2e.test"
data_dir = %q
[listen]
smtp = [%q]
allowed_networks = ["127.0.0.0/8"]
max_message_size = "10MiB"
# The tests send hundreds of messages a second from one address; the
# per-client flood limit (50/s by default) has transcripts of its own.
per_client_rate = 10000
per_client_burst = 10000
[policy]
recipient_domains = ["campus.test", "*.dept.campus.test"]
[admin]
listen = ""
`, dir, addr)
}

// Every message that got a 250 is still in the spool after the process is
// killed with SIGKILL right after the replies, and restarted.
func TestE2EAcceptedMailSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	p := startRelay(t, cfg, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const count = 40
	ids := sendPython(t, ctx, addr, count, 8, "alice@campus.test", 3000)

	// One more with curl, the other client named in the issue.
	msg := writeFile(t, filepath.Join(dir, "curl.eml"),
		"Subject: from curl\r\nMessage-ID: <curl@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nsent by curl\r\n")
	out, err := exec.CommandContext(ctx, "curl", "-sS", "-v", "--url", "smtp://"+addr,
		"--mail-from", "dev@campus.test", "--mail-rcpt", "bob@a.dept.campus.test",
		"--upload-file", msg).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	p.kill()

	if len(ids) != count {
		t.Fatalf("only %d of %d messages got a 250", len(ids), count)
	}
	curlID := ""
	if i := strings.Index(string(out), "queued as "); i >= 0 {
		curlID = strings.Fields(string(out)[i+len("queued as "):])[0]
	}
	if curlID == "" {
		t.Fatalf("no queue id in curl's transcript:\n%s", out)
	}
	for _, id := range ids {
		if !strings.Contains(p.Log(), "id="+id) {
			t.Errorf("no log line names queue id %s", id)
		}
	}

	// Restart: recovery runs; then a clean stop, and we read the spool.
	p2 := startRelay(t, cfg, addr)
	p2.stop()
	sp, err := spool.Open(filepath.Join(dir, "data", "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := sp.Check(); err != nil {
		t.Fatalf("spool check: %v", err)
	}
	for n, id := range ids {
		m, err := sp.Get(id)
		if err != nil {
			t.Errorf("message %d (%s) acknowledged but not in the spool: %v", n, id, err)
			continue
		}
		body := spoolBody(t, sp, id)
		mustContain(t, body, fmt.Sprintf("message number %d\r\n", n), "Received: from e2e-client ([127.0.0.1])")
		if m.From != "dev@campus.test" || len(m.Recipients) != 1 || m.Recipients[0].Address != "alice@campus.test" {
			t.Errorf("envelope of %s: %+v", id, m)
		}
	}
	if _, err := sp.Get(curlID); err != nil {
		t.Errorf("curl's message %s not in the spool: %v", curlID, err)
	}
	if st := sp.Stats(); st.Messages != count+1 {
		t.Errorf("spool holds %d messages, want %d", st.Messages, count+1)
	}
}

func spoolBody(t *testing.T, sp *spool.Spool, id string) string {
	t.Helper()
	rc, err := sp.OpenBody(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readAll(t, rc)
}

// A second relaybox on the same data_dir fails fast and says why.
func TestE2ESecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr))
	p := startRelay(t, cfg, addr)
	defer p.stop()
	cfg2 := writeFile(t, filepath.Join(dir, "second.toml"), acceptConfig(filepath.Join(dir, "data"), freeAddr(t)))
	out, err := exec.Command(relayBinary, "run", "-config", cfg2).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second instance: err %v, want exit 1\n%s", err, out)
	}
	mustContain(t, string(out), "locked")
}

// check-config: exit 2 with the key named for a bad file; the effective
// config on stdout for a good one; defaults without a file.
func TestE2ECheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, filepath.Join(dir, "bad.toml"), "[listen]\nsmpt = [\"127.0.0.1:25\"]\n")
	out, err := exec.Command(relayBinary, "check-config", "-config", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("bad config: err %v, want exit 2\n%s", err, out)
	}
	mustContain(t, string(out), "smpt", ":2")

	good := writeFile(t, filepath.Join(dir, "good.toml"), acceptConfig(filepath.Join(dir, "data"), "127.0.0.1:2525"))
	out, err = exec.Command(relayBinary, "check-config", "-config", good).CombinedOutput()
	if err != nil {
		t.Fatalf("good config: %v\n%s", err, out)
	}
	mustContain(t, string(out), `recipient_domains = ["campus.test", "*.dept.campus.test"]`, "config OK")

	out, err = exec.Command(relayBinary, "check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("defaults: %v\n%s", err, out)
	}
	mustContain(t, string(out), `"127.0.0.1:2525"`, "relaybox-data", "built-in defaults")

	out, err = exec.Command(relayBinary, "no-such-command").CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("unknown command: err %v, want exit 2\n%s", err, out)
	}
}

func TestE2EVersion(t *testing.T) {
	out, err := exec.Command(relayBinary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "relaybox ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

// Without -config the relay runs on the built-in defaults in the working
// directory and says that mail is held (no upstream).
func TestE2EDefaultsHoldMail(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(relayBinary, "run")
	cmd.Dir = dir
	p := &relayProc{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitEr = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), "relaybox started") && time.Now().Before(deadline) {
		if !p.running() {
			// Port 2525 may be taken on a shared machine; that is not this
			// test's subject.
			if strings.Contains(p.Log(), "another program already listens") {
				t.Skip("127.0.0.1:2525 is in use here")
			}
			t.Fatalf("exited: %v\n%s", p.waitEr, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	mustContain(t, p.Log(), "127.0.0.1:2525", "no [[upstream]] configured")
	if _, err := os.Stat(filepath.Join(dir, "relaybox-data", "spool.db")); err != nil {
		t.Errorf("spool not in ./relaybox-data: %v", err)
	}
}
