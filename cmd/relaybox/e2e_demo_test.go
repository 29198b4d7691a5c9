package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `relaybox demo` runs the whole path: the README's curl line goes through
// the real relay and arrives at the in-process upstream over STARTTLS.
func TestE2EDemo(t *testing.T) {
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(relayBinary, "demo", "-listen", addr, "-data", filepath.Join(dir, "data"), "-admin", admin)
	p := &relayProc{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitEr = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", p.Log())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.Log(), "Press Ctrl-C") {
		if time.Now().After(deadline) || !p.running() {
			t.Fatalf("demo did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustContain(t, p.Log(), "curl --url smtp://"+addr)

	msg := writeFile(t, filepath.Join(dir, "msg.txt"), "Subject: hello from a scanner\r\n\r\nscan attached\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--url", "smtp://"+addr, "--mail-from", "scanner@lab.example.edu",
		"--mail-rcpt", "someone@example.edu", "--upload-file", msg).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	for !strings.Contains(p.Log(), "=== end of message ===") {
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatal("the demo upstream never printed the message")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustContain(t, p.Log(), "upstream received a message (TLS: true) from <scanner@lab.example.edu> to [someone@example.edu]",
		"Subject: hello from a scanner\r\n", "Received: from ")

	// The CLI reads the running demo through its admin API.
	st, err := exec.Command(relayBinary, "status", "-admin", admin).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, st)
	}
	if !regexp.MustCompile(`(?mi)^state:\s+ok\b`).Match(st) {
		t.Errorf("status does not say ok: %q", st)
	}

	// A recipient outside example.edu is refused: the demo is no open relay.
	out, err = exec.CommandContext(ctx, "curl", "-sS", "--url", "smtp://"+addr, "--mail-from", "scanner@lab.example.edu",
		"--mail-rcpt", "someone@outside.test", "--upload-file", msg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "550") {
		t.Fatalf("outside recipient: err %v\n%s", err, out)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop on interrupt")
	}
	if p.waitEr != nil {
		t.Fatalf("demo exited with %v", p.waitEr)
	}
}
