package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/sendmail"
	"relaybox/internal/sink"
)

// Scripts on a lab PC call sendmail: a shell script with -t through a link
// named sendmail, and Python's subprocess with recipients as arguments.
// Both reach the upstream through the daemon's spool; Bcc is gone from
// the message that arrives but its recipient got it.
func TestE2ESendmailRealCallers(t *testing.T) {
	dir := t.TempDir()
	fw := startForwarding(t, dir, sink.Options{})
	up, cfg := fw.up, fw.cfg

	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(relayBinary, filepath.Join(bin, "sendmail")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A cron-style script: sendmail found on PATH, message from a here-doc,
	// a lone "." line in the text that -oi keeps.
	script := writeFile(t, filepath.Join(dir, "nightly.sh"), `#!/bin/sh
set -e
sendmail -t -oi -odi -oem -B8BITMIME <<'MAIL'
To: Alice <alice@campus.test>
Cc: bob@x.dept.campus.test
Bcc: carol@campus.test
Subject: nightly backup report

backup finished
.
still the report
MAIL
echo "sendmail exit $?"
`)
	cmd := exec.CommandContext(ctx, "sh", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "RELAYBOX_CONFIG="+cfg)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sendmail exit 0") {
		t.Fatalf("script: %v\n%s", err, out)
	}

	// Python's subprocess, recipients and sender as arguments, the config
	// named with -config.
	py := `import subprocess, sys
msg = b"Subject: instrument run 42\n\nrun complete\n"
r = subprocess.run([sys.argv[1], "sendmail", "-config", sys.argv[2], "-f", "hplc@campus.test", "-F", "HPLC 2", "-i", "dave@campus.test"],
                   input=msg, capture_output=True)
print("exit", r.returncode, r.stderr.decode().strip())
`
	out, err = exec.CommandContext(ctx, "python3", "-c", py, relayBinary, cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exit 0") {
		t.Fatalf("python: %v\n%s", err, out)
	}

	got, err := up.sink.Wait(ctx, 2)
	if err != nil {
		t.Fatalf("upstream got %d of 2: %v", len(got), err)
	}
	var report, run *sink.Message
	for i := range got {
		switch {
		case bytes.Contains(got[i].Body, []byte("nightly backup report")):
			report = &got[i]
		case bytes.Contains(got[i].Body, []byte("instrument run 42")):
			run = &got[i]
		}
	}
	if report == nil || run == nil {
		t.Fatalf("messages missing: %+v", got)
	}
	if want := "alice@campus.test,bob@x.dept.campus.test,carol@campus.test"; strings.Join(report.To, ",") != want {
		t.Errorf("-t recipients %v, want %s", report.To, want)
	}
	if bytes.Contains(bytes.ToLower(report.Body), []byte("bcc:")) || bytes.Contains(report.Body, []byte("carol")) {
		t.Errorf("Bcc leaked into the message:\n%s", report.Body)
	}
	// Without -f, the sender is the calling user at the relay's hostname.
	me := sendmail.DefaultSender(currentUser(), "relaybox.e2e.test")
	mustContain(t, string(report.Body), "From: "+me+"\r\n", "\r\n.\r\nstill the report\r\n")
	if report.From != me {
		t.Errorf("default sender %q", report.From)
	}
	if run.From != "hplc@campus.test" || strings.Join(run.To, ",") != "dave@campus.test" {
		t.Errorf("python envelope: %q -> %v", run.From, run.To)
	}
	mustContain(t, string(run.Body), `From: "HPLC 2" <hplc@campus.test>`+"\r\n", "run complete\r\n")
}

// What scripts must be able to tell apart: try later (75), refused (67),
// bad command line (64); never 0 unless the daemon took the message.
func TestE2ESendmailExitCodes(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr))

	run := func(stdin string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, relayBinary, append([]string{"sendmail"}, args...)...)
		cmd.Env = append(os.Environ(), "RELAYBOX_CONFIG="+cfg)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	oneLine := func(s string) {
		t.Helper()
		if strings.Count(s, "\n") != 1 {
			t.Errorf("want one line on stderr, got %q", s)
		}
	}

	// The daemon is not running: 75, and the reason says what to check.
	code, msg := run("Subject: x\n\nbody\n", "alice@campus.test")
	if code != 75 || !strings.Contains(msg, "try again later") || !strings.Contains(msg, addr) {
		t.Errorf("daemon down: exit %d %q, want 75 naming %s", code, msg, addr)
	}
	oneLine(msg)

	code, msg = run("", "-t")
	if code != 65 || !strings.Contains(msg, "no recipients") {
		t.Errorf("-t without recipients: exit %d %q, want 65", code, msg)
	}
	code, msg = run("", "-bs")
	if code != 64 {
		t.Errorf("-bs: exit %d %q, want 64", code, msg)
	}
	code, msg = run("", "-config", filepath.Join(dir, "missing.toml"), "alice@campus.test")
	if code != 78 {
		t.Errorf("missing config: exit %d %q, want 78", code, msg)
	}

	p := startRelay(t, cfg, addr)
	code, msg = run("Subject: x\n\nbody\n", "alice@campus.test", "mallory@elsewhere.example")
	if code != 67 || !strings.Contains(msg, "mallory@elsewhere.example") {
		t.Errorf("refused recipient: exit %d %q, want 67 naming it", code, msg)
	}
	oneLine(msg)
	code, msg = run("Subject: x\n\nbody\n", "alice@campus.test")
	if code != 0 || msg != "" {
		t.Errorf("accepted: exit %d %q, want 0 and silence", code, msg)
	}
	// All or nothing: the refused transaction left no message for alice.
	if n := strings.Count(p.Log(), "event=accepted"); n != 1 {
		t.Errorf("%d messages accepted, want exactly 1 (the refused transaction must send nothing)\n%s", n, p.Log())
	}
}
