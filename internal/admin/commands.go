package admin

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// This file is the command layer: what an operator can ask of the daemon.
// The HTTP handlers and the serial console both call these methods, so the
// two can never disagree about what "retry" means.

// ErrNothingToRetry: the message has no recipient a retry could help
// (every one was refused permanently, or none is left).
var ErrNothingToRetry = errors.New("admin: nothing to retry")

// headerMax bounds the header block shown by Show: enough for any real
// header, small enough for a serial console.
const headerMax = 64 << 10

// Message is one message as the API and the console show it: the envelope
// and per-recipient state, never the body.
type Message struct {
	ID            string      `json:"id"`
	State         spool.State `json:"state"` // queued | dead
	Received      time.Time   `json:"received"`
	AgeSeconds    float64     `json:"age_seconds"`
	From          string      `json:"from"` // "" is the null sender <>
	ClientAddr    string      `json:"client_addr,omitempty"`
	Device        string      `json:"device,omitempty"`
	Size          int64       `json:"size"`
	Attempts      int         `json:"attempts"`
	NextAttempt   time.Time   `json:"next_attempt"`
	NextInSeconds float64     `json:"next_in_seconds"` // <= 0: due now
	LastReply     string      `json:"last_reply"`
	Requeued      time.Time   `json:"requeued,omitzero"`
	Recipients    []Recipient `json:"recipients"`
}

// Recipient is one envelope recipient and what happened to it.
type Recipient struct {
	Address string          `json:"address"`
	State   spool.RcptState `json:"state"` // pending | delivered | failed
	Reply   string          `json:"reply"` // the last reply, one line
	// The last reply as data (spool.Outcome without the text, which is
	// in Reply): whether it was permanent, its codes, whether the message
	// expired with this recipient pending.
	Permanent bool      `json:"permanent,omitempty"`
	Code      int       `json:"code,omitempty"`
	Enhanced  string    `json:"enhanced,omitempty"`
	Expired   bool      `json:"expired,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
}

// Detail is Message plus what `queue show` adds: the header block and the
// attempt history.
type Detail struct {
	Message
	Helo     string          `json:"helo,omitempty"`
	AuthUser string          `json:"auth_user,omitempty"`
	Headers  string          `json:"headers"`
	History  []spool.Attempt `json:"history"`
}

func (s *Server) view(m *spool.Message, now time.Time) Message {
	v := Message{
		ID: m.ID, State: m.State, Received: m.Received, AgeSeconds: max(now.Sub(m.Received).Seconds(), 0),
		From: m.From, ClientAddr: m.ClientAddr, Device: m.Device, Size: m.Size, Attempts: m.Attempts,
		NextAttempt: m.NextAttempt, NextInSeconds: m.NextAttempt.Sub(now).Seconds(),
		LastReply: m.LastReply, Requeued: m.Requeued, Recipients: make([]Recipient, len(m.Recipients)),
	}
	for i, r := range m.Recipients {
		v.Recipients[i] = Recipient{Address: r.Address, State: r.State, Reply: r.Reply(), Updated: r.Updated,
			Permanent: r.Outcome.Permanent, Code: r.Outcome.Code, Enhanced: r.Outcome.Enhanced, Expired: r.Outcome.Expired}
	}
	return v
}

// Status returns the status model's snapshot.
func (s *Server) Status() status.Snapshot { return s.opt.Status.Snapshot() }

// Page sizes for listings: a page of DefaultLimit stays under 64 KB of
// JSON; MaxLimit bounds what one request may make the daemon hold.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a listing, oldest first.
type Page struct {
	Messages []Message `json:"messages"`
	Total    int       `json:"total"` // messages in this state in all
	Limit    int       `json:"limit"`
	// Next is the cursor for the following page (?after=Next); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

// List returns up to limit messages in state (queued, dead or held) whose
// ID sorts after after ("" = the oldest), with the total.
func (s *Server) List(state spool.State, after string, limit int) (*Page, error) {
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	msgs, total, more, err := s.opt.Queue.Page(state, after, limit)
	if err != nil {
		return nil, fmt.Errorf("admin: list %s: %w", state, err)
	}
	now := s.opt.Now()
	p := &Page{Messages: make([]Message, 0, len(msgs)), Total: total, Limit: limit}
	for _, m := range msgs {
		p.Messages = append(p.Messages, s.view(m, now))
	}
	if more && len(msgs) > 0 {
		p.Next = msgs[len(msgs)-1].ID
	}
	return p, nil
}

// Show returns one message with its header block and history.
func (s *Server) Show(id string) (*Detail, error) {
	m, err := s.opt.Queue.Get(id)
	if err != nil {
		return nil, fmt.Errorf("admin: show %s: %w", id, err)
	}
	hdr, err := s.opt.Queue.Headers(id, headerMax)
	if err != nil {
		return nil, fmt.Errorf("admin: headers of %s: %w", id, err)
	}
	d := &Detail{Message: s.view(m, s.opt.Now()), Helo: m.Helo, AuthUser: m.AuthUser,
		Headers: string(hdr), History: append([]spool.Attempt{}, m.History...)}
	return d, nil
}

// Retry makes message id due now, whatever its backoff, and wakes the
// scheduler. A dead message is requeued with a fresh queue.max_age: its
// recipients that expired or failed for a temporary reason go back to
// pending. It fails with ErrNothingToRetry when every failed recipient
// was refused permanently (5xx); ForceRetry requeues those too.
func (s *Server) Retry(id string) (*spool.Message, error) { return s.retry(id, false) }

// ForceRetry is Retry that also requeues recipients refused with a 5xx
// reply: for when the cause was on our side (say, missing upstream
// credentials) and has been fixed.
func (s *Server) ForceRetry(id string) (*spool.Message, error) { return s.retry(id, true) }

func (s *Server) retry(id string, force bool) (*spool.Message, error) {
	m, err := s.makeDue(id, force)
	if errors.Is(err, ErrNothingToRetry) {
		return nil, err // already names the message and the package
	}
	if err != nil {
		return nil, fmt.Errorf("admin: retry %s: %w", id, err)
	}
	s.kick()
	s.log.Info("admin: retry", "id", id, "state", string(m.State), "pending", len(m.Pending()), "force", force)
	return m, nil
}

// makeDue is the spool update behind every retry; it does not kick.
func (s *Server) makeDue(id string, force bool) (*spool.Message, error) {
	now, run := s.opt.Now(), s.opt.Queue.Run()
	return s.opt.Queue.Update(id, func(m *spool.Message) error {
		if m.State == spool.StateHeld {
			// A repeat a device sent over and over, held by the listener:
			// retry is how an admin releases it, as it is.
			m.State, m.NextAttempt = spool.StateQueued, now
			m.LastReply = "released by admin; " + m.LastReply
			return nil
		}
		if m.State == spool.StateDead {
			// Runs again if the batch is retried, so it only reads m.
			n, refusal := 0, ""
			for i := range m.Recipients {
				r := &m.Recipients[i]
				switch {
				case r.State != spool.RcptFailed:
				case force || retryable(r.Outcome):
					r.State, r.Updated = spool.RcptPending, now
					n++
				case refusal == "":
					refusal = r.Reply()
				}
			}
			if n == 0 {
				return fmt.Errorf("%w for %s: every recipient was refused for good (%s); fix the cause, then retry with force",
					ErrNothingToRetry, m.ID, refusal)
			}
			m.State, m.Requeued, m.QueuedRun = spool.StateQueued, now, run
		} else if len(m.Pending()) == 0 {
			return fmt.Errorf("%w for %s: no recipient is waiting", ErrNothingToRetry, m.ID)
		}
		m.NextAttempt = now
		return nil
	})
}

// retryable: an expired recipient, or one whose last outcome was not
// permanent (a temporary reply or a network error), may succeed on a new
// attempt.
func retryable(o spool.Outcome) bool { return o.Expired || !o.Permanent }

// RetryAll makes every queued message with a waiting recipient due now and
// wakes the scheduler once. It returns how many it changed.
func (s *Server) RetryAll() (int, error) {
	n, err := s.retryState(spool.StateQueued)
	if err != nil {
		return n, fmt.Errorf("admin: retry-all: %w", err)
	}
	return n, nil
}

// RetryDead requeues every dead message that Retry would requeue (those
// with an expired or temporarily failed recipient) and returns how many.
func (s *Server) RetryDead() (int, error) {
	n, err := s.retryState(spool.StateDead)
	if err != nil {
		return n, fmt.Errorf("admin: retry-dead: %w", err)
	}
	return n, nil
}

// retryPage is how many records retry-all reads at a time: the whole
// queue in memory at once cost tens of MiB with 20,000 messages.
const retryPage = 256

func (s *Server) retryState(state spool.State) (int, error) {
	n := 0
	defer func() {
		if n > 0 {
			s.kick()
		}
		s.log.Info("admin: retry all", "state", string(state), "messages", n)
	}()
	for after := ""; ; {
		msgs, _, more, err := s.opt.Queue.Page(state, after, retryPage)
		if err != nil {
			return n, err
		}
		for _, m := range msgs {
			after = m.ID
			if state == spool.StateQueued && len(m.Pending()) == 0 {
				continue
			}
			_, err := s.makeDue(m.ID, false)
			switch {
			case err == nil:
				n++
			case errors.Is(err, ErrNothingToRetry), errors.Is(err, spool.ErrNotFound):
				// Delivered, deleted or refused for good since the listing.
			default:
				return n, err
			}
		}
		if !more || len(msgs) == 0 {
			return n, nil
		}
	}
}

// Delete removes a message (queued or dead) and its body for good.
func (s *Server) Delete(id string) error {
	if err := s.opt.Queue.Delete(id); err != nil {
		return fmt.Errorf("admin: delete %s: %w", id, err)
	}
	s.log.Info("admin: deleted", "id", id)
	return nil
}

func (s *Server) kick() {
	if s.opt.Kick != nil {
		s.opt.Kick()
	}
}

// RecipientSummary names the first recipient still waiting (the interesting
// one) and counts the rest: "bob@example.edu +2". The CLI and the console
// print queue rows with it.
func RecipientSummary(rs []Recipient) string {
	if len(rs) == 0 {
		return "-"
	}
	first := rs[0]
	for _, r := range rs {
		if r.State == spool.RcptPending {
			first = r
			break
		}
	}
	out := first.Address
	if first.State != spool.RcptPending {
		out += " (" + string(first.State) + ")"
	}
	if len(rs) > 1 {
		out += fmt.Sprintf(" +%d", len(rs)-1)
	}
	return out
}

// Sender shows the null sender as "<>".
func Sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// Fields is the message as `relaybox queue show` and the console's
// `queue show` print it above the recipients: one wording for both.
func (d *Detail) Fields() []status.Field {
	f := []status.Field{
		{Label: "id", Value: d.ID},
		{Label: "state", Value: string(d.State)},
		{Label: "received", Value: fmt.Sprintf("%s (%s ago)", Stamp(d.Received), d.Age())},
	}
	add := func(label, value string) { f = append(f, status.Field{Label: label, Value: value}) }
	if !d.Requeued.IsZero() {
		add("requeued", Stamp(d.Requeued))
	}
	add("from", Sender(d.From))
	client := d.ClientAddr
	if d.Helo != "" {
		client += " (HELO " + d.Helo + ")"
	}
	add("client", client)
	if d.Device != "" {
		add("device", d.Device)
	}
	if d.AuthUser != "" {
		add("auth user", d.AuthUser)
	}
	add("size", status.FormatBytes(d.Size))
	attempts := strconv.Itoa(d.Attempts)
	if d.State == spool.StateQueued {
		if next := d.Next(); next == "now" {
			attempts += ", due now"
		} else {
			attempts += ", next " + next
		}
	}
	add("attempts", attempts)
	if d.LastReply != "" {
		add("last reply", d.LastReply)
	}
	return f
}

// Age is how long ago the message was received: "2h".
func (m *Message) Age() string { return status.FormatDuration(seconds(m.AgeSeconds)) }

// Next says when a queued message is due: "now" or "in 58m".
func (m *Message) Next() string {
	if m.NextInSeconds >= 1 {
		return "in " + status.FormatDuration(seconds(m.NextInSeconds))
	}
	return "now"
}

// Stamp is how the CLI and the console write a point in time: UTC, to the
// second, readable on an 80-column screen.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
