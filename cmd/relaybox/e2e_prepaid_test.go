package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"relaybox/internal/sink"
)

// stallingUpstream is a TLS upstream whose first transactions hang after
// the body, before the final reply, until release: the relay is then
// mid-send. It counts the bodies it has been offered.
type stallingUpstream struct {
	*upstreamFixture
	mu      sync.Mutex
	offered int
	stall   int // how many transactions hang
	gate    chan struct{}
	once    sync.Once
}

func startStalling(t *testing.T, dir string, stall int) *stallingUpstream {
	u := &stallingUpstream{stall: stall, gate: make(chan struct{})}
	u.upstreamFixture = startUpstream(t, dir, false, sink.Options{Reject: func(stage string) error {
		if stage != "data" {
			return nil
		}
		u.mu.Lock()
		u.offered++
		hang := u.offered <= u.stall
		u.mu.Unlock()
		if hang {
			<-u.gate
		}
		return nil
	}})
	t.Cleanup(u.release)
	return u
}

func (u *stallingUpstream) release() { u.once.Do(func() { close(u.gate) }) }

func (u *stallingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.offered
}

func (u *stallingUpstream) waitOffered(t *testing.T, n int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); u.count() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("upstream offered %d bodies within %v, want %d", u.count(), within, n)
		}
	}
}

// prepaidConfig: one connection to the upstream and a backoff long enough
// to tell "waits one step" from "sent again at once".
func prepaidConfig(dir, addr string, up *stallingUpstream) string {
	return acceptConfig(filepath.Join(dir, "data"), addr) + fmt.Sprintf(`[delivery]
connections = 1
min_backoff = "40s"
max_backoff = "1m"
[[upstream]]
address = %q
tls = "starttls"
ca_file = %q
`, up.sink.Addr(), up.caFile)
}

// midSend is a relay (prepaidConfig) whose first attempt of alice's
// message is under way: the stalling upstream holds its reply.
type midSend struct {
	p         *relayProc
	up        *stallingUpstream
	cfg, addr string
}

func startMidSend(t *testing.T) midSend {
	t.Helper()
	dir := t.TempDir()
	up := startStalling(t, dir, 1)
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), prepaidConfig(dir, addr, up))
	p := startRelay(t, cfg, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ids := sendPython(t, ctx, addr, 1, 1, "alice@campus.test", 2000); len(ids) != 1 {
		t.Fatalf("accepted %d of 1", len(ids))
	}
	up.waitOffered(t, 1, 20*time.Second)
	return midSend{p: p, up: up, cfg: cfg, addr: addr}
}

// The first attempt is prepaid at accept (no write of its own before it is
// made), and still costs one backoff step when relaybox dies mid-send: the
// restarted relay does not send the message again at once, so a message
// that kills the relay cannot loop.
func TestE2EKilledMidFirstAttemptWaitsBackoff(t *testing.T) {
	r := startMidSend(t)
	p, up, cfg, addr := r.p, r.up, r.cfg, r.addr
	p.kill() // mid-send: the upstream holds its reply
	up.release()

	p = startRelay(t, cfg, addr)
	time.Sleep(6 * time.Second)
	if n := up.count(); n != 1 {
		t.Fatalf("the upstream was offered the message %d times within 6s of the restart; want 1 (one backoff step of 40s)", n)
	}
	mustContain(t, p.Log(), "first attempt may have been under way")
	p.stop()
}

// A clean stop charges nothing: a message whose first attempt had not
// started is sent at once after the restart, not a backoff step later.
func TestE2ECleanStopKeepsFirstAttemptDue(t *testing.T) {
	r := startMidSend(t)
	p, up, cfg, addr := r.p, r.up, r.cfg, r.addr
	// alice's message holds the one connection; bob's waits, never tried.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ids := sendPython(t, ctx, addr, 1, 1, "bob@campus.test", 2000); len(ids) != 1 {
		t.Fatalf("accepted %d of 1", len(ids))
	}
	p.stop()
	up.release()

	p = startRelay(t, cfg, addr)
	defer p.stop()
	// bob's message within a few seconds; alice's was interrupted
	// mid-send by the stop and waits its backoff step.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		bob := false
		for _, m := range up.sink.Messages() {
			for _, to := range m.To {
				bob = bob || to == "bob@campus.test"
			}
		}
		if bob {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the never-tried message was not sent within 20s of a clean restart (offered %d)", up.count())
		}
	}
}
