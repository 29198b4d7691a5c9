package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// outcome is what one attempt did to one recipient.
type outcome struct {
	state spool.RcptState
	last  spool.Outcome
}

// pass is the state of one delivery attempt across failovers.
type pass struct {
	now      time.Time
	recorded bool            // Attempts and NextAttempt already written (not so for a prepaid first attempt)
	begun    bool            // an attempt reached an open session (recorded, or prepaid)
	open     string          // upstream whose History entry awaits its outcome
	tried    []spool.Attempt // failed connects not yet written
	lastUp   string
	last     spool.Outcome // the last reply, or why there was none
}

// closeOpen fills in the outcome of this pass's open History entry (a
// failover left it behind). Entries from an earlier crash stay open: their
// outcome is honestly unknown.
func (p *pass) closeOpen(msg *spool.Message, outcome string) {
	if p.open == "" {
		return
	}
	if n := len(msg.History); n > 0 {
		h := &msg.History[n-1]
		if h.Outcome == "" && h.Upstream == p.open && h.At.Equal(p.now) {
			h.Outcome, h.Reply = outcome, p.last.Reply()
		}
	}
}

// settle records what the upstream said about each recipient of one
// attempt, in one Update, then deletes a finished message or dead-letters it.
// A message delivered to every recipient is deleted in the background, on
// bg: the worker goes on to its next attempt meanwhile.
func (s *Scheduler) settle(m *spool.Message, p *pass, upstream string, pending []string, results []RcptResult, sendErr error, bg *sync.WaitGroup) {
	now := p.now
	var msgErr *Error
	errors.As(sendErr, &msgErr)
	msgOutcome := outcomeOf(sendErr)
	out := make(map[string]outcome, len(pending))
	var sent, failed, deferred int
	last := msgOutcome
	for k, addr := range pending {
		var rr *Error
		if k < len(results) && results[k].Err != nil {
			rr = results[k].Err
		}
		var o outcome
		switch {
		case rr != nil && rr.Permanent:
			o = outcome{spool.RcptFailed, rr.Outcome()}
		case rr != nil:
			o = outcome{spool.RcptPending, rr.Outcome()}
		case sendErr == nil && k < len(results):
			// go-smtp hands the final reply over as text; it decides
			// nothing, but its queue ID is what campus IT follows.
			o = outcome{spool.RcptDelivered, spool.ParseReply(results[k].Reply)}
		case sendErr == nil:
			// The client broke its contract; keeping the recipient
			// risks a duplicate, dropping it risks a loss.
			o = outcome{spool.RcptPending, spool.Outcome{Text: "upstream gave no answer for this recipient"}}
		case msgErr != nil && msgErr.Permanent:
			o = outcome{spool.RcptFailed, msgOutcome}
		default:
			o = outcome{spool.RcptPending, msgOutcome}
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
			if last.Reply() == "" && out[addr].state == want {
				last = out[addr].last
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
	p.last = last
	lastReply := last.Reply()
	defer s.emitOutcomes(m, upstream, pending, out, now)

	// Fast path: everything delivered, so one Delete records it all.
	done := true
	for _, r := range m.Recipients {
		if r.State == spool.RcptFailed || (r.State == spool.RcptPending && out[r.Address].state != spool.RcptDelivered) {
			done = false
		}
	}
	if done {
		// The delete does not hold up the worker's next attempt, so both
		// reach the spool together and share one group commit: every
		// commit has a fixed disk cost (docs/performance.md). A crash
		// before it is durable sends the message again, as a crash just
		// before it always could.
		// One delete in flight per worker: the spool may hold it back
		// to share a commit, and each delivered message not yet deleted
		// is one more sent again after a crash.
		bg.Wait()
		bg.Go(func() {
			err := s.opt.Store.DeleteDelivered(m.ID)
			if err == nil || errors.Is(err, spool.ErrNotFound) {
				return
			}
			// Record the deliveries instead; the orphan sweep deletes
			// the message later so it is never sent twice.
			s.log.Error("deliver: cannot delete delivered message", "id", m.ID, "err", err)
			s.orphans.Store(true)
			s.record(m, p, upstream, out, summary, lastReply, now)
		})
		return
	}
	s.record(m, p, upstream, out, summary, lastReply, now)
}

// record writes the outcome of one attempt (settle) into m's record, then
// finishes a message with no recipient pending.
func (s *Scheduler) record(m *spool.Message, p *pass, upstream string, out map[string]outcome, summary, lastReply string, now time.Time) {
	updated, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		if !p.recorded {
			// A prepaid first attempt is written now, with its outcome.
			s.count(msg, p)
			msg.History = append(msg.History, p.tried...)
			msg.History = append(msg.History, spool.Attempt{At: now, Upstream: upstream})
			p.open = upstream
		}
		for i := range msg.Recipients {
			r := &msg.Recipients[i]
			o, ok := out[r.Address]
			if !ok || r.State != spool.RcptPending {
				continue
			}
			r.Outcome = o.last
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
	type key struct {
		kind  status.EventKind
		reply string
	}
	var order []key
	to := make(map[key][]string)
	for _, addr := range pending {
		o := out[addr]
		kind := status.EventDeferred
		switch o.state {
		case spool.RcptDelivered:
			kind = status.EventSent
		case spool.RcptFailed:
			kind = status.EventFailed
		}
		k := key{kind, o.last.Reply()}
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
	if p.last.Reply() == "" {
		p.last = spool.Outcome{Text: "no upstream available"}
	}
	lastReply := p.last.Reply()
	add := p.tried
	var pending []string
	_, err := s.opt.Store.Update(m.ID, func(msg *spool.Message) error {
		if err := s.charge(msg, p, add...); err != nil {
			return err
		}
		pending = msg.Pending()
		msg.LastReply = lastReply
		for i := range msg.Recipients {
			if msg.Recipients[i].State == spool.RcptPending {
				msg.Recipients[i].Outcome = p.last
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
	s.emit(Event{Time: now, ID: m.ID, Kind: status.EventDeferred, From: m.From, To: pending, Upstream: p.lastUp, Reply: lastReply, Delay: now.Sub(m.Received)})
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
				r.State, r.Outcome, r.Updated = spool.RcptFailed, spool.Outcome{Expired: true, Text: reply}, now
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
	s.emit(Event{Time: now, ID: m.ID, Kind: status.EventExpired, From: m.From, To: gone, Upstream: up, Reply: reply, Delay: now.Sub(m.Received)})
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
	case status.EventDeferred:
		level = slog.LevelWarn
	case status.EventFailed, status.EventExpired:
		level = slog.LevelError
	}
	s.log.LogAttrs(context.Background(), level, "message",
		slog.String("id", ev.ID),
		slog.String("event", string(ev.Kind)),
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
