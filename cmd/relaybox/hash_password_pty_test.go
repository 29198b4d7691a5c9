//go:build linux

package main

import (
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/bcrypt"
)

// On a terminal it prompts twice without echo; a mismatch prints no hash.
func TestHashPasswordOnTerminal(t *testing.T) {
	run := func(first, second string) (string, error) {
		t.Helper()
		cmd := exec.Command(relayBinary, "hash-password")
		f, err := pty.Start(cmd)
		if err != nil {
			t.Skipf("no pty: %v", err)
		}
		defer f.Close()
		var mu sync.Mutex
		var out strings.Builder
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			b := make([]byte, 256)
			for {
				n, err := f.Read(b)
				mu.Lock()
				out.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		// Type only once the prompt is there: echo is off from then on.
		waitFor := func(prompt string) {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				ok := strings.Contains(out.String(), prompt)
				mu.Unlock()
				if ok {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("no prompt %q", prompt)
		}
		waitFor("Password: ")
		io.WriteString(f, first+"\r")
		waitFor("Again: ")
		io.WriteString(f, second+"\r")
		err = cmd.Wait()
		select { // the reader ends at EIO once the last output is read
		case <-drained:
		case <-time.After(30 * time.Second):
			t.Fatal("pty output never ended")
		}
		mu.Lock()
		defer mu.Unlock()
		return out.String(), err
	}
	out, err := run("pw-typed-1", "pw-typed-1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "pw-typed") {
		t.Errorf("the password was echoed:\n%s", out)
	}
	if !strings.Contains(out, "Password: ") || !strings.Contains(out, "Again: ") {
		t.Errorf("prompts missing:\n%q", out)
	}
	i := strings.Index(out, "$2")
	if i < 0 {
		t.Fatalf("no hash in %q", out)
	}
	hash := strings.TrimSpace(out[i:])
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("pw-typed-1")); err != nil {
		t.Errorf("hash does not match: %v", err)
	}

	out, err = run("pw-one", "pw-two")
	if err == nil || strings.Contains(out, "$2") || !strings.Contains(out, "differ") {
		t.Errorf("mismatch: %v\n%s", err, out)
	}
}
