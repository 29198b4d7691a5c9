package admin

import (
	"log/slog"
	"net/http"
)

// contentSecurityPolicy lets a browser run and style only what this
// address serves itself: no inline script (so text a device smuggled into
// a header cannot run even if escaping ever failed), nothing from another
// host, no framing (clickjacking of the retry and delete buttons), and
// forms that post only back here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// BrowserGuard wraps every admin route with what a browser needs to use it
// safely. Any web page the technician opens could otherwise post to a
// loopback-bound admin address, so state-changing requests from another
// origin are refused with 403 (http.CrossOriginProtection reads
// Sec-Fetch-Site and Origin; the CLI sends neither and is let through).
// Each response gets the headers that keep the status page from being
// framed, leaking its URLs (message ids) as a Referer, or running script
// it did not serve. BrowserGuard is independent of authentication and of any
// other wrapper, so they compose in either order.
func BrowserGuard(h http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Warn("admin: cross-origin request refused", "remote", r.RemoteAddr, "method", r.Method,
			"path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		writeError(w, http.StatusForbidden, "refused: this request came from another web site; "+
			"use the buttons on relaybox's own page or the relaybox CLI")
	}))
	inner := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers older than CSP 2
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		inner.ServeHTTP(w, r)
	})
}
