package admin

import (
	_ "embed" // the page's CSS, script and icon
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"relaybox/internal/led"
	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// The status page: server-rendered HTML for a technician's browser on the
// admin address, with the same password as the API. Every string from a
// device or the upstream is escaped on its way into the page (pagehtml.go),
// and the page runs only the script file it serves itself (see BrowserGuard's
// policy), so hostile header text shows as text. Its buttons call the same
// command layer as the API, the CLI and the serial console.

// The page's own files. Served from a fixed table rather than
// http.FileServer, which would bring in directory listings, ranges and
// MIME sniffing that three small files do not need.
var (
	//go:embed web/static/page.css
	pageCSS []byte
	//go:embed web/static/page.js
	pageJS []byte
	//go:embed web/static/icon.svg
	pageIcon []byte
)

var staticFiles = map[string]struct {
	contentType string
	body        []byte
}{
	"page.css": {"text/css; charset=utf-8", pageCSS},
	"page.js":  {"text/javascript; charset=utf-8", pageJS},
	"icon.svg": {"image/svg+xml", pageIcon},
}

func serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := staticFiles[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	_, _ = w.Write(f.body)
}

// pageRefresh is how often the page's script fetches it again.
const pageRefresh = 5 * time.Second

// Page sizes: the queue is paged as the API pages it; held and dead show a
// shorter first page on the overview (each has its own list page), so the
// overview stays well under its 150 KB budget with every list full.
const (
	pageLimit     = DefaultLimit
	overviewShort = 20
	eventsShown   = 25
)

func (s *Server) routePage() {
	s.mux.HandleFunc("GET /static/{name}", s.auth(serveStatic))
	s.mux.HandleFunc("GET /{$}", s.auth(s.pageStatus))
	s.mux.HandleFunc("GET /list/{state}", s.auth(s.pageList))
	s.mux.HandleFunc("GET /msg/{id}", s.auth(s.pageMessage))
	s.mux.HandleFunc("GET /msg/{id}/delete", s.auth(s.pageConfirmDelete))
	s.mux.HandleFunc("POST /msg/{id}/delete", s.auth(s.pageDelete))
	s.mux.HandleFunc("POST /msg/{id}/retry", s.auth(s.pageRetry))
	s.mux.HandleFunc("POST /msg/{id}/release", s.auth(s.pageRetry))
	s.mux.HandleFunc("POST /retry-all", s.auth(s.pageRetryMany("retried-all", s.RetryAll)))
	s.mux.HandleFunc("POST /retry-dead", s.auth(s.pageRetryMany("retried-dead", s.RetryDead)))
}

// layout is what every page's frame needs; Body is the page's own data.
type layout struct {
	Title   string
	Refresh int // seconds; 0 = the page does not refresh itself
	Host    string
	Version string
	Notice  string // the outcome of the action that led here
	Body    func(*page)
}

// listView is one page of a message list.
type listView struct {
	State spool.State
	Base  string // the page the list is paged on: "/" or "/list/dead"
	Rows  []Message
	Total int
	After string // the cursor this page starts after ("" = the first page)
	Next  string // cursor of the next page; "" on the last
}

// First is the link to the list's first page.
func (v listView) First() string { return v.Base }

// NextURL is the link to the page after this one.
func (v listView) NextURL() string { return v.Base + "?" + url.Values{"after": {v.Next}}.Encode() }

// statusView is the overview at /.
type statusView struct {
	Snap      status.Snapshot
	LED       string
	Uptime    string
	SpoolUse  int // percent of the quota; -1 without one
	Queue     listView
	Held      listView
	Dead      listView
	Events    []status.Event // newest first
	RetryAll  bool           // offer retry all: something is queued
	DeadRetry bool           // offer retry dead
}

func (s *Server) pageStatus(w http.ResponseWriter, r *http.Request) {
	snap := s.Status()
	v := statusView{Snap: snap, LED: ledWords(snap), SpoolUse: -1}
	if !snap.Started.IsZero() {
		v.Uptime = status.FormatDuration(snap.Now.Sub(snap.Started))
	}
	if q := snap.Queue; q.Quota > 0 {
		v.SpoolUse = int((q.Bytes + q.DeadBytes) * 100 / q.Quota)
	}
	var err error
	if v.Queue, err = s.listPage(spool.StateQueued, "/", r.URL.Query().Get("after"), pageLimit); err != nil {
		s.pageFail(w, r, err)
		return
	}
	if v.Held, err = s.listPage(spool.StateHeld, "/list/held", "", overviewShort); err != nil {
		s.pageFail(w, r, err)
		return
	}
	if v.Dead, err = s.listPage(spool.StateDead, "/list/dead", "", overviewShort); err != nil {
		s.pageFail(w, r, err)
		return
	}
	// Retry all acts on the whole queue, not only this page of it.
	v.RetryAll = v.Queue.Total > 0
	v.DeadRetry = v.Dead.Total > 0
	ev := s.opt.Status.Recent(eventsShown)
	for i := len(ev) - 1; i >= 0; i-- {
		v.Events = append(v.Events, ev[i])
	}
	title := "relaybox: " + string(snap.State)
	if snap.Hostname != "" {
		title = fmt.Sprintf("relaybox %s: %s", snap.Hostname, snap.State)
	}
	s.render(w, http.StatusOK, layout{Title: title, Refresh: int(pageRefresh / time.Second),
		Notice: notice(r.URL.Query()), Body: func(p *page) { p.statusBody(v) }})
}

// pageList is one page of the queued, held or dead list on its own.
func (s *Server) pageList(w http.ResponseWriter, r *http.Request) {
	state := spool.State(r.PathValue("state"))
	switch state {
	case spool.StateQueued, spool.StateHeld, spool.StateDead:
	default:
		s.pageFail(w, r, fmt.Errorf("%w: there is no list called %q; the lists are queued, held and dead", errNoPage, state))
		return
	}
	v, err := s.listPage(state, "/list/"+string(state), r.URL.Query().Get("after"), pageLimit)
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, layout{Title: "relaybox: " + string(state) + " messages",
		Refresh: int(pageRefresh / time.Second), Notice: notice(r.URL.Query()), Body: func(p *page) { p.listBody(v) }})
}

// messageView is one message's page.
type messageView struct {
	*Detail
	Fields     []status.Field
	CanRetry   bool // queued with a recipient waiting, or dead
	CanRelease bool
	CanForce   bool // dead: requeue even recipients refused with a 5xx
}

func (s *Server) pageMessage(w http.ResponseWriter, r *http.Request) {
	d, err := s.Show(r.PathValue("id"))
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	v := messageView{Detail: d, Fields: d.Fields(),
		CanRetry:   d.State == spool.StateDead || (d.State == spool.StateQueued && hasPending(d.Message)),
		CanRelease: d.State == spool.StateHeld,
		CanForce:   d.State == spool.StateDead,
	}
	s.render(w, http.StatusOK, layout{Title: "relaybox: message " + d.ID,
		Refresh: int(pageRefresh / time.Second), Notice: notice(r.URL.Query()), Body: func(p *page) { p.messageBody(v) }})
}

// pageConfirmDelete is the confirmation step: deleting is for good, so it
// takes a second, deliberate click on a page that names the message.
func (s *Server) pageConfirmDelete(w http.ResponseWriter, r *http.Request) {
	d, err := s.Show(r.PathValue("id"))
	if err != nil {
		s.pageFail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, layout{Title: "relaybox: delete " + d.ID + "?", Body: func(p *page) { p.confirmBody(d) }})
}

func (s *Server) pageDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if formValue(r, "confirm") != "yes" {
		// A bare POST (a script, a double submit of an old form) does not
		// delete: only the confirmation page's button sends confirm=yes.
		http.Redirect(w, r, "/msg/"+url.PathEscape(id)+"/delete", http.StatusSeeOther)
		return
	}
	if err := s.Delete(id); err != nil {
		s.pageFail(w, r, err)
		return
	}
	http.Redirect(w, r, "/?"+url.Values{"done": {"deleted"}, "id": {id}}.Encode(), http.StatusSeeOther)
}

// pageRetry serves retry and release (a held message is released by
// retrying it, as in the CLI). The answer is a redirect (post/redirect/get),
// so reloading the page afterwards does not retry again.
func (s *Server) pageRetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	retry, done := s.Retry, "retried"
	if strings.HasSuffix(r.URL.Path, "/release") {
		done = "released"
	} else if formValue(r, "force") == "1" {
		retry = s.ForceRetry
	}
	if _, err := retry(id); err != nil {
		s.pageFail(w, r, err)
		return
	}
	back := "/"
	if formValue(r, "from") == "msg" {
		back = "/msg/" + url.PathEscape(id)
	}
	http.Redirect(w, r, back+"?"+url.Values{"done": {done}, "id": {id}}.Encode(), http.StatusSeeOther)
}

func (s *Server) pageRetryMany(done string, retry func() (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := retry()
		if err != nil {
			s.pageFail(w, r, err)
			return
		}
		http.Redirect(w, r, "/?"+url.Values{"done": {done}, "n": {strconv.Itoa(n)}}.Encode(), http.StatusSeeOther)
	}
}

// formValue reads a field of the page's own url-encoded forms. (Request's
// PostFormValue would also link in the multipart parser, which the page's
// forms never use.)
func formValue(r *http.Request, name string) string {
	if r.PostForm == nil {
		_ = r.ParseForm() // a malformed body reads as empty fields: nothing is confirmed
	}
	return r.PostForm.Get(name)
}

// notice turns the done=... of a redirect into a sentence. Only our own
// wordings come out: the query is anyone's to write, so it never supplies
// text of its own beyond a queue id and a count.
func notice(q url.Values) string {
	id := q.Get("id")
	if !plainID(id) {
		id = ""
	}
	n, _ := strconv.Atoi(q.Get("n"))
	switch q.Get("done") {
	case "retried":
		if id != "" {
			return "Message " + id + " is due now; the scheduler is dialling the upstream."
		}
	case "released":
		if id != "" {
			return "Message " + id + " was released and is due now."
		}
	case "deleted":
		if id != "" {
			return "Message " + id + " was deleted."
		}
	case "retried-all":
		return status.Plural(n, "queued message") + " made due now."
	case "retried-dead":
		return status.Plural(n, "dead message") + " put back in the queue."
	}
	return ""
}

// plainID: queue ids are short and alphanumeric.
func plainID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// listPage is one page of the listing in state, paged exactly as the
// API pages it (List: ?after=ID, ids sort by arrival, with the total and
// the next cursor); base is the page whose ?after= the pager links to.
func (s *Server) listPage(state spool.State, base, after string, limit int) (listView, error) {
	p, err := s.List(state, after, limit)
	if err != nil {
		return listView{}, err
	}
	return listView{State: state, Base: base, Rows: p.Messages, Total: p.Total, After: after, Next: p.Next}, nil
}

func hasPending(m Message) bool {
	for _, r := range m.Recipients {
		if r.State == spool.RcptPending {
			return true
		}
	}
	return false
}

// ledWords says what the LED shows now, asked as the daemon's LED loop
// asks (busy = anything in the queue); the words come from the led package
// so they match the README and the pattern itself.
func ledWords(snap status.Snapshot) string {
	return led.Describe(snap.State, snap.Queue.Messages > 0)
}

// errNoPage marks a page that does not exist (404).
var errNoPage = errors.New("no such page")

// pageFail shows a command error as a page with the status code the API
// would use. The text is the command layer's own (ids, states, upstream
// replies), escaped like everything else.
func (s *Server) pageFail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, spool.ErrNotFound), errors.Is(err, errNoPage):
		code = http.StatusNotFound
	case errors.Is(err, ErrNothingToRetry):
		code = http.StatusConflict
	default:
		s.log.Error("admin: page request failed", "path", r.URL.Path, "err", err)
	}
	s.render(w, code, layout{Title: "relaybox: " + http.StatusText(code), Body: func(p *page) { p.failureBody(err.Error()) }})
}

// render writes the page with its frame.
func (s *Server) render(w http.ResponseWriter, code int, l layout) {
	snap := s.opt.Status.Snapshot()
	l.Host, l.Version = snap.Hostname, snap.Version
	var p page
	p.layout(l)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(p.b.Bytes())
}
