package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"relaybox/internal/clocktest"
	"strings"
	"testing"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/spool"
	"relaybox/internal/status"
)

const (
	upstreamName = "smtp.example.edu:587"
	testBody     = "BODY-TEXT the console never shows\r\n"
)

// fixture is a console over a real spool behind the real admin command
// layer, with a fake clock.
type fixture struct {
	t     *testing.T
	clk   *clocktest.Clock
	sp    *spool.Spool
	st    *status.Model
	cmds  *admin.Server
	opt   Options
	kicks int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: clocktest.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))}
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{Now: f.clk.Now, MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f.sp = sp
	f.st = status.New(status.Options{Now: f.clk.Now, Upstreams: []string{upstreamName}, Version: "1.0-test",
		Queue: func() status.QueueStats {
			s := sp.Stats()
			return status.QueueStats{Messages: s.Messages, Bytes: s.Bytes, Oldest: s.Oldest, Held: s.Held, HeldBytes: s.HeldBytes, Dead: s.Dead, DeadBytes: s.DeadBytes, Quota: 1 << 20}
		}})
	f.st.Started()
	f.cmds = admin.NewServer(admin.Options{Status: f.st, Queue: sp, Kick: func() { f.kicks++ }, Now: f.clk.Now})
	f.opt = Options{
		Commands: f.cmds, Status: f.st, Version: "1.0-test", Hostname: "relaybox-lab3", Now: f.clk.Now,
		Net: func() ([]string, error) {
			return []string{"eth0 (up, mac b8:27:eb:01:02:03)", "  192.168.7.23/24", "  fe80::ba27:ebff:fe01:203/64"}, nil
		},
	}
	return f
}

func (f *fixture) console() *Console { return New(f.opt) }

// add commits a message with the given header block and returns its ID.
func (f *fixture) add(headers, from string, rcpts ...string) string {
	f.t.Helper()
	w, err := f.sp.Create(spool.Envelope{ClientAddr: "192.168.7.50:40000", Helo: "copier", From: from, Recipients: rcpts})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.WriteString(w, headers+"\r\n\r\n"+testBody); err != nil {
		f.t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		f.t.Fatal(err)
	}
	f.clk.Add(time.Second) // distinct IDs and ages
	return m.ID
}

func (f *fixture) update(id string, fn func(*spool.Message)) {
	f.t.Helper()
	if _, err := f.sp.Update(id, func(m *spool.Message) error { fn(m); return nil }); err != nil {
		f.t.Fatal(err)
	}
}

// event puts a record into the status ring at the fake clock's time.
func (f *fixture) event(level slog.Level, msg string, attrs ...slog.Attr) {
	h := f.st.Handler(slog.DiscardHandler)
	r := slog.NewRecord(f.clk.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	if err := h.Handle(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

// runSession runs Serve on c with input, which is written all at once
// (type-ahead) and then closed, and returns everything the console wrote.
func runSession(t *testing.T, c *Console, input string) string {
	t.Helper()
	inR, inW := io.Pipe()
	var outBuf bytes.Buffer
	go func() {
		_, _ = io.WriteString(inW, input)
		_ = inW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Serve(ctx, struct {
		io.Reader
		io.Writer
	}{inR, &outBuf})
	_ = inR.Close()
	if err != nil {
		t.Fatalf("Serve: %v\noutput so far:\n%s", err, outBuf.String())
	}
	return outBuf.String()
}

// checkTerminalSafe fails when out holds anything a dumb terminal could
// take as a command (only printable ASCII, CRLF line ends and the
// editor's "\b \b" may appear) or a line wider than the screen.
func checkTerminalSafe(t *testing.T, out string) {
	t.Helper()
	for i := 0; i < len(out); i++ {
		b := out[i]
		switch {
		case b == '\n':
			if i == 0 || out[i-1] != '\r' {
				t.Errorf("bare LF at byte %d: %q", i, context20(out, i))
			}
		case b == '\r':
			if i+1 >= len(out) || out[i+1] != '\n' {
				t.Errorf("bare CR at byte %d: %q", i, context20(out, i))
			}
		case b == '\b':
			if !strings.HasPrefix(out[i:], "\b \b") && !strings.HasSuffix(out[:i+1], "\b \b") {
				t.Errorf("stray backspace at byte %d: %q", i, context20(out, i))
			}
		case b < 0x20 || b > 0x7e:
			t.Errorf("byte %#x at %d: %q", b, i, context20(out, i))
		}
	}
	for i, l := range strings.Split(out, "\r\n") {
		if len(l) > width {
			t.Errorf("line %d is %d columns wide: %q", i+1, len(l), l)
		}
	}
}

func context20(s string, i int) string { return s[max(i-20, 0):min(i+20, len(s))] }

// errWriter fails every write, like a serial line that went away.
type errWriter struct{}

var errGone = errors.New("device gone")

func (errWriter) Write(p []byte) (int, error) { return 0, errGone }
