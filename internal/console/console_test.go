package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// lineCount counts output lines between the command's echo and the next
// prompt.
func commandOutput(t *testing.T, screen, cmd string) []string {
	t.Helper()
	_, after, ok := strings.Cut(screen, prompt+cmd+"\r\n")
	if !ok {
		t.Fatalf("no %q in:\n%s", cmd, screen)
	}
	body, _, _ := strings.Cut(after, prompt)
	return strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n")
}

func TestQueueListIsBounded(t *testing.T) {
	f := newFixture(t)
	for i := range 25 {
		f.add("Subject: page", "copier@lab.example.edu", fmt.Sprintf("user%d@example.edu", i))
	}
	for _, m := range must(f.sp.List(spool.StateQueued))[:23] {
		f.update(m.ID, func(m *spool.Message) { m.State = spool.StateDead })
	}
	screen := runSession(t, f.console(), "queue\rdead\rexit\r")
	checkTerminalSafe(t, screen)
	q := commandOutput(t, screen, "queue")
	// Header, 2 rows, no "more".
	if len(q) != 3 || strings.Contains(screen[:strings.Index(screen, "relaybox> dead")], "more") {
		t.Errorf("queue of 2: %q", q)
	}
	d := commandOutput(t, screen, "dead")
	if len(d) != 1+maxRows+1 {
		t.Errorf("dead of 23 printed %d lines, want header + %d rows + 1:\n%s", len(d), maxRows, strings.Join(d, "\n"))
	}
	if last := d[len(d)-1]; !strings.HasPrefix(last, "... 3 more of 23: `relaybox queue dead -after ") {
		t.Errorf("last line %q", last)
	}
	// Oldest first: the first row is the first message added.
	if !strings.Contains(d[1], "user0@example.edu") {
		t.Errorf("first row %q, want the oldest message", d[1])
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A device can put anything in a header; queue show bounds it and keeps
// escape sequences off the operator's terminal.
func TestShowBoundsAndSanitisesHeaders(t *testing.T) {
	f := newFixture(t)
	var h strings.Builder
	h.WriteString("Subject: \x1b[2J\x1b]0;pwned\x07 \xc2\x9b31m red\r\n")
	for i := range 60 {
		fmt.Fprintf(&h, "X-Filler-%d: %s\r\n", i, strings.Repeat("z", 10))
	}
	id := f.add(strings.TrimSuffix(h.String(), "\r\n"), "copier@lab.example.edu", "a@example.edu")
	screen := runSession(t, f.console(), "queue show "+strings.ToLower(id)+"\rexit\r")
	checkTerminalSafe(t, screen)
	if !strings.Contains(screen, "Subject: ?[2J?]0;pwned? ?31m red") {
		t.Errorf("hostile subject not neutralised:\n%s", screen)
	}
	if !strings.Contains(screen, "... 21 more header lines; `relaybox queue show "+id+"` has them all") {
		t.Errorf("headers not bounded:\n%s", screen)
	}
	if strings.Contains(screen, "BODY-TEXT") {
		t.Error("body shown")
	}
}

func TestLogIsBounded(t *testing.T) {
	f := newFixture(t)
	for i := range 150 {
		f.event(slog.LevelInfo, fmt.Sprintf("event %d", i))
	}
	screen := runSession(t, f.console(), "log\rlog 100\rlog 101\rlog x\rexit\r")
	if got := commandOutput(t, screen, "log"); len(got) != defaultLog || !strings.HasSuffix(got[len(got)-1], "event 149") {
		t.Errorf("log: %d lines ending %q", len(got), got[len(got)-1])
	}
	if got := commandOutput(t, screen, "log 100"); len(got) != 100 || !strings.HasSuffix(got[0], "event 50") {
		t.Errorf("log 100: %d lines starting %q", len(got), got[0])
	}
	for _, cmd := range []string{"log 101", "log x"} {
		if got := commandOutput(t, screen, cmd); len(got) != 1 || !strings.HasPrefix(got[0], "usage: log [N]") {
			t.Errorf("%s: %q", cmd, got)
		}
	}
}

func TestHintsAndMissingFeatures(t *testing.T) {
	f := newFixture(t) // no Upstream, no SendTest
	screen := runSession(t, f.console(), "QUEUE SHOW 00000000000ZZ\rqueue frob\rqueue show\rupstream\rsend-test a@example.edu\rhelp me\rnope\r\r   \rexit\r")
	for cmd, want := range map[string]string{
		"QUEUE SHOW 00000000000ZZ": "no message 00000000000ZZ in the queue or the dead letters (type queue or dead)",
		"queue frob":               "usage: " + queueUsage,
		"queue show":               "usage: " + queueUsage,
		"upstream":                 "the upstream check is not available: no [[upstream]] is configured",
		"send-test a@example.edu":  "send-test is not available: the relay has no listener to send through",
		"nope":                     `unknown command "nope": type help for the list`,
	} {
		if got := commandOutput(t, screen, cmd); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
	// Blank lines just prompt again.
	if !strings.Contains(screen, "\r\n"+prompt+"\r\n"+prompt+"   \r\n"+prompt+"exit") {
		t.Errorf("blank lines:\n%q", screen)
	}
}

// screen is the technician's side of a session: what they type goes to
// keys, what the console writes is read from display into seen.
type screen struct {
	t     *testing.T
	keys  io.Writer
	chunk chan string
	seen  strings.Builder
}

func newScreen(t *testing.T, keys io.Writer, display io.Reader) *screen {
	p := &screen{t: t, keys: keys, chunk: make(chan string, 64)}
	go func() {
		b := make([]byte, 1024)
		for {
			n, err := display.Read(b)
			if n > 0 {
				p.chunk <- string(b[:n])
			}
			if err != nil {
				close(p.chunk)
				return
			}
		}
	}()
	return p
}

// until reads the screen until it holds want after what was already seen.
func (p *screen) until(want string) string {
	p.t.Helper()
	timeout := time.After(5 * time.Second)
	start := p.seen.Len()
	for {
		if i := strings.Index(p.seen.String()[start:], want); i >= 0 {
			return p.seen.String()[start : start+i+len(want)]
		}
		select {
		case s, ok := <-p.chunk:
			if !ok {
				p.t.Fatalf("screen closed before %q; got:\n%q", want, p.seen.String()[start:])
			}
			p.seen.WriteString(s)
		case <-timeout:
			p.t.Fatalf("no %q within 5s; got:\n%q", want, p.seen.String()[start:])
		}
	}
}

func (p *screen) typeText(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.keys, s); err != nil {
		p.t.Fatal(err)
	}
}

// pipeConsole is Serve on an io.Pipe pair; done gets Serve's result.
type pipeConsole struct {
	*screen
	done chan error
}

func startPipe(t *testing.T, ctx context.Context, c *Console) *pipeConsole {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &pipeConsole{screen: newScreen(t, inW, outR), done: make(chan error, 1)}
	go func() {
		p.done <- c.Serve(ctx, struct {
			io.Reader
			io.Writer
		}{inR, outW})
		outW.Close()
	}()
	t.Cleanup(func() { inW.Close(); inR.Close(); outR.Close() })
	return p
}

// Ctrl-C stops a running upstream check; what was typed before the
// Ctrl-C is dropped, what comes after it runs next.
func TestCtrlCStopsACheck(t *testing.T) {
	f := newFixture(t)
	started := make(chan struct{})
	var checkErr error
	f.opt.Upstream = func(ctx context.Context, report func(name, result string)) error {
		report("dial", "connecting to a black hole")
		close(started)
		<-ctx.Done()
		checkErr = ctx.Err()
		return fmt.Errorf("dial: interrupted: %w", ctx.Err())
	}
	p := startPipe(t, context.Background(), f.console())
	p.until(prompt)
	p.typeText("upstream\r")
	<-started
	p.typeText("status\r\x03version\r")
	got := p.until("relaybox 1.0-test (")
	if !errors.Is(checkErr, context.Canceled) {
		t.Errorf("check's context: %v, want canceled", checkErr)
	}
	if !strings.Contains(got, "^C\r\n") || !strings.Contains(got, "cancelled\r\n"+prompt+"version\r\nrelaybox 1.0-test") {
		t.Errorf("screen:\n%s", got)
	}
	if strings.Contains(got, "state:") {
		t.Error("status typed before the Ctrl-C ran anyway")
	}
	p.typeText("exit\r")
	p.until("bye\r\n")
	if err := <-p.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// A line typed while a check runs is kept and runs after it.
func TestTypeAheadDuringCheck(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	f.opt.Upstream = func(ctx context.Context, report func(name, result string)) error {
		<-release
		report("dial", "ok")
		return nil
	}
	p := startPipe(t, context.Background(), f.console())
	p.until(prompt)
	p.typeText("upstream\rversion\r")
	close(release)
	got := p.until("relaybox 1.0-test (")
	if !strings.Contains(got, "result: ok, nothing was sent\r\n"+prompt+"version\r\n") {
		t.Errorf("screen:\n%s", got)
	}
}

func TestServeEndsWithContext(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := startPipe(t, ctx, f.console())
	p.until(prompt)
	cancel()
	select {
	case err := <-p.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}

func TestServeReportsWriteError(t *testing.T) {
	f := newFixture(t)
	err := f.console().Serve(context.Background(), struct {
		io.Reader
		io.Writer
	}{strings.NewReader("status\r"), errWriter{}})
	if !errors.Is(err, errGone) || !strings.Contains(err.Error(), "console: write") {
		t.Errorf("Serve: %v, want a write error wrapping %v", err, errGone)
	}
}

func TestRunNeedsDevice(t *testing.T) {
	f := newFixture(t)
	err := f.console().Run(context.Background(), "", 115200, nil)
	if err == nil || !strings.Contains(err.Error(), "console.device") {
		t.Errorf("Run without a device: %v", err)
	}
}

// A missing device (adapter unplugged at boot) is retried until ctx ends
// and logged once, not once per attempt.
func TestRunRetriesMissingDevice(t *testing.T) {
	f := newFixture(t)
	c := f.console()
	c.minBackoff, c.maxBackoff = time.Millisecond, 5*time.Millisecond
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	dev := t.TempDir() + "/ttyUSB9"
	if err := c.Run(ctx, dev, 115200, log); err != nil {
		t.Fatalf("Run: %v", err)
	}
	logs := logBuf.String()
	if n := strings.Count(logs, "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "cannot open the device"); n < 3 {
		t.Errorf("%d attempts in 150ms, want several:\n%s", n, logs)
	}
	if !strings.Contains(logs, dev) || !strings.Contains(logs, "check console.device") {
		t.Errorf("log does not name the device and what to check:\n%s", logs)
	}
}

func TestOpenErrorsSayWhatToCheck(t *testing.T) {
	_, err := Open(t.TempDir()+"/nope", 115200)
	if err == nil || !strings.Contains(err.Error(), "/nope at 115200 baud") || !strings.Contains(err.Error(), "check console.device") {
		t.Errorf("Open missing: %v", err)
	}
	_, err = Open("/dev/null", 115200)
	if err == nil || !strings.Contains(err.Error(), "not a serial port") {
		t.Errorf("Open /dev/null: %v", err)
	}
}

// The default Net lists real interfaces but never loopback.
func TestInterfaceAddrsSkipsLoopback(t *testing.T) {
	lines, err := interfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.Contains(l, "127.0.0.1") || strings.Contains(l, "::1/128") || strings.HasPrefix(l, "lo ") {
			t.Errorf("loopback listed: %q", l)
		}
	}
}

// `held` lists repeats held by duplicate detection, and `queue retry`
// releases one, through the same command layer as the API.
func TestHeldListAndRelease(t *testing.T) {
	f := newFixture(t)
	id := f.add("Subject: page", "copier@lab.example.edu", "a@example.edu")
	f.update(id, func(m *spool.Message) { m.State, m.LastReply = spool.StateHeld, "held: duplicate #6" })
	screen := runSession(t, f.console(), "held\rqueue retry "+id+"\rheld\rexit\r")
	checkTerminalSafe(t, screen)
	if !strings.Contains(screen, id) || !strings.Contains(screen, "no held repeats") {
		t.Errorf("held then release:\n%s", screen)
	}
	if m := must(f.sp.Get(id)); m.State != spool.StateQueued {
		t.Errorf("after release the message is %s", m.State)
	}
}
