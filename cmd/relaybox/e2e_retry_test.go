package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"relaybox/internal/sink"
)

// retryConfig holds a failed upstream back for ten minutes and backs off as
// long: nothing but a manual retry can send mail within the test.
func retryConfig(dataDir, addr, adminAddr string, up *upstreamFixture) string {
	cfg := acceptConfig(dataDir, addr)
	cfg = strings.Replace(cfg, "[admin]\nlisten = \"\"", fmt.Sprintf("[admin]\nlisten = %q", adminAddr), 1)
	return cfg + fmt.Sprintf(`[delivery]
connections = 2
min_backoff = "10m"
max_backoff = "1h"
upstream_hold = "10m"
[[upstream]]
address = %q
tls = "starttls"
ca_file = %q
`, up.sink.Addr(), up.caFile)
}

// The upstream is down, mail is deferred; it comes back and the operator
// retries: the retry dials at once through the upstream's hold and the
// mail arrives within seconds, with the relay's queue ID in the log. The
// retry records no attempt it did not make (no deferred line repeating the
// old "connection refused").
func TestE2ERetryDialsAtOnce(t *testing.T) {
	for _, verb := range []string{"retry-all", "retry"} {
		t.Run(verb, func(t *testing.T) {
			dir := t.TempDir()
			up := startUpstream(t, dir, false, sink.Options{})
			if err := up.sink.Stop(); err != nil {
				t.Fatal(err)
			}
			addr, adminAddr := freeAddr(t), freeAddr(t)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"),
				retryConfig(filepath.Join(dir, "data"), addr, adminAddr, up))
			p := startRelay(t, cfg, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ids := sendPython(t, ctx, addr, 3, 1, "alice@campus.test", 0)
			if len(ids) != 3 {
				t.Fatalf("%d of 3 accepted", len(ids))
			}
			// The first message dials and is refused; the others find
			// the upstream held and are left alone.
			waitLog(t, p, "event=deferred", 1)
			time.Sleep(500 * time.Millisecond)
			deferredBefore := strings.Count(p.Log(), "event=deferred")

			if err := up.sink.Restart(); err != nil {
				t.Fatal(err)
			}
			args := []string{"queue", "retry-all", "-admin", adminAddr}
			if verb == "retry" {
				args = []string{"queue", "retry", ids[0], "-admin", adminAddr}
			}
			start := time.Now()
			if out, err := exec.CommandContext(ctx, relayBinary, args...).CombinedOutput(); err != nil {
				t.Fatalf("relaybox %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			// `retry ID` names one message; the other two were never
			// tried and are still due, so the same pass takes them too.
			want := 3
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			defer wcancel()
			got, err := up.sink.Wait(wctx, want)
			if err != nil {
				t.Fatalf("%d of %d messages arrived within 5s of `relaybox %s` (%v)", len(got), want, verb, err)
			}
			t.Logf("delivered %d messages %s after the retry", len(got), time.Since(start).Round(time.Millisecond))
			if n := strings.Count(p.Log(), "event=deferred"); n != deferredBefore {
				t.Errorf("%d deferred lines after the retry: an attempt recorded without a dial\n%s", n-deferredBefore, p.Log())
			}
			// Item 6: the relay's "queued as" reply is in the sent line.
			waitLog(t, p, "event=sent", want)
			sent := regexp.MustCompile(`event=sent .*reply="250 2\.0\.0 OK: queued as S0000\d\d"`)
			if n := len(sent.FindAllString(p.Log(), -1)); n != want {
				t.Errorf("%d sent lines with the upstream's queue ID, want %d\n%s", n, want, p.Log())
			}
			p.stop()
		})
	}
}
