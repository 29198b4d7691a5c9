package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// From a pipe: one line in, a bcrypt hash of cost >= 10 out, which the
// config accepts for [[auth.users]] and which matches the password.
func TestHashPasswordFromPipe(t *testing.T) {
	cmd := exec.Command(relayBinary, "hash-password")
	cmd.Stdin = strings.NewReader("s3cret scanner\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	hash := strings.TrimSpace(string(out))
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret scanner")); err != nil {
		t.Fatalf("hash %q does not match: %v", hash, err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost < 10 {
		t.Errorf("cost %d (%v), want >= 10", cost, err)
	}
	if strings.Contains(stderr.String()+string(out), "s3cret") {
		t.Error("the password was printed")
	}

	dir := t.TempDir()
	cfg := writeFile(t, dir+"/r.toml", "data_dir = \""+dir+"\"\n[auth]\nmode = \"users\"\n[[auth.users]]\nname = \"scanner\"\npassword_hash = \""+hash+"\"\n")
	if out, err := exec.Command(relayBinary, "check-config", "-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("check-config refuses the hash: %v\n%s", err, out)
	}

	for _, in := range []string{"", "\n"} {
		cmd := exec.Command(relayBinary, "hash-password")
		cmd.Stdin = strings.NewReader(in)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "empty password") {
			t.Errorf("empty input %q: %v %s", in, err, out)
		}
	}
	if out, err := exec.Command(relayBinary, "hash-password", "secret").CombinedOutput(); err == nil {
		t.Errorf("a password on the command line was taken: %s", out)
	}
}
