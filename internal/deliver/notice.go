package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"relaybox/internal/spool"
)

// noticeHeaderMax bounds how much of the original header a notice quotes.
const noticeHeaderMax = 64 << 10

// outcome is what one attempt did to one recipient.
type outcome struct {
	state spool.RcptState
	reply string
}

// settle records what the upstream said about each recipient of one
// attempt, in one Update, then deletes a finished message or dead-letters it.
// A message delivered to every recipient is deleted in the background, on
// bg: the worker goes on to its next attempt meanwhile.
func (s *Scheduler) settle(m *spool.Message, p *pass, upstream string, pending []string, results []RcptResult, sendErr error, bg *sync.WaitGroup) {
	now := p.now
	var msgErr *Error
	errors.As(sendErr, &msgErr)
	msgReply := replyOf(sendErr)
	out := make(map[string]outcome, len(pending))
	var sent, failed, deferred int
	lastReply := msgReply
	for k, addr := range pending {
		var rr *Error
		if k < len(results) && results[k].Err != nil {
			rr = results[k].Err
		}
		var o outcome
		switch {
		case rr != nil && rr.Permanent:
			o = outcome{spool.RcptFailed, rr.Reply()}
		case rr != nil:
			o = outcome{spool.RcptPending, rr.Reply()}
		case sendErr == nil && k < len(results):
			o = outcome{spool.RcptDelivered, results[k].Reply}
		case sendErr == nil:
			// The client broke its contract; keeping the recipient
			// risks a duplicate, dropping it risks a loss.
			o = outcome{spool.RcptPending, "upstream gave no answer for this recipient"}
		case msgErr != nil && msgErr.Permanent:
			o = outcome{spool.RcptFailed, msgReply}
		default:
			o = outcome{spool.RcptPending, msgReply}
		}
		switch o.state {
		case spool.RcptDelivered:
			sent++
		case spool.RcptFailed:
			failed++
		default:
			deferred++
		}
		out[addr] = o
	}
	// The reply worth keeping: the message-level one, else what is
	// holding a recipient back, else why one failed, else the upstream's
	// "queued as" line.
	for _, want := range []spool.RcptState{spool.RcptPending, spool.RcptFailed, spool.RcptDelivered} {
		for _, addr := range pending {
			if lastReply == "" && out[addr].state == want {
				lastReply = out[addr].reply
			}
		}
	}
	summary := "partial"
	switch len(pending) {
	case sent:
		summary = "sent"
	case failed:
		summary = "failed"
	case deferred:
		summary = "deferred"
	}
	p.lastReply = lastReply
	defer s.emitOutcomes(m, upstream, pending, out, now)

	// Fast path: everything delivered, so one Delete records it all.
	done := true
	for _, r := range m.Recipients {
		if r.State == spool.RcptFailed || (r.State == spool.RcptPending && out[r.Address].state != spool.RcptDelivered) {
			done = false
		}
	}
	if done {
		// The delete does not hold up the worker's next attempt: both
		// reach the spool together and share one group commit, where
		// each took one of its own (every commit costs about 28 KB of
		// disk). A crash before it is durable sends the message again,
		// as a crash just before it always could.
		bg.Go(func() {
			err := s.opt.Store.Delete(m.ID)
			if err == nil || errors.Is(err, spool.ErrNotFound) {
				return
			}
			// Record the deliveries instead; the orphan sweep deletes
			// the message later so it is never sent twice.
			s.log.Error("deliver: cannot delete delivered message", "id", m.ID, "err", err)
			s.orphans.Store(true)
			s.record(m, p, out, summary, lastReply, now)
		})
		return
	}
	s.record(m, p, out, summary, lastReply, now)
}

// record writes the outcome of one attempt (settle) into m's record, then
// finishes a message with no recipient pending.
func (s *Scheduler) record(m *spool.Message, p *pass, out map[string]outcome, summary, lastReply string, now time.Time) {
	updated, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		for i := range msg.Recipients {
			r := &msg.Recipients[i]
			o, ok := out[r.Address]
			if !ok || r.State != spool.RcptPending {
				continue
			}
			r.Reply = o.reply
			if o.state != spool.RcptPending {
				r.State, r.Updated = o.state, now
			}
		}
		p.closeOpen(msg, summary)
		if lastReply != "" {
			msg.LastReply = lastReply
		}
		if len(msg.Pending()) == 0 && hasFailed(msg) {
			msg.State = spool.StateDead
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("deliver: cannot record outcome", "id", m.ID, "err", err)
		}
		return
	}
	s.finish(updated, now)
}

// finish handles a message with no pending recipient left: delete it when
// all were delivered, else dead-letter it (if not already) with a notice.
func (s *Scheduler) finish(m *spool.Message, now time.Time) {
	if len(m.Pending()) > 0 {
		return
	}
	if !hasFailed(m) {
		if err := s.opt.Store.Delete(m.ID); err != nil && !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("deliver: cannot delete delivered message", "id", m.ID, "err", err)
			s.orphans.Store(true)
		}
		return
	}
	if m.State != spool.StateDead {
		dead, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
			msg.State = spool.StateDead
			return nil
		})
		if err != nil {
			s.log.Error("deliver: cannot dead-letter message", "id", m.ID, "err", err)
			return
		}
		m = dead
	}
	s.notice(m, m.LastReply, now)
}

func hasFailed(m *spool.Message) bool {
	for _, r := range m.Recipients {
		if r.State == spool.RcptFailed {
			return true
		}
	}
	return false
}

// emitOutcomes logs one event per kind and reply, in a stable order.
func (s *Scheduler) emitOutcomes(m *spool.Message, upstream string, pending []string, out map[string]outcome, now time.Time) {
	type key struct{ kind, reply string }
	var order []key
	to := make(map[key][]string)
	for _, addr := range pending {
		o := out[addr]
		kind := "deferred"
		switch o.state {
		case spool.RcptDelivered:
			kind = "sent"
		case spool.RcptFailed:
			kind = "failed"
		}
		k := key{kind, o.reply}
		if _, ok := to[k]; !ok {
			order = append(order, k)
		}
		to[k] = append(to[k], addr)
	}
	for _, k := range order {
		s.emit(Event{Time: now, ID: m.ID, Kind: k.kind, From: m.From, To: to[k], Upstream: upstream, Reply: k.reply, Delay: now.Sub(m.Received)})
	}
}

// deferAll records an attempt no upstream took: every pending recipient
// waits for the next one.
func (s *Scheduler) deferAll(m *spool.Message, p *pass) {
	now := p.now
	if p.lastReply == "" {
		p.lastReply = "no upstream available"
	}
	add := p.tried
	var pending []string
	_, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		if err := s.charge(msg, p, add...); err != nil {
			return err
		}
		pending = msg.Pending()
		msg.LastReply = p.lastReply
		for i := range msg.Recipients {
			if msg.Recipients[i].State == spool.RcptPending {
				msg.Recipients[i].Reply = p.lastReply
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errGone) && !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("deliver: cannot record deferral", "id", m.ID, "err", err)
		}
		return
	}
	s.emit(Event{Time: now, ID: m.ID, Kind: "deferred", From: m.From, To: pending, Upstream: p.lastUp, Reply: p.lastReply, Delay: now.Sub(m.Received)})
}

// expire dead-letters a queued message past MaxAge: its pending
// recipients fail with the age and the last reply.
func (s *Scheduler) expire(m *spool.Message, now time.Time, jumpRun time.Duration) {
	var gone []string
	var reply, last, up string
	updated, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		if msg.State != spool.StateQueued || !expired(msg, s.opt.MaxAge, now, s.opt.Store.Run(), jumpRun) {
			return errGone
		}
		last = msg.LastReply
		why := last
		if why == "" {
			why = "no upstream took it"
		}
		reply = fmt.Sprintf("expired after %s: %s", fmtAge(age(msg.QueuedRun, queuedSince(msg), now, s.opt.Store.Run())), why)
		gone = gone[:0]
		for i := range msg.Recipients {
			r := &msg.Recipients[i]
			if r.State == spool.RcptPending {
				r.State, r.Reply, r.Updated = spool.RcptFailed, reply, now
				gone = append(gone, r.Address)
			}
		}
		msg.State = spool.StateDead
		msg.LastReply = reply
		if n := len(msg.History); n > 0 {
			up = msg.History[n-1].Upstream
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errGone) && !errors.Is(err, spool.ErrNotFound) {
			s.log.Error("deliver: cannot expire message", "id", m.ID, "err", err)
		}
		return
	}
	s.emit(Event{Time: now, ID: m.ID, Kind: "expired", From: m.From, To: gone, Upstream: up, Reply: reply, Delay: now.Sub(m.Received)})
	if last == "" {
		last = reply
	}
	s.notice(updated, last, now)
}

// sweep finishes queued messages with no pending recipient, left behind
// when a Delete failed or the process stopped between two writes.
func (s *Scheduler) sweep(now time.Time) error {
	msgs, err := s.opt.Store.Finished()
	if err != nil {
		return fmt.Errorf("deliver: list queue: %w", err)
	}
	s.orphans.Store(false)
	for _, m := range msgs {
		s.finish(m, now)
	}
	return nil
}

// emit writes the one log line of a message event and tells the status model.
func (s *Scheduler) emit(ev Event) {
	level := slog.LevelInfo
	switch ev.Kind {
	case "deferred":
		level = slog.LevelWarn
	case "failed", "expired":
		level = slog.LevelError
	}
	s.log.LogAttrs(context.Background(), level, "message",
		slog.String("id", ev.ID),
		slog.String("event", ev.Kind),
		slog.String("from", ev.From),
		slog.String("to", strings.Join(ev.To, ",")),
		slog.String("upstream", ev.Upstream),
		slog.String("reply", ev.Reply),
		slog.Duration("delay", ev.Delay.Round(time.Second)),
	)
	if s.opt.OnEvent != nil {
		s.opt.OnEvent(ev)
	}
}

// notice spools a failure notice about dead message m to the Notify
// address. Never about a null-sender message: that is how notice loops start.
func (s *Scheduler) notice(m *spool.Message, lastReply string, now time.Time) {
	if s.opt.Notify == "" || m.From == "" {
		return
	}
	hdr, err := s.opt.Store.Headers(m.ID, noticeHeaderMax)
	if err != nil {
		// A notice without the quoted header still tells the admin.
		s.log.Warn("deliver: cannot read headers for notice", "id", m.ID, "err", err)
		hdr = nil
	}
	body := buildNotice(s.opt.Hostname, s.opt.Notify, m, lastReply, hdr, now)
	n, err := s.opt.Store.Enqueue(spool.Envelope{Helo: s.opt.Hostname, From: "", Recipients: []string{s.opt.Notify}}, body)
	if err != nil {
		s.log.Error("deliver: cannot queue failure notice", "id", m.ID, "err", err)
		return
	}
	s.log.Info("failure notice queued", "id", n.ID, "about", m.ID, "to", s.opt.Notify)
	// Run may be in this very Tick; the token makes it look again at once.
	s.Kick()
}

// buildNotice renders the notice: a short text, then the original header
// (never the body: it may be large or confidential). CRLF throughout.
func buildNotice(host, to string, m *spool.Message, lastReply string, hdr []byte, now time.Time) []byte {
	var b bytes.Buffer
	line := func(format string, a ...any) {
		fmt.Fprintf(&b, format, a...)
		b.WriteString("\r\n")
	}
	subject := "Undelivered mail"
	if sub := subjectOf(hdr); sub != "" {
		subject += ": " + sub
	}
	line("From: MAILER-DAEMON@%s", host)
	line("To: <%s>", to)
	line("Subject: %s", subject)
	line("Date: %s", now.Format(time.RFC1123Z))
	line("Message-ID: <notice.%s.%s@%s>", m.ID, strconv.FormatInt(now.UnixNano(), 36), host)
	line("Auto-Submitted: auto-generated") // RFC 3834: do not auto-reply
	line("MIME-Version: 1.0")
	line("Content-Type: text/plain; charset=utf-8")
	line("Content-Transfer-Encoding: 8bit")
	line("")
	line("relaybox on %s could not deliver queued message %s", host, m.ID)
	line("from <%s>, received %s, to these recipients:", m.From, m.Received.Format(time.RFC1123Z))
	line("")
	for _, r := range m.Recipients {
		if r.State == spool.RcptFailed {
			line("  <%s>: %s", r.Address, flatLine(r.Reply))
		}
	}
	line("")
	line("Last reply from the upstream relay: %s", flatLine(lastReply))
	line("")
	line("The message is kept in the dead-letter list: see it with")
	line("\"relaybox queue show %s\", send it again with \"relaybox queue retry %s\".", m.ID, m.ID)
	if len(hdr) > 0 {
		line("")
		line("--- header of the undelivered message ---")
		for l := range bytes.Lines(hdr) {
			l = bytes.TrimRight(l, "\r\n")
			if len(l) == 0 {
				break // end of the header block
			}
			b.Write(l)
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

// subjectOf finds the Subject field in a header block and unfolds it.
func subjectOf(hdr []byte) string {
	var sub []byte
	in := false
	for l := range bytes.Lines(hdr) {
		l = bytes.TrimRight(l, "\r\n")
		if len(l) == 0 {
			break
		}
		if in && (l[0] == ' ' || l[0] == '\t') {
			sub = append(sub, ' ')
			sub = append(sub, bytes.TrimSpace(l)...)
			continue
		}
		in = false
		if sub == nil && len(l) >= 8 && strings.EqualFold(string(l[:8]), "subject:") {
			in = true
			sub = append([]byte{}, bytes.TrimSpace(l[8:])...)
		}
	}
	const max = 200
	s := flatLine(string(sub))
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}

// flatLine keeps a reply from breaking the notice's lines.
func flatLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
