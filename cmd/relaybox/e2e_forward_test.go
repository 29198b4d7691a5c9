package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
	"relaybox/internal/spool"
)

// upstreamFixture is a real TLS upstream on 127.0.0.1 with a certificate
// made for this test, and the CA file relaybox must trust to reach it.
type upstreamFixture struct {
	sink   *sink.Sink
	caFile string
}

func startUpstream(t *testing.T, dir string, implicit bool, opt sink.Options) *upstreamFixture {
	t.Helper()
	cert, err := selfsign.New([]string{"localhost", "127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opt.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	opt.Implicit = implicit
	s, err := sink.Start("127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ca := writeFile(t, filepath.Join(dir, fmt.Sprintf("upstream-%d.pem", time.Now().UnixNano())), string(cert.CertPEM))
	return &upstreamFixture{sink: s, caFile: ca}
}

// forwarding is what most end-to-end tests start from: a TLS upstream,
// and a relay (config and data under dir) forwarding to it over STARTTLS.
type forwarding struct {
	up    *upstreamFixture
	addr  string // the relay's SMTP address
	cfg   string // the relay's config file
	relay *relayProc
}

func startForwarding(t *testing.T, dir string, opt sink.Options) forwarding {
	t.Helper()
	f := forwarding{up: startUpstream(t, dir, false, opt), addr: freeAddr(t)}
	f.cfg = writeFile(t, filepath.Join(dir, "relaybox.toml"),
		forwardConfig(filepath.Join(dir, "data"), f.addr, f.up.sink.Addr(), "starttls", f.up.caFile, ""))
	f.relay = startRelay(t, f.cfg, f.addr)
	return f
}

// forwardConfig is acceptConfig plus one upstream and quick retries.
func forwardConfig(dataDir, addr, upstream, tlsMode, caFile, extra string) string {
	return acceptConfig(dataDir, addr) + fmt.Sprintf(`[delivery]
connections = 2
min_backoff = "1s"
max_backoff = "2s"
upstream_hold = "1s"
[[upstream]]
address = %q
tls = %q
ca_file = %q
%s`, upstream, tlsMode, caFile, extra)
}

// stripReceived removes the first header field (our Received line, folded
// over three lines) so the rest can be compared byte for byte.
func stripReceived(t *testing.T, body []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(body, []byte("Received: from ")) {
		t.Fatalf("message does not start with our Received header:\n%s", body)
	}
	rest := body
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		rest = rest[i+2:]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			return rest
		}
	}
}

func TestE2EForwardSTARTTLSAndImplicitTLS(t *testing.T) {
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			up := startUpstream(t, dir, mode == "tls", sink.Options{})
			addr := freeAddr(t)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"),
				forwardConfig(filepath.Join(dir, "data"), addr, up.sink.Addr(), mode, up.caFile, ""))
			p := startRelay(t, cfg, addr)

			// curl sends a message with bare-LF-free CRLF text, dot lines
			// and 8-bit bytes; it must arrive identical after our Received.
			orig := "Subject: scan from curl\r\nMessage-ID: <curl-1@campus.test>\r\n" +
				"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nFrom: <scanner@campus.test>\r\n\r\n" +
				"line one\r\n.leading dot\r\n..two dots\r\n\xe9t\xe9 8-bit\r\n" + strings.Repeat(strings.Repeat("z", 76)+"\r\n", 100)
			msg := writeFile(t, filepath.Join(dir, "m.eml"), orig)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--url", "smtp://"+addr,
				"--mail-from", "scanner@campus.test", "--mail-rcpt", "alice@campus.test",
				"--mail-rcpt", "bob@x.dept.campus.test", "--upload-file", msg).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			ids := sendPython(t, ctx, addr, 10, 4, "carol@campus.test", 2000)
			if len(ids) != 10 {
				t.Fatalf("python: %d of 10 accepted", len(ids))
			}
			got, err := up.sink.Wait(ctx, 11)
			if err != nil {
				t.Fatalf("upstream got %d of 11 messages: %v", len(got), err)
			}
			var curlMsg *sink.Message
			for i, m := range got {
				if !m.TLS {
					t.Errorf("message reached the upstream without TLS")
				}
				if bytes.Contains(m.Body, []byte("scan from curl")) {
					curlMsg = &got[i]
				}
			}
			if curlMsg == nil {
				t.Fatal("curl's message did not arrive")
			}
			if b := stripReceived(t, curlMsg.Body); string(b) != orig {
				t.Errorf("body changed on the way:\n got %q\nwant %q", b, orig)
			}
			if curlMsg.From != "scanner@campus.test" || strings.Join(curlMsg.To, ",") != "alice@campus.test,bob@x.dept.campus.test" {
				t.Errorf("envelope: from %q to %v", curlMsg.From, curlMsg.To)
			}
			waitLog(t, p, `event=sent`, 11)
			p.stop()
			assertSpoolEmpty(t, filepath.Join(dir, "data", "spool.db"))
		})
	}
}

// An upstream whose certificate we do not trust, or whose name is wrong,
// gets nothing: not MAIL, not the body, nothing in clear. The message is
// deferred with a reason a technician understands.
func TestE2EUntrustedUpstreamDefers(t *testing.T) {
	cases := []struct {
		name, extra, want string
		otherCA           bool
	}{
		{"unknown authority", "", "certificate signed by unknown authority", true},
		{"wrong name", `server_name = "relay.campus.test"`, `not for the expected server_name`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			up := startUpstream(t, dir, false, sink.Options{})
			ca := up.caFile
			if c.otherCA {
				other, err := selfsign.New([]string{"127.0.0.1"}, time.Now(), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				ca = writeFile(t, filepath.Join(dir, "other.pem"), string(other.CertPEM))
			}
			addr := freeAddr(t)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"),
				forwardConfig(filepath.Join(dir, "data"), addr, up.sink.Addr(), "starttls", ca, c.extra))
			p := startRelay(t, cfg, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ids := sendPython(t, ctx, addr, 1, 1, "alice@campus.test", 0)
			if len(ids) != 1 {
				t.Fatal("not accepted")
			}
			waitLog(t, p, "event=deferred", 1)
			mustContain(t, p.Log(), c.want)
			if n := len(up.sink.Messages()); n != 0 {
				t.Fatalf("the untrusted upstream received %d messages", n)
			}
			p.stop()
			sp, err := spool.Open(filepath.Join(dir, "data", "spool.db"), spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			for _, id := range ids {
				m, err := sp.Get(id)
				if err != nil {
					t.Fatalf("deferred message lost: %v", err)
				}
				if m.Attempts < 1 || !strings.Contains(m.LastReply, c.want) {
					t.Errorf("attempts %d, last reply %q", m.Attempts, m.LastReply)
				}
			}
		})
	}
}

// SIGKILL in the middle of forwarding a batch, then restart: every message
// arrives; duplicates only for deliveries in flight at the kill.
func TestE2EKillDuringForwarding(t *testing.T) {
	dir := t.TempDir()
	// A slow upstream (30 ms per message) so the kill lands mid-batch.
	up := startUpstream(t, dir, false, sink.Options{Reject: func(stage string) error {
		if stage == "data" {
			time.Sleep(30 * time.Millisecond)
		}
		return nil
	}})
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"),
		forwardConfig(filepath.Join(dir, "data"), addr, up.sink.Addr(), "starttls", up.caFile, ""))
	p := startRelay(t, cfg, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const count = 120
	ids := sendPython(t, ctx, addr, count, 8, "alice@campus.test", 500)
	if len(ids) != count {
		t.Fatalf("%d of %d accepted", len(ids), count)
	}
	if _, err := up.sink.Wait(ctx, 30); err != nil {
		t.Fatal(err)
	}
	p.kill()
	before := len(up.sink.Messages())

	p2 := startRelay(t, cfg, addr)
	subj := regexp.MustCompile(`Subject: e2e message (\d+)\r\n`)
	deadline := time.Now().Add(60 * time.Second)
	var seen map[string]int
	for time.Now().Before(deadline) {
		seen = map[string]int{}
		for _, m := range up.sink.Messages() {
			if s := subj.FindSubmatch(m.Body); s != nil {
				seen[string(s[1])]++
			}
		}
		if len(seen) == count {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(seen) != count {
		t.Fatalf("only %d of %d distinct messages arrived", len(seen), count)
	}
	// A message whose 250 was in flight at the kill is retried after its
	// recorded backoff (max_backoff 2s): give it time to arrive again.
	time.Sleep(3 * time.Second)
	dups := len(up.sink.Messages()) - count
	// At most one message per upstream connection can be in flight.
	t.Logf("killed after %d deliveries; %d duplicate(s) after restart (allowed: in-flight at the kill, at most 2)", before, dups)
	if dups > 2 {
		t.Errorf("%d duplicates: more than the 2 deliveries that can be in flight", dups)
	}
	p2.stop()
	assertSpoolEmpty(t, filepath.Join(dir, "data", "spool.db"))
}

// waitLog waits until the relay's log holds n lines containing sub.
func waitLog(t *testing.T, p *relayProc, sub string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Count(p.Log(), sub) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited for %d log lines with %q\n%s", n, sub, p.Log())
}

func assertSpoolEmpty(t *testing.T, path string) {
	t.Helper()
	sp, err := spool.Open(path, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if st := sp.Stats(); st.Messages != 0 || st.Dead != 0 {
		t.Errorf("spool not empty after delivery: %+v", st)
	}
	if err := sp.Check(); err != nil {
		t.Errorf("spool check: %v", err)
	}
}
