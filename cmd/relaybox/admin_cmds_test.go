package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// adminEnv is an admin API over a real spool, served on 127.0.0.1 the way
// the daemon serves it.
type adminEnv struct {
	t    *testing.T
	sp   *spool.Spool
	st   *status.Model
	addr string
}

const adminSecret = "s3cret-admin"

func newAdminEnv(t *testing.T, password string) *adminEnv {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	st := status.New(status.Options{Upstreams: []string{"smtp.example.edu:587"}, Version: "test",
		Queue: func() status.QueueStats {
			s := sp.Stats()
			return status.QueueStats{Messages: s.Messages, Bytes: s.Bytes, Oldest: s.Oldest, Held: s.Held, HeldBytes: s.HeldBytes, Dead: s.Dead, DeadBytes: s.DeadBytes, Quota: 1 << 30}
		}})
	st.Started()
	hs := httptest.NewServer(admin.NewServer(admin.Options{Status: st, Queue: sp, Password: password}))
	t.Cleanup(hs.Close)
	return &adminEnv{t: t, sp: sp, st: st, addr: strings.TrimPrefix(hs.URL, "http://")}
}

func (e *adminEnv) add(from string, rcpts ...string) string {
	e.t.Helper()
	w, err := e.sp.Create(spool.Envelope{ClientAddr: "10.1.2.3:40000", Helo: "copier", From: from, Recipients: rcpts})
	if err != nil {
		e.t.Fatal(err)
	}
	io.WriteString(w, "Subject: scan from copier\r\nX-Evil: a\x1b[2Jb\r\n\r\nBODY-MUST-NOT-SHOW\r\n")
	m, err := w.Commit()
	if err != nil {
		e.t.Fatal(err)
	}
	return m.ID
}

func (e *adminEnv) update(id string, fn func(*spool.Message)) {
	e.t.Helper()
	if _, err := e.sp.Update(id, func(m *spool.Message) error { fn(m); return nil }); err != nil {
		e.t.Fatal(err)
	}
}

// run calls a command function and returns stdout and the error.
func run(cmd func([]string, io.Writer, io.Writer) error, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := cmd(args, &out, &errOut)
	return out.String(), err
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func TestQueueCommands(t *testing.T) {
	e := newAdminEnv(t, "")
	backed := e.add("copier@lab.example.edu", "a@example.edu", "b@example.edu")
	e.update(backed, func(m *spool.Message) {
		m.Attempts, m.NextAttempt, m.LastReply = 2, time.Now().Add(time.Hour+time.Minute), "421 4.7.0 try later"
		m.History = []spool.Attempt{{At: m.Received, Upstream: "smtp.example.edu:587", Outcome: "deferred", Reply: "421 4.7.0 try later"}}
	})
	other := e.add("", "c@example.edu")

	// Flags before and after the words.
	out, err := run(cmdQueue, "list", "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "ID", "NEXT", backed, "copier@lab.example.edu", "in 1h", "a@example.edu +1", "421 4.7.0 try later", other, "<>", "now")
	out, err = run(cmdQueue, "-json", "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	var l struct{ Messages []admin.Message }
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Messages) != 2 || l.Messages[0].ID != backed {
		t.Fatalf("queue -json: %v\n%s", err, out)
	}

	out, err = run(cmdQueue, "show", backed, "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "id:", backed, "HELO copier", "attempts:", "2, next in 1h", "recipients:", "b@example.edu", "pending",
		"headers:", "Subject: scan from copier", "X-Evil: a?[2Jb", "smtp.example.edu:587")
	if strings.Contains(out, "BODY-MUST-NOT-SHOW") || strings.Contains(out, "\x1b") {
		t.Errorf("show prints the body or an escape sequence:\n%q", out)
	}

	out, err = run(cmdQueue, "-admin", e.addr, "retry", backed)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, backed+": due now (queued, 2 recipients waiting)")
	if due, _ := e.sp.Due(time.Now(), 0); len(due) != 2 {
		t.Errorf("after retry %d due, want 2", len(due))
	}

	out, err = run(cmdQueue, "retry-all", "-admin", e.addr)
	if err != nil || !strings.Contains(out, "2 messages due now") {
		t.Errorf("retry-all: %v\n%s", err, out)
	}

	out, err = run(cmdQueue, "delete", other, "-admin", e.addr)
	if err != nil || !strings.Contains(out, other+": deleted") {
		t.Errorf("delete: %v\n%s", err, out)
	}
	if _, err := e.sp.Get(other); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("message still in the spool after delete: %v", err)
	}
	_, err = run(cmdQueue, "show", other, "-admin", e.addr)
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "no message "+other) {
		t.Errorf("show deleted: %v, want a runtime error saying there is no such message", err)
	}
}

// queue list pages: -limit, the footer with the total and the next
// command, -after for the next page, -all for every page.
func TestQueueListPages(t *testing.T) {
	e := newAdminEnv(t, "")
	var ids []string
	for i := range 5 {
		ids = append(ids, e.add("copier@lab.example.edu", fmt.Sprintf("u%d@example.edu", i)))
	}
	out, err := run(cmdQueue, "list", "-limit", "2", "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, ids[0], ids[1], "2 shown of 5; next page: relaybox queue list -after "+ids[1])
	if strings.Contains(out, ids[2]) {
		t.Errorf("-limit 2 printed a third message:\n%s", out)
	}
	out, err = run(cmdQueue, "list", "-limit", "2", "-after", ids[3], "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, ids[4], "1 shown of 5")
	if strings.Contains(out, "next page") || strings.Contains(out, ids[3]) {
		t.Errorf("last page:\n%s", out)
	}
	out, err = run(cmdQueue, "list", "-limit", "2", "-all", "-json", "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	var p admin.Page
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Messages) != 5 || p.Total != 5 || p.Next != "" {
		t.Fatalf("-all -json: %v\n%s", err, out)
	}
	if _, err := run(cmdQueue, "list", "-limit", "0", "-admin", e.addr); !isUsage(err) {
		t.Errorf("-limit 0: %v, want a usage error", err)
	}
}

func TestQueueDeadCommands(t *testing.T) {
	e := newAdminEnv(t, "")
	out, err := run(cmdQueue, "dead", "-admin", e.addr)
	if err != nil || !strings.Contains(out, "no dead letters") {
		t.Fatalf("empty dead: %v\n%s", err, out)
	}
	expired := e.add("dev@lab.example.edu", "a@example.edu")
	refused := e.add("dev@lab.example.edu", "x@example.edu")
	for id, reply := range map[string]string{expired: "expired after 5d0h: 421 busy", refused: "550 5.7.1 relaying denied"} {
		e.update(id, func(m *spool.Message) {
			m.State, m.LastReply = spool.StateDead, reply
			m.Recipients[0].State, m.Recipients[0].Outcome = spool.RcptFailed, spool.ParseReply(reply)
		})
	}
	out, err = run(cmdQueue, "dead", "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, expired, refused, "a@example.edu (failed)", "550 5.7.1 relaying denied")
	if strings.Contains(out, "NEXT") {
		t.Errorf("dead listing shows a next attempt:\n%s", out)
	}
	_, err = run(cmdQueue, "retry", refused, "-admin", e.addr)
	if err == nil || !strings.Contains(err.Error(), "refused for good (550 5.7.1 relaying denied)") ||
		!strings.Contains(err.Error(), "relaybox queue retry -force "+refused) {
		t.Errorf("retry of a refused dead letter: %v", err)
	}
	if _, err = run(cmdQueue, "retry", "-force", refused, "-admin", e.addr); err != nil {
		t.Errorf("retry -force: %v", err)
	}
	out, err = run(cmdQueue, "retry-dead", "-admin", e.addr, "-json")
	if err != nil || strings.TrimSpace(out) != "{\n  \"retried\": 1\n}" {
		t.Errorf("retry-dead -json: %v\n%s", err, out)
	}
	if st := e.sp.Stats(); st.Dead != 0 || st.Messages != 2 {
		t.Errorf("after retries: %+v", st)
	}
}

func TestStatusCommand(t *testing.T) {
	e := newAdminEnv(t, adminSecret)
	dir := t.TempDir()
	pw := writeFile(t, filepath.Join(dir, "admin.password"), adminSecret+"\n")
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), fmt.Sprintf(`data_dir = %q
[policy]
recipient_domains = ["example.edu"]
[admin]
listen = %q
password_file = %q
`, dir, e.addr, pw))
	e.add("", "a@example.edu")
	e.st.Accepted()
	e.st.UpstreamResult("smtp.example.edu:587", errors.New("dial tcp: connection refused"))

	out, err := run(cmdStatus, "-config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "state:", "degraded for", "reason:", "upstream smtp.example.edu:587 failing for 0s: dial tcp: connection refused",
		"queue:", "1 message", "accepted 1", "UPSTREAM", "smtp.example.edu:587", "never")
	out, err = run(cmdStatus, "-json", "-config", cfg)
	var snap status.Snapshot
	if err != nil || json.Unmarshal([]byte(out), &snap) != nil || snap.State != status.Degraded || snap.Queue.Messages != 1 {
		t.Errorf("status -json: %v\n%s", err, out)
	}
	if strings.Contains(out, adminSecret) {
		t.Errorf("status prints the admin password")
	}
	// The same address without the password file.
	_, err = run(cmdStatus, "-admin", e.addr)
	if err == nil || !strings.Contains(err.Error(), "wants the admin password") || strings.Contains(err.Error(), adminSecret) {
		t.Errorf("without password: %v", err)
	}
	if _, err = run(cmdStatus, "-admin", e.addr, "-password-file", pw); err != nil {
		t.Errorf("-password-file: %v", err)
	}
}

func TestAdminCommandErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	_, err = run(cmdStatus, "-admin", closed)
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "no relaybox daemon answering on "+closed+" (is it running? see admin.listen)") {
		t.Errorf("no daemon: %v", err)
	}
	_, err = run(cmdQueue, "list", "-admin", closed)
	if err == nil || !strings.Contains(err.Error(), "no relaybox daemon answering") {
		t.Errorf("queue, no daemon: %v", err)
	}

	dir := t.TempDir()
	off := writeFile(t, filepath.Join(dir, "off.toml"), fmt.Sprintf("data_dir = %q\n[admin]\nlisten = \"\"\n", dir))
	for _, c := range []struct {
		cmd  func([]string, io.Writer, io.Writer) error
		args []string
		want string
	}{
		{cmdQueue, []string{"show"}, "needs one message ID"},
		{cmdQueue, []string{"delete", "a", "b"}, "needs one message ID"},
		{cmdQueue, []string{"list", "extra"}, "takes no arguments"},
		{cmdQueue, []string{"frobnicate"}, `unknown queue command "frobnicate"`},
		{cmdQueue, []string{"list", "-admin", "8025"}, "want HOST:PORT"},
		{cmdQueue, []string{"list", "-nosuchflag"}, "not defined"},
		{cmdStatus, []string{"extra"}, "takes no arguments"},
		{cmdStatus, []string{"-config", off}, "admin.listen is empty"},
		{cmdStatus, []string{"-config", filepath.Join(dir, "missing.toml")}, "missing.toml"},
		{cmdStatus, []string{"-password-file", filepath.Join(dir, "missing")}, "admin.password_file"},
	} {
		_, err := run(c.cmd, c.args...)
		if err == nil || !isUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error containing %q", c.args, err, c.want)
		}
	}
}

// `relaybox log` prints the daemon's recent events, the newest N, from the
// same ring the console's `log` reads.
func TestLogCommand(t *testing.T) {
	e := newAdminEnv(t, "")
	out, err := run(cmdLog, "-admin", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Fatalf("no events yet, got %q", out)
	}
	h := e.st.Handler(slog.DiscardHandler)
	log := slog.New(h)
	for i := range 30 {
		log.Info("message", "id", fmt.Sprintf("M%02d", i), "event", "sent")
	}
	out, err = run(cmdLog, "-admin", e.addr, "-n", "5")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "id=M25") || !strings.Contains(lines[4], "id=M29") {
		t.Errorf("log -n 5:\n%s", out)
	}
	if _, err := run(cmdLog, "-admin", e.addr, "-n", "0"); !isUsage(err) {
		t.Errorf("-n 0: %v, want a usage error", err)
	}
}
