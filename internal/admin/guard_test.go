package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// request sends method path with extra headers (pairs) and the password.
func (f *fixture) request(method, path, password string, form string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var req *http.Request
	if form != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.Host = "127.0.0.1:8025"
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

// Any web page the technician has open could post to a loopback admin
// address: state changes from another origin are refused, on the JSON API
// and on the page's own forms, before they touch the spool; the CLI (no
// Origin, no Sec-Fetch-Site) and the page itself (same origin) get through.
func TestCrossOriginStateChangesRefused(t *testing.T) {
	f := newFixture(t, testSecret)
	id := f.add("copier@lab.example.edu", "a@example.edu")
	f.backOff(id)
	dead := f.add("copier@lab.example.edu", "b@example.edu")
	f.kill(dead, "421 try later")
	changes := [][2]string{
		{"POST", "/api/queue/" + id + "/retry"}, {"POST", "/api/queue/retry-all"}, {"POST", "/api/dead/retry-all"},
		{"DELETE", "/api/queue/" + id}, {"DELETE", "/api/queue/" + dead},
		{"POST", "/msg/" + id + "/retry"}, {"POST", "/msg/" + id + "/release"}, {"POST", "/retry-all"}, {"POST", "/retry-dead"},
		{"POST", "/msg/" + id + "/delete"}, {"POST", "/msg/" + dead + "/delete"},
	}
	hostile := [][]string{
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "same-site", "Origin", "http://printer.lab.example.edu"},
		{"Origin", "null"}, // a sandboxed frame or a data: page
	}
	for _, c := range changes {
		for _, h := range hostile {
			rec := f.request(c[0], c[1], testSecret, "confirm=yes", h...)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "another web site") {
				t.Errorf("%s %s with %v: %d %s, want 403", c[0], c[1], h, rec.Code, rec.Body)
			}
		}
	}
	if n := f.kicks.Load(); n != 0 {
		t.Errorf("refused requests kicked the scheduler %d times", n)
	}
	for _, want := range []string{id, dead} {
		m, err := f.sp.Get(want)
		if err != nil {
			t.Fatalf("a cross-origin request deleted %s: %v", want, err)
		}
		if m.ID == id && !m.NextAttempt.After(f.clk.Now()) {
			t.Errorf("a cross-origin retry made %s due", id)
		}
	}
	if !strings.Contains(f.logText(), "cross-origin request refused") {
		t.Errorf("refusals not logged:\n%s", f.logText())
	}

	// Reading stays open to anyone with the password: a link from a
	// ticket system to /msg/ID must work.
	if rec := f.request("GET", "/msg/"+id, testSecret, "", "Sec-Fetch-Site", "cross-site"); rec.Code != 200 {
		t.Errorf("cross-site GET of the message page: %d", rec.Code)
	}
	// The page's own form post (same origin) and the CLI (no headers) work.
	if rec := f.request("POST", "/msg/"+id+"/retry", testSecret, "", "Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:8025"); rec.Code != http.StatusSeeOther {
		t.Errorf("same-origin retry: %d %s", rec.Code, rec.Body)
	}
	if rec := f.request("POST", "/api/queue/retry-all", testSecret, ""); rec.Code != 200 {
		t.Errorf("CLI retry-all (no Origin): %d %s", rec.Code, rec.Body)
	}
	if rec := f.request("DELETE", "/api/queue/"+dead, testSecret, ""); rec.Code != 200 {
		t.Errorf("CLI delete (no Origin): %d %s", rec.Code, rec.Body)
	}
	// A direct navigation (typed URL, bookmark) says Sec-Fetch-Site: none.
	if rec := f.request("POST", "/retry-all", testSecret, "", "Sec-Fetch-Site", "none"); rec.Code != http.StatusSeeOther {
		t.Errorf("user-initiated post: %d %s", rec.Code, rec.Body)
	}
}

// Every response carries the browser protections, the API's JSON as much
// as the page, and the errors too.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, testSecret)
	for _, c := range []struct{ path, pass string }{
		{"/", testSecret}, {"/", ""}, {"/api/status", testSecret}, {"/static/page.js", testSecret},
		{"/msg/NOSUCHID", testSecret}, {"/healthz", ""},
	} {
		rec := f.request("GET", c.path, c.pass, "")
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s (%d): CSP %q lacks %s", c.path, rec.Code, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") || strings.Contains(csp, "http") {
			t.Errorf("GET %s: CSP allows too much: %q", c.path, csp)
		}
		if h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", c.path, h)
		}
	}
}
