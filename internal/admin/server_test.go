package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"relaybox/internal/clocktest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/throttle"
)

// fixture is a server over a real spool with a fake clock.
type fixture struct {
	t     *testing.T
	clk   *clocktest.Clock
	sp    *spool.Spool
	st    *status.Model
	srv   *Server
	kicks atomic.Int32
	log   bytes.Buffer // admin log output; written from handlers, read after
	logMu sync.Mutex
}

func (f *fixture) Write(p []byte) (int, error) {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.log.Write(p)
}

func (f *fixture) logText() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.log.String()
}

const (
	testBody   = "Subject: scan from copier\r\nFrom: copier@lab.example.edu\r\n\r\nSECRET-BODY-TEXT page 1\r\n"
	testSecret = "s3cret-admin"
)

func newFixture(t *testing.T, password string) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: clocktest.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))}
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{Now: f.clk.Now, Mono: f.clk.Mono, MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f.sp = sp
	f.st = status.New(status.Options{Now: f.clk.Now, Upstreams: []string{"smtp.example.edu:587"}, Version: "test",
		Hostname: "relaybox.lab.example.edu", Queue: func() status.QueueStats {
			s := sp.Stats()
			return status.QueueStats{Messages: s.Messages, Bytes: s.Bytes, Oldest: s.Oldest, Held: s.Held, HeldBytes: s.HeldBytes, Dead: s.Dead, DeadBytes: s.DeadBytes, Quota: 1 << 20}
		}})
	f.st.Started()
	f.srv = NewServer(Options{Status: f.st, Queue: sp, Kick: func() { f.kicks.Add(1) }, Now: f.clk.Now,
		Password: password, Logger: slog.New(slog.NewTextHandler(f, nil)),
		Guard: throttle.New(throttle.Options{Now: f.clk.Now, Delay: time.Millisecond, MaxDelay: time.Millisecond})})
	return f
}

// add commits a message to the spool and returns its ID.
func (f *fixture) add(from string, rcpts ...string) string {
	f.t.Helper()
	w, err := f.sp.Create(spool.Envelope{ClientAddr: "10.1.2.3:40000", Helo: "copier", From: from, Recipients: rcpts})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.WriteString(w, testBody); err != nil {
		f.t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		f.t.Fatal(err)
	}
	return m.ID
}

func (f *fixture) update(id string, fn func(*spool.Message)) {
	f.t.Helper()
	if _, err := f.sp.Update(id, func(m *spool.Message) error { fn(m); return nil }); err != nil {
		f.t.Fatal(err)
	}
}

// backOff makes id look like it failed three times and waits an hour.
func (f *fixture) backOff(id string) {
	f.update(id, func(m *spool.Message) {
		m.Attempts, m.NextAttempt, m.LastReply = 3, f.clk.Now().Add(time.Hour), "421 4.7.0 try later"
		m.History = append(m.History, spool.Attempt{At: f.clk.Now(), Upstream: "smtp.example.edu:587", Outcome: "deferred", Reply: "421 4.7.0 try later"})
		for i := range m.Recipients {
			m.Recipients[i].Outcome = spool.ParseReply("421 4.7.0 try later")
		}
	})
}

// kill dead-letters id: the first recipient with reply0, the rest expired.
func (f *fixture) kill(id, reply0 string) {
	f.update(id, func(m *spool.Message) {
		m.State = spool.StateDead
		m.LastReply = "expired after 5d0h: 421 4.7.0 try later"
		for i := range m.Recipients {
			m.Recipients[i].State, m.Recipients[i].Outcome = spool.RcptFailed, spool.ParseReply(m.LastReply)
		}
		m.Recipients[0].Outcome = spool.ParseReply(reply0)
	})
}

// do sends a request through the handler and returns code and body.
func (f *fixture) do(method, path, password string) (int, string) {
	f.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if password != "" {
		req.SetBasicAuth("anyone", password)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("bad JSON %v:\n%s", err, body)
	}
	return v
}

type listing struct {
	Messages []Message `json:"messages"`
}

func TestQueueListAndShow(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("copier@lab.example.edu", "a@example.edu", "b@example.edu")
	f.backOff(id)
	f.clk.Add(90 * time.Second)

	code, body := f.do("GET", "/api/queue", "")
	if code != 200 {
		t.Fatalf("GET /api/queue: %d %s", code, body)
	}
	// The contract's field names, spelled exactly.
	for _, k := range []string{`"id"`, `"received"`, `"from"`, `"size"`, `"attempts"`, `"next_attempt"`, `"last_reply"`, `"recipients"`, `"address"`, `"state"`, `"age_seconds"`} {
		if !strings.Contains(body, k) {
			t.Errorf("listing lacks %s:\n%s", k, body)
		}
	}
	l := decode[listing](t, body)
	if len(l.Messages) != 1 {
		t.Fatalf("%d messages listed", len(l.Messages))
	}
	m := l.Messages[0]
	if m.ID != id || m.From != "copier@lab.example.edu" || m.Attempts != 3 || m.AgeSeconds != 90 ||
		m.Size != int64(len(testBody)) || m.LastReply != "421 4.7.0 try later" || len(m.Recipients) != 2 ||
		m.Recipients[1].Address != "b@example.edu" || m.Recipients[1].State != spool.RcptPending || m.NextInSeconds != 3510 {
		t.Errorf("listed %+v", m)
	}
	if code, body := f.do("GET", "/api/dead", ""); code != 200 || len(decode[listing](t, body).Messages) != 0 || !strings.Contains(body, `"messages":[]`) {
		t.Errorf("GET /api/dead: %d %s", code, body)
	}

	code, body = f.do("GET", "/api/queue/"+id, "")
	if code != 200 {
		t.Fatalf("show: %d %s", code, body)
	}
	d := decode[Detail](t, body)
	if d.ID != id || d.Headers != "Subject: scan from copier\r\nFrom: copier@lab.example.edu\r\n" || len(d.History) != 1 || d.Helo != "copier" {
		t.Errorf("detail %+v", d)
	}
	if strings.Contains(body, "SECRET-BODY-TEXT") {
		t.Errorf("show returns the body:\n%s", body)
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t, "")
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/queue/0000000000000"},
		{"GET", "/api/queue/nonsense"},
		{"POST", "/api/queue/0000000000000/retry"},
		{"DELETE", "/api/queue/0000000000000"},
		{"GET", "/api/nothing-here"},
	} {
		code, body := f.do(r.method, r.path, "")
		if code != 404 || decode[map[string]string](t, body)["error"] == "" {
			t.Errorf("%s %s: %d %s, want 404 with a JSON error", r.method, r.path, code, body)
		}
	}
	if f.kicks.Load() != 0 {
		t.Errorf("a failed retry kicked the scheduler")
	}
}

func TestRetryMakesDueNowAndKicks(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("dev@lab.example.edu", "a@example.edu")
	f.backOff(id)
	f.clk.Add(time.Minute)
	if due, _ := f.sp.Due(f.clk.Now(), 0); len(due) != 0 {
		t.Fatalf("backed-off message already due")
	}
	code, body := f.do("POST", "/api/queue/"+id+"/retry", "")
	if code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	if due, _ := f.sp.Due(f.clk.Now(), 0); len(due) != 1 || due[0].ID != id {
		t.Fatalf("after retry, due = %v", due)
	}
	if m := decode[Message](t, body); m.NextInSeconds != 0 || m.Attempts != 3 {
		t.Errorf("retry answer %+v", m)
	}
	if f.kicks.Load() != 1 {
		t.Errorf("kicks = %d, want 1", f.kicks.Load())
	}
	if !strings.Contains(f.logText(), "admin: retry") {
		t.Errorf("retry not logged:\n%s", f.logText())
	}
}

func TestRetryRequeuesDead(t *testing.T) {
	f := newFixture(t, "")
	expired := f.add("dev@lab.example.edu", "a@example.edu", "b@example.edu", "c@example.edu")
	// a refused for good, b expired, c failed with a temporary reply
	f.kill(expired, "550 5.1.1 user unknown")
	f.update(expired, func(m *spool.Message) { m.Recipients[2].Outcome = spool.ParseReply("421 4.7.0 try later") })
	refused := f.add("dev@lab.example.edu", "x@example.edu")
	f.kill(refused, "550 5.7.1 relaying denied")
	f.clk.Add(time.Hour)

	code, body := f.do("POST", "/api/queue/"+expired+"/retry", "")
	if code != 200 {
		t.Fatalf("retry dead: %d %s", code, body)
	}
	m, err := f.sp.Get(expired)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != spool.StateQueued || !m.Requeued.Equal(f.clk.Now()) || !m.NextAttempt.Equal(f.clk.Now()) {
		t.Errorf("requeued message: state %s requeued %v next %v", m.State, m.Requeued, m.NextAttempt)
	}
	// Its age starts over on the run clock too, or it would expire again
	// at once.
	if m.QueuedRun != f.sp.Run() || m.QueuedRun < time.Hour {
		t.Errorf("requeued message's run clock %v, spool's %v", m.QueuedRun, f.sp.Run())
	}
	want := []spool.RcptState{spool.RcptFailed, spool.RcptPending, spool.RcptPending}
	for i, r := range m.Recipients {
		if r.State != want[i] {
			t.Errorf("recipient %s: %s, want %s", r.Address, r.State, want[i])
		}
	}
	if f.kicks.Load() != 1 {
		t.Errorf("kicks = %d", f.kicks.Load())
	}

	// Only 5xx: nothing a plain retry can do; force requeues it.
	code, body = f.do("POST", "/api/queue/"+refused+"/retry", "")
	if code != 409 || !strings.Contains(body, "550 5.7.1") {
		t.Errorf("retry of a refused dead message: %d %s, want 409 naming the reply", code, body)
	}
	if code, body = f.do("POST", "/api/queue/"+refused+"/retry?force=1", ""); code != 200 {
		t.Fatalf("forced retry: %d %s", code, body)
	}
	if m, _ := f.sp.Get(refused); m.State != spool.StateQueued || m.Recipients[0].State != spool.RcptPending {
		t.Errorf("forced retry left %+v", m)
	}
}

func TestRetryAllAndRetryDead(t *testing.T) {
	f := newFixture(t, "")
	a, b := f.add("", "a@example.edu"), f.add("", "b@example.edu")
	f.backOff(a)
	f.backOff(b)
	d1, d2 := f.add("", "c@example.edu"), f.add("", "d@example.edu")
	f.kill(d1, "expired after 5d0h: 421 busy")
	f.kill(d2, "550 no")
	code, body := f.do("POST", "/api/queue/retry-all", "")
	if code != 200 || decode[map[string]int](t, body)["retried"] != 2 {
		t.Fatalf("retry-all: %d %s", code, body)
	}
	if due, _ := f.sp.Due(f.clk.Now(), 0); len(due) != 2 {
		t.Errorf("after retry-all %d due, want 2", len(due))
	}
	if s := f.sp.Stats(); s.Dead != 2 {
		t.Errorf("retry-all touched dead letters: %+v", s)
	}
	code, body = f.do("POST", "/api/dead/retry-all", "")
	if code != 200 || decode[map[string]int](t, body)["retried"] != 1 {
		t.Fatalf("dead retry-all: %d %s", code, body)
	}
	if m, _ := f.sp.Get(d1); m.State != spool.StateQueued {
		t.Errorf("expired dead letter not requeued: %s", m.State)
	}
	if f.kicks.Load() != 2 {
		t.Errorf("kicks = %d, want one per retry-all", f.kicks.Load())
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("", "a@example.edu")
	if code, body := f.do("DELETE", "/api/queue/"+id, ""); code != 200 || !strings.Contains(body, id) {
		t.Fatalf("delete: %d %s", code, body)
	}
	if _, err := f.sp.Get(id); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("still there after delete: %v", err)
	}
	if code, _ := f.do("DELETE", "/api/queue/"+id, ""); code != 404 {
		t.Errorf("second delete: %d, want 404", code)
	}
}

func TestHealthzAndStatus(t *testing.T) {
	f := newFixture(t, testSecret)
	// /healthz needs no password, even when one is set.
	if code, body := f.do("GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz ok: %d %q", code, body)
	}
	f.st.UpstreamResult("smtp.example.edu:587", errors.New("dial tcp: connection refused"))
	if code, body := f.do("GET", "/healthz", ""); code != 200 || !strings.HasPrefix(body, "degraded: upstream smtp.example.edu:587 failing") {
		t.Errorf("healthz degraded: %d %q", code, body)
	}
	f.add("", "a@example.edu")
	f.clk.Add(31 * time.Minute)
	if code, body := f.do("GET", "/healthz", ""); code != 503 || !strings.HasPrefix(body, "failing: ") {
		t.Errorf("healthz failing: %d %q", code, body)
	}
	code, body := f.do("GET", "/api/status", testSecret)
	s := decode[status.Snapshot](t, body)
	if code != 200 || s.State != status.Failing || s.Queue.Messages != 1 || s.Version != "test" || len(s.Upstreams) != 1 || s.Upstreams[0].Up {
		t.Errorf("status: %d %+v", code, s)
	}
	f.st.Stopping()
	if code, _ := f.do("GET", "/healthz", ""); code != 503 {
		t.Errorf("healthz stopping: %d", code)
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"\})? (-?[0-9.e+]+)$`)

func TestMetrics(t *testing.T) {
	f := newFixture(t, "")
	f.st.Accepted()
	f.st.Delivery("sent", "250 2.0.0 Ok: queued as X1")
	f.st.UpstreamResult("weird\"name\\x", errors.New("421 busy"))
	f.add("", "a@example.edu")
	f.kill(f.add("", "b@example.edu"), "550 no")
	f.clk.Add(10 * time.Second)

	req := httptest.NewRequest("GET", "/metrics", nil)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("metrics: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	values := map[string]string{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			typed[strings.Fields(line)[2]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a valid sample line: %q", line)
			continue
		}
		if !typed[m[1]] {
			t.Errorf("sample %s before its TYPE line", m[1])
		}
		values[m[1]+m[2]] = m[3]
	}
	for k, want := range map[string]string{
		"relaybox_messages_accepted_total":                                  "1",
		"relaybox_messages_delivered_total":                                 "1",
		"relaybox_messages_failed_total":                                    "0",
		"relaybox_queue_messages":                                           "1",
		"relaybox_queue_bytes":                                              strconv.Itoa(len(testBody)),
		"relaybox_queue_oldest_age_seconds":                                 "10",
		"relaybox_dead_messages":                                            "1",
		`relaybox_upstream_up{upstream="smtp.example.edu:587"}`:             "1",
		`relaybox_upstream_up{upstream="weird\"name\\x"}`:                   "0",
		`relaybox_upstream_consecutive_failures{upstream="weird\"name\\x"}`: "1",
		`relaybox_state{state="degraded"}`:                                  "1",
		`relaybox_state{state="ok"}`:                                        "0",
		`relaybox_info{version="test"}`:                                     "1",
	} {
		if got, ok := values[k]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
		}
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, testSecret)
	id := f.add("", "a@example.edu")
	for _, path := range []string{"/metrics", "/api/status", "/api/queue", "/api/dead", "/api/queue/" + id, "/api/events"} {
		if code, _ := f.do("GET", path, ""); code != 401 {
			t.Errorf("GET %s without password: %d, want 401", path, code)
		}
		if code, _ := f.do("GET", path, "wrong"); code != 401 {
			t.Errorf("GET %s with a wrong password: %d, want 401", path, code)
		}
		if code, _ := f.do("GET", path, testSecret); code != 200 {
			t.Errorf("GET %s with the password: %d, want 200", path, code)
		}
	}
	for _, r := range [][2]string{{"POST", "/api/queue/" + id + "/retry"}, {"POST", "/api/queue/retry-all"}, {"POST", "/api/dead/retry-all"}, {"DELETE", "/api/queue/" + id}} {
		if code, _ := f.do(r[0], r[1], ""); code != 401 {
			t.Errorf("%s %s without password: %d, want 401", r[0], r[1], code)
		}
	}
	if _, err := f.sp.Get(id); err != nil {
		t.Errorf("an unauthenticated DELETE removed the message: %v", err)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, httptest.NewRequest("GET", "/api/status", nil))
	if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("401 without a Basic challenge: %q", rec.Header().Get("WWW-Authenticate"))
	}
}

// TestNoSecretLeaks walks every route, with and without the password, and
// checks that neither the admin password nor a message body shows up in a
// response or the log.
func TestNoSecretLeaks(t *testing.T) {
	f := newFixture(t, testSecret)
	slogger := slog.New(f.st.Handler(slog.DiscardHandler))
	slogger.Info("message", "id", "x", "event", "accepted")
	id := f.add("", "a@example.edu")
	dead := f.add("", "b@example.edu")
	f.kill(dead, "550 no")
	routes := [][2]string{
		{"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/api/status"}, {"GET", "/api/events"},
		{"GET", "/api/queue"}, {"GET", "/api/dead"}, {"GET", "/api/queue/" + id}, {"GET", "/api/queue/" + dead},
		{"GET", "/api/queue/0000000000000"}, {"POST", "/api/queue/" + id + "/retry"}, {"POST", "/api/queue/" + dead + "/retry"},
		{"POST", "/api/queue/retry-all"}, {"POST", "/api/dead/retry-all"}, {"DELETE", "/api/queue/" + id},
		{"GET", "/api/unknown"}, {"GET", "/"},
	}
	for _, pass := range []string{"", "wrong", testSecret} {
		for _, r := range routes {
			_, body := f.do(r[0], r[1], pass)
			if strings.Contains(body, testSecret) || strings.Contains(body, "SECRET-BODY-TEXT") {
				t.Errorf("%s %s (password %q) leaks:\n%s", r[0], r[1], pass, body)
			}
		}
	}
	if l := f.logText(); strings.Contains(l, testSecret) || strings.Contains(l, "SECRET-BODY-TEXT") {
		t.Errorf("log leaks:\n%s", l)
	}
}

// A repeat held by duplicate detection is listed under /api/held, not in
// the queue, and retry releases it for delivery.
func TestHeldListAndRelease(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("copier@lab.example.edu", "a@example.edu")
	f.update(id, func(m *spool.Message) { m.State, m.LastReply = spool.StateHeld, "held: duplicate #6" })
	if due, _ := f.sp.Due(f.clk.Now(), 0); len(due) != 0 {
		t.Fatalf("held message is due for delivery")
	}
	_, body := f.do("GET", "/api/held", "")
	if !strings.Contains(body, id) {
		t.Fatalf("/api/held does not list %s: %s", id, body)
	}
	if _, body := f.do("GET", "/api/queue", ""); strings.Contains(body, id) {
		t.Errorf("/api/queue lists the held message: %s", body)
	}
	if code, body := f.do("POST", "/api/queue/"+id+"/retry", ""); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	due, _ := f.sp.Due(f.clk.Now(), 0)
	if len(due) != 1 || due[0].ID != id || !strings.HasPrefix(due[0].LastReply, "released by admin") {
		t.Fatalf("after release, due = %+v", due)
	}
	if f.kicks.Load() != 1 {
		t.Errorf("kicks = %d, want 1", f.kicks.Load())
	}
}

// Listings page: 100 by default with the total and a cursor, each page
// under 64 KB even with long replies, and a bad limit is refused.
func TestQueueListPages(t *testing.T) {
	f := newFixture(t, "")
	const n = 230
	reply := "cannot connect to smtp.example.edu:587: dial tcp 192.0.2.10:587: connect: connection refused (is the relay up?)"
	var ids []string
	for range n {
		id := f.add("scanner-third-floor@lab.chemistry.example.edu", "someone.with.a.long.name@department.example.edu")
		f.update(id, func(m *spool.Message) {
			m.Device, m.Attempts, m.LastReply = "Ricoh MP C3004 third floor", 7, reply
			m.NextAttempt = f.clk.Now().Add(time.Hour)
			m.Recipients[0].Outcome = spool.ParseReply(reply)
		})
		ids = append(ids, id)
	}
	var got []string
	after := ""
	for page := 0; page < 4; page++ {
		path := "/api/queue"
		if after != "" {
			path += "?after=" + after
		}
		code, body := f.do("GET", path, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if len(body) > 64<<10 {
			t.Errorf("page %d is %d bytes, want at most 64 KB", page, len(body))
		}
		if page == 0 {
			t.Logf("a page of %d is %d bytes", DefaultLimit, len(body))
		}
		p := decode[Page](t, body)
		if p.Total != n || p.Limit != DefaultLimit || len(p.Messages) > DefaultLimit {
			t.Fatalf("page %d: total %d limit %d, %d messages", page, p.Total, p.Limit, len(p.Messages))
		}
		for _, m := range p.Messages {
			got = append(got, m.ID)
		}
		if p.Next == "" {
			break
		}
		if p.Next != got[len(got)-1] {
			t.Fatalf("next %q is not the page's last ID %q", p.Next, got[len(got)-1])
		}
		after = p.Next
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("pages listed %d messages, want all %d in order", len(got), n)
	}
	if code, body := f.do("GET", "/api/queue?limit=7", ""); code != 200 || len(decode[Page](t, body).Messages) != 7 {
		t.Errorf("limit=7: %d %s", code, body)
	}
	for _, bad := range []string{"0", "-1", "abc", "1001"} {
		if code, body := f.do("GET", "/api/dead?limit="+bad, ""); code != 400 || !strings.Contains(body, "from 1 to 1000") {
			t.Errorf("limit=%s: %d %s", bad, code, body)
		}
	}
}

// TestRetryReadsTheOutcome: whether a retry can help comes from the
// recipient's outcome as data, never from how its reply text begins. The
// old check read "550 bytes" as a 5xx refusal and a permanent refusal
// worded "expired ..." as an expiry.
func TestRetryReadsTheOutcome(t *testing.T) {
	f := newFixture(t, "")
	cases := []struct {
		name  string
		o     spool.Outcome
		retry bool
	}{
		{"network failure quoting a byte count", spool.Outcome{Text: "550 bytes sent, then the connection was reset"}, true},
		{"permanent refusal worded like an expiry", spool.Outcome{Permanent: true, Text: "expired account: mailbox closed for good"}, false},
		{"temporary reply", spool.Outcome{Code: 451, Enhanced: "4.3.0", Text: "try later"}, true},
		{"5xx reply", spool.Outcome{Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "user unknown"}, false},
		{"expired", spool.Outcome{Expired: true, Text: "expired after 5d0h: 550 bytes sent"}, true},
	}
	for _, c := range cases {
		id := f.add("dev@lab.example.edu", "a@example.edu")
		f.update(id, func(m *spool.Message) {
			m.State = spool.StateDead
			m.Recipients[0].State, m.Recipients[0].Outcome = spool.RcptFailed, c.o
		})
		code, body := f.do("POST", "/api/queue/"+id+"/retry", "")
		if got := code == 200; got != c.retry {
			t.Errorf("%s: retry answered %d %s, want retried %v", c.name, code, body, c.retry)
		}
		if !c.retry && !strings.Contains(body, c.o.Reply()) {
			t.Errorf("%s: refusal %s does not quote the reply %q", c.name, body, c.o.Reply())
		}
	}
}

// TestRecipientOutcomeInAPI: the API gives the reply both as the line
// people read and as data.
func TestRecipientOutcomeInAPI(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("dev@lab.example.edu", "a@example.edu", "b@example.edu")
	f.kill(id, "550 5.1.1 user unknown")
	code, body := f.do("GET", "/api/queue/"+id, "")
	if code != 200 {
		t.Fatalf("show: %d %s", code, body)
	}
	d := decode[Detail](t, body)
	a, b := d.Recipients[0], d.Recipients[1]
	if a.Reply != "550 5.1.1 user unknown" || !a.Permanent || a.Code != 550 || a.Enhanced != "5.1.1" || a.Expired {
		t.Errorf("refused recipient %+v", a)
	}
	if b.Reply != "expired after 5d0h: 421 4.7.0 try later" || b.Permanent || b.Code != 0 || !b.Expired {
		t.Errorf("expired recipient %+v", b)
	}
}
