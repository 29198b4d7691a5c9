package admin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// addRaw commits a message with a header block and envelope of the test's
// choosing, as a device would hand them over.
func (f *fixture) addRaw(env spool.Envelope, header string) string {
	f.t.Helper()
	w, err := f.sp.Create(env)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.WriteString(w, header+"\r\nSECRET-BODY-TEXT <b>body</b>\r\n"); err != nil {
		f.t.Fatal(err)
	}
	m, err := w.Commit()
	if err != nil {
		f.t.Fatal(err)
	}
	return m.ID
}

func (f *fixture) page(path string) string {
	f.t.Helper()
	rec := f.request("GET", path, "", "")
	if rec.Code != 200 {
		f.t.Fatalf("GET %s: %d\n%s", path, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		f.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	return rec.Body.String()
}

func TestStatusPageShowsTheRelay(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("copier@lab.example.edu", "a@example.edu", "b@example.edu")
	f.backOff(id)
	held := f.add("scanner@lab.example.edu", "c@example.edu")
	f.update(held, func(m *spool.Message) { m.State, m.LastReply = spool.StateHeld, "held: copy #6 of the same message" })
	dead := f.add("copier@lab.example.edu", "d@example.edu")
	f.kill(dead, "550 5.1.1 no such user")
	f.st.UpstreamResult("smtp.example.edu:587", fmt.Errorf("dial: connection refused"))
	slog.New(f.st.Handler(slog.DiscardHandler)).Info("message", "id", id, "event", "deferred")
	f.clk.Add(2 * time.Minute)

	body := f.page("/")
	mustHave(t, body,
		"<title>relaybox relaybox.lab.example.edu: degraded</title>", "degraded", "upstream smtp.example.edu:587 failing for 2m",
		"slow blink, 1s on, 1s off (degraded)",                     // the LED
		"smtp.example.edu:587", "down", "dial: connection refused", // the upstream
		id, "a@example.edu", "b@example.edu", "421 4.7.0 try later", "in 58m", // queue row
		held, "held: copy #6", `action="/msg/`+held+`/release"`, // held row
		dead, "expired after 5d0h", `action="/retry-dead"`, `action="/retry-all"`,
		"<dt>queued</dt><dd>1 message (84 B), oldest 2m</dd>", "<dt>held</dt><dd>1 message (84 B)</dd>",
		"<dt>dead</dt><dd>1 message (84 B)</dd>", "of 1.0 MiB", // counts and quota
		"event=deferred", // recent events
	)
	if strings.Contains(body, "SECRET-BODY-TEXT") {
		t.Errorf("the page shows a message body")
	}

	msg := f.page("/msg/" + id)
	mustHave(t, msg, "Subject: scan from copier", "HELO copier", "smtp.example.edu:587", "deferred",
		`action="/msg/`+id+`/retry"`, `href="/msg/`+id+`/delete"`)
	if strings.Contains(msg, "SECRET-BODY-TEXT") {
		t.Errorf("the message page shows the body")
	}
	if rec := f.request("GET", "/msg/NOSUCHMESSAGE", "", ""); rec.Code != 404 || !strings.Contains(rec.Body.String(), "no such message") {
		t.Errorf("unknown message: %d %s", rec.Code, rec.Body)
	}
	if rec := f.request("GET", "/list/everything", "", ""); rec.Code != 404 {
		t.Errorf("unknown list: %d", rec.Code)
	}
	for _, p := range []string{"/list/queued", "/list/held", "/list/dead"} {
		mustHave(t, f.page(p), map[string]string{"/list/queued": id, "/list/held": held, "/list/dead": dead}[p])
	}
}

func mustHave(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
}

// inlineCode finds what the page's Content-Security-Policy would block
// and what escaping must never let through: script elements without src,
// event handler attributes, inline styles, javascript: URLs.
var inlineCode = regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]|<script>|<[a-z][^>]*\s(on[a-z]+|style)\s*=|javascript:|<img|<iframe|<textarea|<svg`)

// Everything a device or the upstream wrote reaches the page as text.
func TestPageEscapesDeviceText(t *testing.T) {
	f := newFixture(t, "")
	const evil = `<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"></textarea><svg onload=alert(1)>`
	id := f.addRaw(spool.Envelope{ClientAddr: "10.1.2.3:40000", Helo: evil, From: `"<script>"@lab.example.edu`,
		Recipients: []string{"a@example.edu"}, Device: evil, AuthUser: evil},
		"Subject: "+evil+"\r\nX-Scan: </textarea><script>alert(1)</script>\r\n")
	f.update(id, func(m *spool.Message) {
		m.LastReply = "421 " + evil
		m.Recipients[0].Outcome = spool.ParseReply("421 " + evil)
		m.History = append(m.History, spool.Attempt{At: f.clk.Now(), Upstream: "smtp.example.edu:587", Outcome: "deferred", Reply: "421 " + evil})
	})
	f.st.UpstreamResult("smtp.example.edu:587", fmt.Errorf("421 %s", evil))
	slog.New(f.st.Handler(slog.DiscardHandler)).Info("message", "id", id, "event", "deferred", "reply", evil)

	for _, p := range []string{"/", "/msg/" + id, "/msg/" + id + "/delete", "/list/queued"} {
		body := f.page(p)
		// Our own script tag is the only one, and it has a src.
		rest := strings.Replace(body, `<script src="/static/page.js" defer></script>`, "", 1)
		if m := inlineCode.FindString(rest); m != "" {
			t.Errorf("GET %s: %q got through unescaped", p, m)
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the hostile text is not shown at all", p)
		}
	}
}

// The page's markup needs nothing the policy forbids: no inline script,
// no event handlers, no style attributes (CSP would block them and the
// page would break only in a browser).
func TestPageNeedsNoInlineCode(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("copier@lab.example.edu", "a@example.edu")
	dead := f.add("copier@lab.example.edu", "b@example.edu")
	f.kill(dead, "550 no")
	for _, p := range []string{"/", "/msg/" + id, "/msg/" + dead, "/msg/" + id + "/delete", "/list/dead", "/msg/NOSUCH"} {
		rec := f.request("GET", p, "", "")
		rest := strings.Replace(rec.Body.String(), `<script src="/static/page.js" defer></script>`, "", 1)
		if m := inlineCode.FindString(rest); m != "" {
			t.Errorf("GET %s: inline code %q", p, m)
		}
		for _, ref := range regexp.MustCompile(`(?:src|href|action)="([^"]*)"`).FindAllStringSubmatch(rest, -1) {
			if u, err := url.Parse(ref[1]); err != nil || u.Host != "" || !strings.HasPrefix(ref[1], "/") {
				t.Errorf("GET %s: %q does not point at this host", p, ref[1])
			}
		}
	}
}

func TestPageActions(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("copier@lab.example.edu", "a@example.edu")
	f.backOff(id)

	rec := f.request("POST", "/msg/"+id+"/retry", "", "from=msg")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/msg/"+id+"?done=retried&id="+id {
		t.Fatalf("retry: %d %v", rec.Code, rec.Header())
	}
	if m, _ := f.sp.Get(id); m.NextAttempt.After(f.clk.Now()) || f.kicks.Load() != 1 {
		t.Errorf("retry from the page: next %v, kicks %d", m.NextAttempt, f.kicks.Load())
	}
	mustHave(t, f.page("/msg/"+id+"?done=retried&id="+id), "Message "+id+" is due now")
	// The notice is ours: a crafted link cannot put words on the page.
	if body := f.page("/?done=retried&id=" + url.QueryEscape("X call 555-0100 now")); strings.Contains(body, "555") {
		t.Errorf("the notice repeats text from the query")
	}

	f.backOff(id)
	if rec := f.request("POST", "/retry-all", "", ""); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?done=retried-all&n=1" {
		t.Fatalf("retry-all: %d %v", rec.Code, rec.Header())
	}
	mustHave(t, f.page("/?done=retried-all&n=1"), "1 queued message made due now.")

	held := f.add("scanner@lab.example.edu", "c@example.edu")
	f.update(held, func(m *spool.Message) { m.State = spool.StateHeld })
	if rec := f.request("POST", "/msg/"+held+"/release", "", ""); rec.Code != http.StatusSeeOther {
		t.Fatalf("release: %d %s", rec.Code, rec.Body)
	}
	if m, _ := f.sp.Get(held); m.State != spool.StateQueued {
		t.Errorf("released message is %s", m.State)
	}

	dead := f.add("copier@lab.example.edu", "d@example.edu")
	f.kill(dead, "550 5.7.1 relaying denied")
	// Every recipient refused for good: a plain retry says why (409) ...
	if rec := f.request("POST", "/msg/"+dead+"/retry", "", "from=msg"); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "550 5.7.1 relaying denied") {
		t.Errorf("retry of a refused dead message: %d %s", rec.Code, rec.Body)
	}
	// ... and the force button requeues it.
	if rec := f.request("POST", "/msg/"+dead+"/retry", "", "from=msg&force=1"); rec.Code != http.StatusSeeOther {
		t.Errorf("force retry: %d %s", rec.Code, rec.Body)
	}
	f.kill(dead, "421 try later")
	if rec := f.request("POST", "/retry-dead", "", ""); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?done=retried-dead&n=1" {
		t.Errorf("retry-dead: %d %v", rec.Code, rec.Header())
	}

	// Delete takes a confirmation: a bare POST only leads to the question.
	rec = f.request("POST", "/msg/"+id+"/delete", "", "")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/msg/"+id+"/delete" {
		t.Fatalf("unconfirmed delete: %d %v", rec.Code, rec.Header())
	}
	if _, err := f.sp.Get(id); err != nil {
		t.Fatalf("an unconfirmed delete removed the message: %v", err)
	}
	mustHave(t, f.page("/msg/"+id+"/delete"), "Delete message", id, `name="confirm" value="yes"`, "a@example.edu")
	rec = f.request("POST", "/msg/"+id+"/delete", "", "confirm=yes")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?done=deleted&id="+id {
		t.Fatalf("delete: %d %v", rec.Code, rec.Header())
	}
	if _, err := f.sp.Get(id); err == nil {
		t.Errorf("confirmed delete left the message")
	}
	if rec := f.request("POST", "/msg/"+id+"/retry", "", ""); rec.Code != 404 {
		t.Errorf("retry of a deleted message: %d", rec.Code)
	}
}

// With admin.password_file set, the page and its files want the API's
// password; /healthz alone stays open.
func TestPageAuth(t *testing.T) {
	f := newFixture(t, testSecret)
	id := f.add("copier@lab.example.edu", "a@example.edu")
	for _, p := range []string{"/", "/msg/" + id, "/msg/" + id + "/delete", "/list/dead", "/static/page.css", "/static/page.js"} {
		if rec := f.request("GET", p, "", ""); rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s without the password: %d", p, rec.Code)
		}
		if rec := f.request("GET", p, "wrong", ""); rec.Code != 401 {
			t.Errorf("GET %s with a wrong password: %d", p, rec.Code)
		}
		if rec := f.request("GET", p, testSecret, ""); rec.Code != 200 {
			t.Errorf("GET %s with the password: %d", p, rec.Code)
		}
	}
	for _, p := range []string{"/msg/" + id + "/retry", "/msg/" + id + "/delete", "/retry-all", "/retry-dead"} {
		if rec := f.request("POST", p, "", "confirm=yes"); rec.Code != 401 {
			t.Errorf("POST %s without the password: %d", p, rec.Code)
		}
	}
	if _, err := f.sp.Get(id); err != nil {
		t.Errorf("unauthenticated delete: %v", err)
	}
}

// Paging as the API pages: 100 a page, a cursor to the next.
func TestPagePaging(t *testing.T) {
	f := newFixture(t, "")
	var ids []string
	for i := range 105 {
		ids = append(ids, f.add(fmt.Sprintf("dev%d@lab.example.edu", i), "a@example.edu"))
		f.clk.Add(time.Second) // received in order
	}
	first := f.page("/")
	mustHave(t, first, ids[0], ids[99], "100 of 105", "next page", `href="/?after=`+ids[99]+`"`)
	if strings.Contains(first, ids[100]) {
		t.Errorf("first page shows message 101")
	}
	second := f.page("/?after=" + ids[99])
	mustHave(t, second, ids[100], ids[104], "5 of 105", `href="/"`)
	if strings.Contains(second, ids[99]+"</a>") {
		t.Errorf("second page repeats message 100")
	}
	// The cursor's message delivered meanwhile: the page goes on after it.
	if err := f.sp.Delete(ids[99]); err != nil {
		t.Fatal(err)
	}
	mustHave(t, f.page("/?after="+ids[99]), ids[100], "5 of 104")
}

// The overview with every list full, long replies and a full event ring
// stays within the budget: page plus its own assets at most 150 KB.
func TestPageSizeBudget(t *testing.T) {
	f := newFixture(t, "")
	long := strings.Repeat("421-4.7.0 a long multi-line reply from a relay that explains itself at length ", 6)
	rcpts := []string{"first.recipient.with.a.long.name@dept.example.edu", "second@example.edu", "third@example.edu", "fourth@example.edu", "fifth@example.edu"}
	for i := range 140 {
		id := f.add(fmt.Sprintf("a-long-device-sender-name-%d@instrument-room.lab.example.edu", i), rcpts...)
		f.update(id, func(m *spool.Message) {
			m.LastReply, m.Attempts, m.Device = long, 17, "Konica Minolta bizhub C458 third floor"
			switch {
			case i >= 120:
				m.State = spool.StateDead
			case i >= 100:
				m.State = spool.StateHeld
			}
		})
	}
	lg := slog.New(f.st.Handler(slog.DiscardHandler))
	for i := range 400 {
		lg.Info("message", "id", fmt.Sprint(i), "event", "deferred", "from", "scanner@lab.example.edu", "reply", long)
	}
	page := f.page("/")
	total := len(page)
	for _, a := range []string{"/static/page.css", "/static/page.js", "/static/icon.svg"} {
		rec := f.request("GET", a, "", "")
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d", a, rec.Code)
		}
		total += rec.Body.Len()
	}
	t.Logf("page plus assets: %d bytes", total)
	if total > 150_000 {
		t.Errorf("page plus assets = %d bytes, over the 150 KB budget", total)
	}
}

// markup is written unescaped, so it may only come from string constants
// in this package: an explicit conversion, markup(x), could turn device
// text into HTML, and none may exist.
func TestMarkupOnlyFromConstants(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	conv := regexp.MustCompile(`\bmarkup\(`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if conv.MatchString(line) {
				t.Errorf("%s:%d converts to markup: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// What the status model knows of the clock and of a failed reload is on
// the page: a box without NTP shows wrong ages, and a broken config file
// keeps the old config running.
func TestStatusPageClockAndReload(t *testing.T) {
	f := newFixture(t, "")
	for _, c := range []struct {
		synced, known bool
		want, not     string
	}{
		{false, true, "(NOT synchronised: times and ages may be wrong until NTP syncs)", "(synchronised)"},
		{true, true, "(synchronised)", "NOT synchronised"},
		{false, false, "2025-03-04 10:00:00Z</dd>", "synchronised"},
	} {
		st := status.New(status.Options{Now: f.clk.Now, Version: "test",
			ClockSynced: func() (bool, bool) { return c.synced, c.known }})
		st.Started()
		st.ConfigError(errors.New("relaybox.toml:7: queue.max_size: <bad> is not a size"))
		f.srv = NewServer(Options{Status: st, Queue: f.sp, Now: f.clk.Now})
		body := f.page("/")
		mustHave(t, body, c.want, "The last config reload failed; still running on the previous config: relaybox.toml:7: queue.max_size: &lt;bad&gt; is not a size")
		if strings.Contains(body, c.not) {
			t.Errorf("synced=%v known=%v: the page says %q", c.synced, c.known, c.not)
		}
	}
}
