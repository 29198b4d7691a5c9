// Package admin is relaybox's local HTTP API (/healthz, /metrics, /api/...)
// and the command layer behind it, which the serial console shares. It also
// holds the Client the CLI's status and queue commands use.
//
// Authentication is HTTP basic auth with one shared password (any user
// name) when admin.password_file is set. Over plain HTTP on a LAN that is
// the honest minimum: it keeps out the curious, not someone sniffing the
// wire. /healthz stays open so monitoring needs no secret.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/throttle"
)

// Queue is what the admin layer needs of the spool; *spool.Spool has it.
type Queue interface {
	Get(id string) (*spool.Message, error)
	Page(state spool.State, after string, limit int) (msgs []*spool.Message, total int, more bool, err error)
	// Run is the spool's run clock, which a requeued dead letter's age
	// counts from again (spool.Message.QueuedRun).
	Run() time.Duration
	Update(id string, fn func(*spool.Message) error) (*spool.Message, error)
	Delete(id string) error
	Headers(id string, max int) ([]byte, error)
}

var _ Queue = (*spool.Spool)(nil)

// Options configure NewServer.
type Options struct {
	Status *status.Model
	Queue  Queue
	// Kick starts a delivery pass after a retry or release, one that dials
	// at once through any upstream hold (deliver.Scheduler.Retry); may be nil.
	Kick     func()
	Now      func() time.Time // default time.Now
	Password string           // "" = no authentication
	Logger   *slog.Logger     // default discard
	// Guard limits password guesses per client address; nil builds one
	// with throttle's defaults and Now.
	Guard *throttle.Guard
	// Hostname is the box's configured name: a Host the API answers to,
	// besides its address and localhost.
	Hostname string
	Started  time.Time // when the process started (process_start_time_seconds); default: NewServer's time
	// Reload re-reads the config file and applies it (POST /api/reload);
	// nil answers 501. An error means the running config was kept.
	Reload func() (ReloadResult, error)
}

// ReloadResult is what a config reload did.
type ReloadResult struct {
	File string `json:"file"` // the file read; "" for built-in defaults
	// RestartNeeded names the keys that changed but apply only at the
	// next start (e.g. "hostname", "admin.listen").
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// Server is the admin HTTP API and command layer. It implements
// http.Handler.
type Server struct {
	opt     Options
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux behind BrowserGuard
	passSum [sha256.Size]byte
}

var _ http.Handler = (*Server)(nil)

// NewServer builds the server. Status and Queue are required.
func NewServer(opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Started.IsZero() {
		opt.Started = opt.Now()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Guard == nil {
		opt.Guard = throttle.New(throttle.Options{Now: opt.Now})
	}
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux()}
	if opt.Password != "" {
		s.passSum = sha256.Sum256([]byte(opt.Password))
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /metrics", s.auth(s.metrics))
	s.mux.HandleFunc("GET /api/status", s.auth(s.apiStatus))
	s.mux.HandleFunc("GET /api/events", s.auth(s.apiEvents))
	s.mux.HandleFunc("GET /api/queue", s.auth(s.apiList(spool.StateQueued)))
	s.mux.HandleFunc("GET /api/dead", s.auth(s.apiList(spool.StateDead)))
	s.mux.HandleFunc("GET /api/held", s.auth(s.apiList(spool.StateHeld)))
	s.mux.HandleFunc("GET /api/queue/{id}", s.auth(s.apiShow))
	s.mux.HandleFunc("POST /api/queue/{id}/retry", s.auth(s.apiRetry))
	s.mux.HandleFunc("POST /api/queue/retry-all", s.auth(s.apiRetryMany(s.RetryAll)))
	s.mux.HandleFunc("POST /api/dead/retry-all", s.auth(s.apiRetryMany(s.RetryDead)))
	s.mux.HandleFunc("DELETE /api/queue/{id}", s.auth(s.apiDelete))
	s.mux.HandleFunc("POST /api/reload", s.auth(s.apiReload))
	s.mux.HandleFunc("/api/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	}))
	s.routePage()
	s.handler = BrowserGuard(s.mux, s.log)
	return s
}

// maxBody bounds a request body: no endpoint takes more than a few words.
const maxBody = 64 << 10

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.handler.ServeHTTP(w, r)
}

// HTTPServer wraps the handler for the listener on addr, with timeouts fit
// for a small box (a slow, stuck or idle client cannot hold a connection
// for long) and the Host check against DNS rebinding: requests must name
// addr, localhost, Options.Hostname or one of names.
func (s *Server) HTTPServer(addr net.Addr, names ...string) *http.Server {
	return &http.Server{
		Handler:           requireHost(listenerHosts(addr, append(names, s.opt.Hostname)...), s),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       15 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// auth wraps h with basic auth when a password is set. The user name is
// ignored; the password is compared in constant time (of equal-length
// hashes, so its length does not leak either).
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.opt.Password == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		if !ok {
			s.unauthorized(w)
			return
		}
		// Guesses are counted per client address across connections, as
		// for device AUTH.
		ip := remoteIP(r.RemoteAddr)
		if v := s.opt.Guard.Allow(ip); !v.OK {
			if v.Report {
				s.log.Warn("admin: password refused unchecked: too many wrong passwords from this client",
					"remote", ip.String(), "failures", v.Failures, "refused", v.Refused, "for", v.RetryAfter.String())
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(v.RetryAfter.Seconds())+1))
			writeError(w, http.StatusTooManyRequests, "too many wrong passwords from your address; try again later")
			return
		}
		sum := sha256.Sum256([]byte(pass))
		if subtle.ConstantTimeCompare(sum[:], s.passSum[:]) != 1 {
			delay := s.opt.Guard.Failed(ip)
			s.log.Warn("admin: wrong password", "remote", r.RemoteAddr, "path", r.URL.Path)
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
				}
			}
			s.unauthorized(w)
			return
		}
		s.opt.Guard.Succeeded(ip)
		h(w, r)
	}
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="relaybox", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "authentication required: use the password in admin.password_file")
}

// remoteIP is the client address of a request (the zero Addr if it has
// none, which the guard then counts as one client).
func remoteIP(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// healthz is for load balancers and monitoring: 200 while mail flows
// (ok or degraded), 503 otherwise. The reason is in the body.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	snap := s.opt.Status.Snapshot()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	code := http.StatusServiceUnavailable
	if snap.State == status.OK || snap.State == status.Degraded {
		code = http.StatusOK
	}
	w.WriteHeader(code)
	body := string(snap.State)
	if snap.State != status.OK && snap.Reason != "" {
		body += ": " + snap.Reason
	}
	_, _ = w.Write([]byte(body + "\n"))
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.opt.Status.Snapshot())
}

// apiEvents returns the ring of recent log events, newest last.
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"events": s.opt.Status.Recent(0)})
}

// apiList serves one page of a listing: ?limit=N (default DefaultLimit, at
// most MaxLimit) and ?after=ID, the page's "next" cursor.
func (s *Server) apiList(state spool.State) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := DefaultLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want a number from 1 to %d", v, MaxLimit))
				return
			}
			limit = n
		}
		p, err := s.List(state, q.Get("after"), limit)
		if err != nil {
			s.fail(w, err)
			return
		}
		// Compact: a page of 100 stays well under 64 KB, which an
		// indented one did not.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(p)
	}
}

func (s *Server) apiShow(w http.ResponseWriter, r *http.Request) {
	d, err := s.Show(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// apiRetry: ?force=1 also requeues recipients refused with a 5xx.
func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) {
	retry := s.Retry
	if f := r.URL.Query().Get("force"); f == "1" || f == "true" {
		retry = s.ForceRetry
	}
	m, err := retry(r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(m, s.opt.Now()))
}

// apiRetryMany serves retry-all (RetryAll or RetryDead).
func (s *Server) apiRetryMany(retry func() (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := retry()
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"retried": n})
	}
}

// apiReload answers 200 with what was applied, or 422 with why the file
// was refused (the daemon keeps running on the config it had).
func (s *Server) apiReload(w http.ResponseWriter, r *http.Request) {
	if s.opt.Reload == nil {
		writeError(w, http.StatusNotImplemented, "this daemon cannot reload its config; restart it")
		return
	}
	res, err := s.opt.Reload()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "reload refused, the running config stays: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Delete(id); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}

// fail maps a command error to a status code. Errors from the spool carry
// no secrets and no message content, so the text is safe to return.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, spool.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNothingToRetry):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Error("admin: request failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
