package admin

import (
	"bytes"
	"html"
	"net/url"
	"strconv"

	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/text"
)

// The page's HTML is written by the functions in this file rather than by
// html/template: text/template's reflection (MethodByName) keeps every
// exported method of the binary alive, which cost 1.9 MB of the 10 MB
// release binary for a page worth under 200 KB (docs/performance.md has
// the figures).
// Safety comes from the types instead of a template engine:
//
//   - markup is the only thing written unescaped, and an untyped string
//     constant is the only thing that becomes markup without a conversion;
//     a string from a device cannot be passed where markup is wanted, and
//     TestMarkupOnlyFromConstants rejects explicit conversions;
//   - text and attribute values go through html.EscapeString (< > & ' "),
//     and every attribute is double-quoted;
//   - links are built from path-escaped queue ids after a fixed "/" prefix,
//     so no scheme (javascript:) can appear.

// markup is HTML we wrote ourselves.
type markup string

// page accumulates one HTML document.
type page struct{ b bytes.Buffer }

// m writes markup as it is.
func (p *page) m(s markup) { p.b.WriteString(string(s)) }

// t writes text, escaped; also right for a double-quoted attribute value.
func (p *page) t(s string) { p.b.WriteString(html.EscapeString(s)) }

// n writes a number.
func (p *page) n(i int) { p.b.WriteString(strconv.Itoa(i)) }

// el writes open, the escaped text, and close: <dd>text</dd>.
func (p *page) el(open markup, text string, close markup) { p.m(open); p.t(text); p.m(close) }

// dl writes a definition list row.
func (p *page) dt(label markup, value string) {
	p.m("<dt>" + label + "</dt>")
	p.el("<dd>", value, "</dd>\n")
}

func msgURL(id string) string { return "/msg/" + url.PathEscape(id) }

// postButton is a form with one button posting to action, with optional
// hidden fields (name, value pairs of our own).
func (p *page) postButton(action, label string, class markup, hidden ...markup) {
	p.m(`<form method="post" action="`)
	p.t(action)
	p.m(`">`)
	for i := 0; i+1 < len(hidden); i += 2 {
		p.m(`<input type="hidden" name="` + hidden[i] + `" value="` + hidden[i+1] + `">`)
	}
	if class != "" {
		p.m(`<button class="` + class + `">`)
	} else {
		p.m(`<button>`)
	}
	p.t(label)
	p.m("</button></form>")
}

func (p *page) layout(l layout) {
	p.m("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n" +
		"<meta name=\"referrer\" content=\"no-referrer\">\n")
	p.el("<title>", l.Title, "</title>\n")
	p.m("<link rel=\"stylesheet\" href=\"/static/page.css\">\n" +
		"<link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\">\n" +
		"<script src=\"/static/page.js\" defer></script>\n</head>\n")
	if l.Refresh > 0 {
		p.m(`<body data-refresh="`)
		p.n(l.Refresh)
		p.m("\">\n")
	} else {
		p.m("<body>\n")
	}
	p.m(`<nav class="top"><a href="/" class="brand">relaybox</a> `)
	p.el(`<span class="host">`, l.Host, "</span></nav>\n")
	if l.Notice != "" {
		p.el(`<p class="notice" role="status">`, l.Notice, "</p>\n")
	}
	p.m("<main id=\"live\">\n")
	l.Body(p)
	p.m("</main>\n")
	p.el("<footer>relaybox ", l.Version, "")
	if l.Refresh > 0 {
		p.m(` · <span id="refresh-note">reload the page to update it</span>`)
	}
	p.m("</footer>\n</body>\n</html>\n")
}

// rcpts lists up to three recipients, the state of those not pending.
func (p *page) rcpts(rs []Recipient) {
	p.m(`<ul class="rcpts">`)
	for i, r := range rs {
		if i == 3 {
			p.m("<li>+")
			p.n(len(rs) - 3)
			p.m(" more</li>")
			break
		}
		p.el("<li>", r.Address, "")
		if r.State != spool.RcptPending {
			p.m(` <small class="r-`)
			p.t(string(r.State))
			p.m(`">`)
			p.t(string(r.State))
			p.m("</small>")
		}
		p.m("</li>")
	}
	p.m("</ul>")
}

func (p *page) listTable(v listView) {
	if len(v.Rows) == 0 {
		p.m("<p class=\"empty\">none</p>\n")
		return
	}
	p.m("<table class=\"msgs\">\n<thead><tr><th>id</th><th>age</th><th>from</th><th>recipients</th>" +
		"<th>attempts</th><th>next</th><th>last reply</th><th></th></tr></thead>\n<tbody>\n")
	for _, m := range v.Rows {
		p.m(`<tr id="m-`)
		p.t(m.ID)
		p.m(`">` + "\n" + `<td data-label="id"><a href="`)
		p.t(msgURL(m.ID))
		p.el(`" class="id">`, m.ID, "</a></td>\n")
		p.el(`<td data-label="age">`, m.Age(), "</td>\n")
		p.el(`<td data-label="from">`, Sender(m.From), "")
		if m.Device != "" {
			p.el(" <small>(", m.Device, ")</small>")
		}
		p.m("</td>\n<td data-label=\"to\">")
		p.rcpts(m.Recipients)
		p.m("</td>\n")
		p.el(`<td data-label="attempts">`, strconv.Itoa(m.Attempts), "</td>\n")
		next := "-"
		if m.State == spool.StateQueued {
			next = m.Next()
		}
		p.el(`<td data-label="next">`, next, "</td>\n")
		p.el(`<td data-label="reply" class="reply">`, text.Clip(m.LastReply, 100), "</td>\n")
		p.m(`<td class="act">`)
		switch {
		case m.State == spool.StateHeld:
			p.postButton(msgURL(m.ID)+"/release", "release", "")
		case m.State == spool.StateDead || hasPending(m):
			p.postButton(msgURL(m.ID)+"/retry", "retry", "")
		}
		p.m("</td>\n</tr>\n")
	}
	p.m("</tbody>\n</table>\n")
}

func (p *page) pager(v listView) {
	p.m(`<p class="pager">`)
	if v.Total > 0 {
		p.n(len(v.Rows))
		p.m(" of ")
		p.n(v.Total)
		if v.After != "" {
			p.m(` · <a href="`)
			p.t(v.First())
			p.m(`">first page</a>`)
		}
		if v.Next != "" {
			p.m(` · <a href="`)
			p.t(v.NextURL())
			p.m(`">next page</a>`)
		}
	}
	p.m("</p>\n")
}

func (p *page) statusBody(v statusView) {
	snap := v.Snap
	p.m("<section class=\"summary\">\n<div class=\"card state state-")
	p.t(string(snap.State))
	p.el("\">\n<h1>", string(snap.State), "</h1>\n")
	reason := snap.Reason
	if reason == "" {
		reason = "Mail is flowing; nothing needs attention."
	}
	p.el(`<p class="reason">`, reason, "</p>\n<dl>\n")
	p.dt("since", status.Ago(snap.Now, snap.Since))
	p.dt("LED", v.LED)
	p.dt("host", snap.Hostname)
	p.dt("version", snap.Version)
	up := v.Uptime
	if up == "" {
		up = "starting"
	}
	p.dt("uptime", up)
	clock := Stamp(snap.Now)
	switch snap.Clock {
	case status.ClockSynchronised:
		clock += " (synchronised)"
	case status.ClockUnsynchronised:
		clock += " (NOT synchronised: times and ages may be wrong until NTP syncs)"
	}
	p.dt("clock", clock)
	p.m("</dl>\n")
	if snap.ConfigError != "" {
		p.el(`<p class="warning">`, "The last config reload failed; still running on the previous config: "+snap.ConfigError, "</p>\n")
	}
	for _, w := range snap.Warnings {
		p.el(`<p class="warning">`, w, "</p>\n")
	}
	p.m("</div>\n\n<div class=\"card\">\n<h2>Upstream</h2>\n")
	if snap.NoUpstream {
		p.m(`<p class="warning">None configured: mail is held until an [[upstream]] is added to the config.</p>` + "\n")
	}
	for _, u := range snap.Upstreams {
		state := "down"
		if u.Up {
			state = "up"
		}
		p.m(`<div class="upstream `)
		p.t(state)
		p.el(`"><p><strong class="addr">`, u.Name, "</strong> ")
		p.el(`<span class="badge">`, state, "</span></p>\n<dl>\n")
		p.dt("last success", status.Ago(snap.Now, u.LastSuccess))
		failures := strconv.Itoa(u.ConsecutiveFailures) + " in a row"
		if !u.FailingSince.IsZero() {
			failures += ", since " + status.Ago(snap.Now, u.FailingSince)
		}
		p.dt("failures", failures)
		if u.LastError != "" {
			p.el(`<dt>last error</dt><dd class="reply">`, u.LastError, "")
			p.el(" <small>(", status.Ago(snap.Now, u.LastFailure), ")</small></dd>\n")
		}
		p.m("</dl>\n</div>\n")
	}
	p.m("</div>\n\n<div class=\"card\">\n<h2>Spool</h2>\n<dl>\n")
	q := snap.Queue
	queued := status.Plural(max(q.Messages-q.Held, 0), "message") + " (" + status.FormatBytes(max(q.Bytes-q.HeldBytes, 0)) + ")"
	if q.Messages > 0 {
		queued += ", oldest " + status.FormatDuration(seconds(q.OldestAgeSeconds))
	}
	p.dt("queued", queued)
	p.dt("held", status.Plural(q.Held, "message")+" ("+status.FormatBytes(q.HeldBytes)+")")
	p.dt("dead", status.Plural(q.Dead, "message")+" ("+status.FormatBytes(q.DeadBytes)+")")
	if q.Quota > 0 {
		p.dt("quota", strconv.Itoa(v.SpoolUse)+"% of "+status.FormatBytes(q.Quota))
		p.m(`</dl>` + "\n" + `<meter min="0" max="100" high="80" optimum="0" value="`)
		p.n(v.SpoolUse)
		p.m(`">`)
		p.n(v.SpoolUse)
		p.m("%</meter>\n")
	} else {
		p.dt("quota", "unlimited")
		p.m("</dl>\n")
	}
	c := snap.Counters
	p.m("<h3>Since start</h3>\n<p class=\"counters\">")
	for _, kv := range []struct {
		k markup
		v uint64
	}{{"accepted", c.Accepted}, {"delivered", c.Delivered}, {"deferred", c.Deferred}, {"failed", c.Failed}, {"expired", c.Expired}} {
		p.m("<span>" + kv.k + " <b>")
		p.t(strconv.FormatUint(kv.v, 10))
		p.m("</b></span> ")
	}
	p.m("</p>\n</div>\n</section>\n\n")

	p.m("<section id=\"queue\">\n<div class=\"head\"><h2>Queue</h2>\n")
	if v.RetryAll {
		p.postButton("/retry-all", "retry all", "")
	}
	p.m("</div>\n")
	p.listTable(v.Queue)
	p.pager(v.Queue)
	p.m("</section>\n\n<section id=\"held\">\n<h2>Held <small>repeats a device sent over and over; release one to deliver it</small></h2>\n")
	p.listTable(v.Held)
	p.pager(v.Held)
	p.m("</section>\n\n<section id=\"dead\">\n<div class=\"head\"><h2>Dead letters</h2>\n")
	if v.DeadRetry {
		p.postButton("/retry-dead", "retry dead", "")
	}
	p.m("</div>\n")
	p.listTable(v.Dead)
	p.pager(v.Dead)
	p.m("</section>\n\n<section id=\"events\">\n<h2>Recent events</h2>\n")
	if len(v.Events) == 0 {
		p.m("<p class=\"empty\">none yet</p>\n")
	} else {
		p.m("<ol class=\"events\">\n")
		for _, e := range v.Events {
			p.m(`<li class="lvl-`)
			p.t(e.Level)
			p.el(`"><time>`, Stamp(e.Time), "</time> ")
			p.el(`<span class="lvl">`, e.Level, "</span> ")
			p.t(e.Msg)
			p.el(` <span class="attrs">`, text.Clip(e.Attrs, 160), "</span></li>\n")
		}
		p.m("</ol>\n")
	}
	p.m("</section>\n")
}

func (p *page) listBody(v listView) {
	p.el("<section>\n<h1>", string(v.State)+" messages", "</h1>\n")
	p.listTable(v)
	p.pager(v)
	p.m("</section>\n")
}

func (p *page) messageBody(v messageView) {
	id := v.ID
	p.el("<section>\n<h1>Message <span class=\"id\">", id, "</span></h1>\n<div class=\"actions\">\n")
	if v.CanRetry {
		p.postButton(msgURL(id)+"/retry", "retry", "", "from", "msg")
	}
	if v.CanForce {
		p.postButton(msgURL(id)+"/retry", "retry with force", "", "from", "msg", "force", "1")
	}
	if v.CanRelease {
		p.postButton(msgURL(id)+"/release", "release", "", "from", "msg")
	}
	p.m(`<a class="button danger" href="`)
	p.t(msgURL(id) + "/delete")
	p.m("\">delete…</a>\n</div>\n<dl class=\"fields\">\n")
	for _, f := range v.Fields {
		p.el("<dt>", f.Label, "</dt>")
		p.el("<dd>", f.Value, "</dd>\n")
	}
	p.m("</dl>\n\n<h2>Recipients</h2>\n<table class=\"plain\">\n" +
		"<thead><tr><th>address</th><th>state</th><th>reply</th><th>changed</th></tr></thead>\n<tbody>\n")
	for _, r := range v.Recipients {
		p.m(`<tr class="r-`)
		p.t(string(r.State))
		p.el(`"><td data-label="address">`, r.Address, "</td>")
		p.el(`<td data-label="state">`, string(r.State), "</td>")
		p.el(`<td data-label="reply" class="reply">`, r.Reply, "</td>")
		changed := ""
		if !r.Updated.IsZero() {
			changed = Stamp(r.Updated)
		}
		p.el(`<td data-label="changed">`, changed, "</td></tr>\n")
	}
	p.m("</tbody>\n</table>\n\n<h2>Attempts</h2>\n")
	if len(v.History) == 0 {
		p.m("<p class=\"empty\">none yet</p>\n")
	} else {
		p.m("<table class=\"plain\">\n<thead><tr><th>when</th><th>upstream</th><th>outcome</th><th>reply</th></tr></thead>\n<tbody>\n")
		for _, a := range v.History {
			outcome := a.Outcome
			if outcome == "" {
				outcome = "in progress (or cut short)"
			}
			p.el(`<tr><td data-label="when">`, Stamp(a.At), "</td>")
			p.el(`<td data-label="upstream">`, a.Upstream, "</td>")
			p.el(`<td data-label="outcome">`, outcome, "</td>")
			p.el(`<td data-label="reply" class="reply">`, a.Reply, "</td></tr>\n")
		}
		p.m("</tbody>\n</table>\n")
	}
	p.m("\n<h2>Headers <small>the body is never shown here</small></h2>\n")
	p.el(`<pre class="headers">`, v.Headers, "</pre>\n</section>\n")
}

func (p *page) confirmBody(d *Detail) {
	p.el("<section class=\"confirm\">\n<h1>Delete message <span class=\"id\">", d.ID, "</span>?</h1>\n")
	p.m("<p>It is removed from the spool for good, body and all; no one will be told.\nIt was sent by ")
	p.el("<strong>", Sender(d.From), "</strong> to ")
	p.t(status.Plural(len(d.Recipients), "recipient") + " " + d.Age() + " ago and is " + string(d.State) + ".")
	p.m("</p>\n")
	p.rcpts(d.Recipients)
	p.m("\n<div class=\"actions\">\n")
	p.postButton(msgURL(d.ID)+"/delete", "delete for good", "danger", "confirm", "yes")
	p.m(`<a class="button" href="`)
	p.t(msgURL(d.ID))
	p.m("\">keep it</a>\n</div>\n</section>\n")
}

func (p *page) failureBody(msg string) {
	p.el("<section class=\"failure\">\n<h1>That did not work</h1>\n<p class=\"reply\">", msg,
		"</p>\n<p><a href=\"/\">back to the status page</a></p>\n</section>\n")
}
