package console

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

var update = flag.Bool("update", false, "rewrite testdata/console/session.txt from the console's output")

const transcriptPath = "../../testdata/console/session.txt"

// transcriptHeader ends at the first line "----"; the rest of the file is
// the screen, byte for byte after CRLF -> LF.
const transcriptHeader = `# A console session as it appears on a serial terminal, used by
# TestSessionTranscript. Lines after a prompt ("relaybox> " or
# "type yes to delete ...: ") hold what the test types; the rest is the
# console's output. {ID1}.. stand for queue IDs and {GO}, {PLATFORM} for
# the Go version and GOOS/GOARCH. Regenerate with
#   go test ./internal/console/ -run TestSessionTranscript -update
----
`

// inputLine finds typed input in a transcript line.
var inputLine = regexp.MustCompile(`^(?:relaybox> |type yes to delete \S+: )(.*)$`)

// TestSessionTranscript plays the typed lines of the transcript into a
// console over a real spool and compares the whole screen.
func TestSessionTranscript(t *testing.T) {
	f := newFixture(t)
	id1 := f.add("Subject: scan from copier\r\nFrom: copier@lab.example.edu\r\nReceived: from copier (192.168.7.50)\r\n\tby relaybox-lab3 with SMTP", "copier@lab.example.edu", "alice@example.edu", "bob@example.edu")
	id2 := f.add("Subject: toner low", "", "facilities@example.edu")
	id3 := f.add("Subject: old report", "scanner@lab.example.edu", "gone@example.edu", "carol@example.edu")
	f.clk.Add(2 * time.Hour)
	now := f.clk.Now()
	f.update(id1, func(m *spool.Message) {
		m.Attempts, m.NextAttempt, m.LastReply = 3, now.Add(58*time.Minute), "421 4.7.0 try again later"
		for _, at := range []time.Duration{-90 * time.Minute, -30 * time.Minute, -time.Minute} {
			m.History = append(m.History, spool.Attempt{At: now.Add(at), Upstream: upstreamName, Outcome: "deferred", Reply: m.LastReply})
		}
		m.Recipients[1].State, m.Recipients[1].Outcome = spool.RcptDelivered, spool.ParseReply("250 2.1.5 ok")
	})
	f.update(id3, func(m *spool.Message) {
		m.State, m.Attempts, m.LastReply = spool.StateDead, 1, "550 5.1.1 user unknown"
		for i := range m.Recipients {
			m.Recipients[i].State, m.Recipients[i].Outcome = spool.RcptFailed, spool.ParseReply("550 5.1.1 user unknown")
		}
	})
	f.st.UpstreamResult(upstreamName, errors.New("421 4.7.0 try again later"))
	f.event(slog.LevelInfo, "message accepted", slog.String("id", id2), slog.String("from", "<>"))
	f.event(slog.LevelWarn, "upstream deferred", slog.String("id", id1), slog.String("reply", "421 4.7.0 try again later"))
	f.event(slog.LevelInfo, "relaybox started", slog.String("version", "1.0-test"))

	f.opt.Upstream = func(ctx context.Context, report func(name, result string)) error {
		report("upstream", upstreamName+" (tls=starttls)")
		report("dial", "ok (192.0.2.10:587) [12ms]")
		report("starttls", "ok (TLS1.3, verified smtp.example.edu) [40ms]")
		report("auth", "FAILED: 535 5.7.8 authentication credentials invalid")
		return errors.New("1 of 1 upstreams failed the check")
	}
	f.opt.SendTest = func(ctx context.Context, to string) (string, error) {
		return "2.0.0 queued as 0K2Y", nil
	}

	ids := map[string]string{"{ID1}": id1, "{ID2}": id2, "{ID3}": id3,
		"{GO}": runtime.Version(), "{PLATFORM}": runtime.GOOS + "/" + runtime.GOARCH}
	normalise := func(s string) string {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		for k, v := range ids {
			s = strings.ReplaceAll(s, v, k)
		}
		return s
	}
	denormalise := func(s string) string {
		for k, v := range ids {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}

	raw, err := os.ReadFile(transcriptPath)
	if err != nil {
		t.Fatal(err)
	}
	_, want, ok := strings.Cut(string(raw), "\n----\n")
	if !ok {
		t.Fatalf("%s: no ---- line after the header", transcriptPath)
	}
	// Each typed line ends differently, as different terminals send.
	ends := []string{"\r", "\r\n", "\n"}
	var input strings.Builder
	n := 0
	for _, line := range strings.Split(want, "\n") {
		if m := inputLine.FindStringSubmatch(line); m != nil {
			input.WriteString(denormalise(m[1]) + ends[n%len(ends)])
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d typed lines found in %s", n, transcriptPath)
	}

	screen := runSession(t, f.console(), input.String())
	checkTerminalSafe(t, screen)
	got := normalise(screen)
	if strings.Contains(got, "BODY-TEXT") {
		t.Error("the console showed a message body")
	}
	if *update {
		if err := os.WriteFile(transcriptPath, []byte(transcriptHeader+got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("transcript differs (-update rewrites it):\n%s", diff(want, got))
	}
	// What the session did must have happened in the spool.
	if _, err := f.sp.Get(id2); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("%s after delete + yes: %v, want gone", id2, err)
	}
	if m, err := f.sp.Get(id1); err != nil || m.NextAttempt.After(f.clk.Now()) {
		t.Errorf("%s after retry: next %v (now %v), err %v", id1, m.NextAttempt, f.clk.Now(), err)
	}
	if f.kicks == 0 {
		t.Error("retry did not wake the scheduler")
	}
}

// diff shows the first differing lines with some context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		wl, gl := "<end>", "<end>"
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			var b strings.Builder
			for j := max(i-3, 0); j < i; j++ {
				fmt.Fprintf(&b, "  %3d   %s\n", j+1, w[j])
			}
			fmt.Fprintf(&b, "  %3d - %s\n  %3d + %s\n", i+1, wl, i+1, gl)
			return b.String()
		}
	}
	return "(equal)"
}
