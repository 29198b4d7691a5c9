package main

// The status page in a real browser: headless Chromium, driven over the
// DevTools protocol by chromedp, against the real binary.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"relaybox/internal/admin"
	"relaybox/internal/sink"
)

// findChromium returns the browser to drive, or "" when none is installed.
func findChromium() string {
	if p := os.Getenv("RELAYBOX_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium with a fresh profile and no network
// chatter of its own (the machine may have no internet), and returns a
// tab's context.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	exe := findChromium()
	if exe == "" {
		t.Skip("SKIPPED: no Chromium found; the status page's browser tests need Debian's `chromium` package " +
			"(apt-get install chromium) or RELAYBOX_CHROMIUM=/path/to/chrome")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// within runs steps with a deadline, failing the test with what it was doing.
func within(t *testing.T, ctx context.Context, what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// sendCurl submits one message with curl and returns its queue id.
func sendCurl(t *testing.T, addr, from, to, message string) string {
	t.Helper()
	file := writeFile(t, filepath.Join(t.TempDir(), "msg.eml"), message)
	out, err := exec.Command("curl", "-sS", "-v", "--url", "smtp://"+addr, "--mail-from", from,
		"--mail-rcpt", to, "--upload-file", file).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`< 250 .*queued as ([0-9A-Z]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("curl: no queue id in\n%s", out)
	}
	return string(m[1])
}

const hostileSubject = `<script>document.title='pwned';window.pwned=1</script><img src=x onerror="document.title='pwned';window.pwned=2">`

func TestE2EStatusPageInBrowser(t *testing.T) {
	if findChromium() == "" {
		t.Skip("SKIPPED: no Chromium found; the status page's browser tests need Debian's `chromium` package " +
			"(apt-get install chromium) or RELAYBOX_CHROMIUM=/path/to/chrome")
	}
	dir := t.TempDir()
	up := startUpstream(t, dir, false, sink.Options{})
	if err := up.sink.Stop(); err != nil { // down: the first attempts defer
		t.Fatal(err)
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	const password = "page-test-secret"
	pwFile := writeFile(t, filepath.Join(dir, "admin.pw"), password+"\n")
	cfg := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), "[admin]\nlisten = \"\"\n",
		fmt.Sprintf("[admin]\nlisten = %q\npassword_file = %q\n", adminAddr, pwFile), 1)
	// A deferred message waits an hour on its own, and the failed upstream
	// is held back as long: only the page's retry button can get it
	// delivered within the test.
	cfg += fmt.Sprintf(`[delivery]
min_backoff = "1h"
max_backoff = "2h"
upstream_hold = "1h"
[[upstream]]
address = %q
tls = "starttls"
ca_file = %q
`, up.sink.Addr(), up.caFile)
	p := startRelay(t, writeFile(t, filepath.Join(dir, "relaybox.toml"), cfg), addr)
	base := "http://" + adminAddr

	first := sendCurl(t, addr, "scanner@campus.test", "alice@campus.test",
		"Subject: scan from the third floor\r\nFrom: scanner@campus.test\r\n\r\nPAGE-BODY-SECRET\r\n")
	waitLog(t, p, "id="+first+" event=deferred", 1)

	ctx := browser(t, 1280, 900)
	auth := network.Headers{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+password))}
	within(t, ctx, "opening the status page", 60*time.Second,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: auth}); err != nil {
				return err
			}
			// Record what the Content-Security-Policy blocks: the page
			// itself must need nothing it forbids.
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: `window.cspBlocked = []; document.addEventListener('securitypolicyviolation', function (e) { window.cspBlocked.push(e.violatedDirective + ' ' + e.blockedURI); });`})
			return err
		}),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("m-"+first)),
	)
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		t.Errorf("on a 1280px screen the page is %dpx too wide", w)
	}
	noneBlocked := func(where string) {
		t.Helper()
		if b := eval[string](t, ctx, `JSON.stringify(window.cspBlocked)`); b != "[]" {
			t.Errorf("%s: the Content-Security-Policy blocked %s", where, b)
		}
	}
	text := eval[string](t, ctx, `document.body.innerText`)
	mustContain(t, text, first, up.sink.Addr(), "alice@campus.test", "scanner@campus.test", "DEGRADED", "down")
	if strings.Contains(text, "PAGE-BODY-SECRET") {
		t.Errorf("the page shows a message body")
	}

	// Mail that arrives while the page is open shows up without a reload:
	// a marker set in this document survives.
	eval[bool](t, ctx, `window.stillHere = true`)
	hostile := sendCurl(t, addr, "copier@campus.test", "bob@campus.test",
		"Subject: "+hostileSubject+"\r\nX-Note: </textarea><script>window.pwned=3</script>\r\n\r\nbody\r\n")
	within(t, ctx, "waiting for the page to refresh itself", 60*time.Second, chromedp.WaitVisible(chromedp.ID("m-"+hostile)))
	if !eval[bool](t, ctx, `window.stillHere === true`) {
		t.Errorf("the page reloaded instead of refreshing in place")
	}

	shot := func(name string) {
		c, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(t.TempDir(), name)
		writeFile(t, path, string(png))
		t.Logf("screenshot: %s", path)
		fmt.Printf("status page screenshot: %s\n", path)
		// RELAYBOX_SCREENSHOTS=docs refreshes the README's picture.
		if dst := os.Getenv("RELAYBOX_SCREENSHOTS"); dst != "" && name == "status-page.png" {
			writeFile(t, filepath.Join(dst, name), string(png))
		}
	}
	shot("status-page.png")
	noneBlocked("status page")

	// The hostile header shows as text on the message page, and nothing of
	// it runs.
	within(t, ctx, "opening the hostile message", 60*time.Second,
		chromedp.Navigate(base+"/msg/"+hostile),
		chromedp.WaitVisible(chromedp.CSS("pre.headers")),
	)
	if title := eval[string](t, ctx, `document.title`); title != "relaybox: message "+hostile {
		t.Errorf("document.title = %q", title)
	}
	if v := eval[string](t, ctx, `String(window.pwned)`); v != "undefined" {
		t.Errorf("script from a header ran: window.pwned = %s", v)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('img, textarea, script:not([src="/static/page.js"])').length`); n != 0 {
		t.Errorf("%d elements made from header text", n)
	}
	shot("message-page.png")
	noneBlocked("message page")
	headers := eval[string](t, ctx, `document.querySelector('pre.headers').textContent`)
	mustContain(t, headers, hostileSubject, "</textarea><script>window.pwned=3</script>")

	// On a phone the page is one column and nothing sticks out sideways.
	within(t, ctx, "phone width", 60*time.Second, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("m-"+first)))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		t.Errorf("on a 390px screen the page is %dpx too wide", w)
	}
	shot("status-page-phone.png")
	noneBlocked("status page on a phone")
	within(t, ctx, "laptop width", 30*time.Second, chromedp.EmulateViewport(1280, 900))

	// Without JavaScript the page still reads and its buttons are there;
	// the footer keeps saying to reload (page.js would have changed it).
	within(t, ctx, "scripts off", 60*time.Second,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#m-"+first+" button")))
	if note := eval[string](t, ctx, `document.getElementById('refresh-note').textContent`); note != "reload the page to update it" {
		t.Errorf("with scripts off, the footer says %q", note)
	}
	within(t, ctx, "scripts on", 60*time.Second,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
			return err
		}))

	// A page from another origin cannot post to the admin address: its
	// form's delete lands on a 403 and the message stays.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/msg/%s/delete"><input type="hidden" name="confirm" value="yes"><button id="go">win a prize</button></form>`, base, first)
	}))
	defer evil.Close()
	within(t, ctx, "cross-origin form", 60*time.Second,
		chromedp.Navigate(evil.URL), chromedp.Click(chromedp.ID("go")), chromedp.WaitVisible(chromedp.CSS("body")))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(eval[string](t, ctx, `document.body.innerText`), "another web site") {
		if time.Now().After(deadline) {
			t.Fatalf("the cross-origin post was not refused: %s", eval[string](t, ctx, `location.href+" "+document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	client := &admin.Client{Base: base, Password: password}
	if _, err := client.Show(first); err != nil {
		t.Fatalf("after the cross-origin post: %v", err)
	}
	if !strings.Contains(p.Log(), "cross-origin request refused") {
		t.Errorf("refusal not logged")
	}

	// The upstream is back; retry on the page delivers at once, though
	// the backoff and the upstream's hold had an hour to go.
	if err := up.sink.Restart(); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, "pressing retry", 60*time.Second,
		chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS("#m-"+first+" button")),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	mustContain(t, eval[string](t, ctx, `document.querySelector('p.notice').textContent`), first, "due now")
	// (Other mail that waited for the upstream may follow it; this one
	// must arrive.)
	deadline = time.Now().Add(60 * time.Second)
	for arrived := false; !arrived; {
		for _, m := range up.sink.Messages() {
			arrived = arrived || strings.Contains(string(m.Body), "scan from the third floor")
		}
		if !arrived && time.Now().After(deadline) {
			t.Fatalf("the retried message never arrived\n%s", p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The page notices on its own: the row goes, the upstream is up.
	within(t, ctx, "waiting for the delivered row to go", 60*time.Second, chromedp.WaitNotPresent(chromedp.ID("m-"+first)))
	mustContain(t, eval[string](t, ctx, `document.querySelector('.upstream').innerText`), "up")
}

// The reproduction with curl: the JSON API refuses state changes
// from another origin, while the CLI (no Origin) keeps working.
func TestE2EAdminRefusesCrossOrigin(t *testing.T) {
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), "[admin]\nlisten = \"\"\n",
		fmt.Sprintf("[admin]\nlisten = %q\n", adminAddr), 1)
	startRelay(t, writeFile(t, filepath.Join(dir, "relaybox.toml"), cfg), addr)
	id := sendCurl(t, addr, "scanner@campus.test", "alice@campus.test", "Subject: keep me\r\n\r\nx\r\n")
	base := "http://" + adminAddr

	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if code := curl("-X", "POST", "-H", "Origin: http://evil.example", base+"/api/queue/retry-all"); code != "403" {
		t.Errorf("cross-origin retry-all: %s, want 403", code)
	}
	if code := curl("-X", "DELETE", "-H", "Origin: http://evil.example", "-H", "Sec-Fetch-Site: cross-site", base+"/api/queue/"+id); code != "403" {
		t.Errorf("cross-origin delete: %s, want 403", code)
	}
	if code := curl(base + "/api/queue/" + id); code != "200" {
		t.Fatalf("after the cross-origin delete, GET the message: %s", code)
	}
	if code := curl("-X", "POST", "-H", "Origin: http://evil.example", "-d", "confirm=yes", base+"/msg/"+id+"/delete"); code != "403" {
		t.Errorf("cross-origin delete form: %s, want 403", code)
	}
	for _, args := range [][]string{{"queue", "retry-all"}, {"queue", "delete", id}} {
		out, err := exec.Command(relayBinary, append(args, "-admin", adminAddr)...).CombinedOutput()
		if err != nil {
			t.Fatalf("relaybox %v: %v\n%s", args, err, out)
		}
	}
	if code := curl(base + "/api/queue/" + id); code != "404" {
		t.Errorf("the CLI's delete did not delete: GET says %s", code)
	}
}
