package spool

import (
	"errors"
	"time"
)

// State of a whole message in the spool.
type State string

const (
	// StateQueued messages are waiting for (or in) delivery.
	StateQueued State = "queued"
	// StateDead messages passed queue.max_age or failed for good on every
	// recipient; they stay for inspection and manual retry.
	StateDead State = "dead"
	// StateHeld messages were accepted but are kept out of delivery (the
	// listener holds a device's repeats of one message); Due skips them, and
	// an admin releases one by setting it back to StateQueued.
	StateHeld State = "held"
)

// RcptState is the delivery state of one recipient.
type RcptState string

const (
	RcptPending   RcptState = "pending"
	RcptDelivered RcptState = "delivered"
	RcptFailed    RcptState = "failed"
)

// Recipient is one envelope recipient and what happened to it.
type Recipient struct {
	Address string    `json:"address"`
	State   RcptState `json:"state"`
	// Outcome of the last attempt for this recipient; zero before one.
	Outcome Outcome `json:"outcome,omitzero"`
	// StoredReply is Outcome rendered (Reply), kept in the record for a
	// person reading it and for a relaybox from before outcomes. The spool
	// writes it on every update and derives Outcome from it for a record
	// that has none; code reads Outcome or Reply, never this.
	StoredReply string    `json:"reply,omitempty"`
	Updated     time.Time `json:"updated,omitzero"` // when State last changed
}

// Reply is the last reply for this recipient as people read it.
func (r Recipient) Reply() string { return r.Outcome.Reply() }

// Attempt is one delivery attempt, recorded before it is made (Outcome
// empty) and completed after.
type Attempt struct {
	At       time.Time `json:"at"`
	Upstream string    `json:"upstream"`
	Outcome  string    `json:"outcome,omitempty"` // sent | deferred | failed | partial
	Reply    string    `json:"reply,omitempty"`
}

// Envelope is what the listener knows when a message starts.
type Envelope struct {
	ClientAddr string   `json:"client_addr"` // "ip:port" of the device
	Helo       string   `json:"helo"`        // as the device said it (already sanitised for logs)
	From       string   `json:"from"`        // envelope sender after rewrite; "" is the null sender
	Recipients []string `json:"recipients"`  // normalised, policy-checked addresses
	AuthUser   string   `json:"auth_user,omitempty"`
	Device     string   `json:"device,omitempty"` // friendly device name, if matched
	// SMTPUTF8: the device sent MAIL with SMTPUTF8 (RFC 6531); addresses
	// and headers may hold UTF-8.
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
}

// Message is the spool's record of one accepted message. The body is stored
// separately in chunks and read with Spool.OpenBody.
type Message struct {
	ID         string    `json:"id"`
	Received   time.Time `json:"received"`
	ClientAddr string    `json:"client_addr"`
	Helo       string    `json:"helo"`
	From       string    `json:"from"`
	AuthUser   string    `json:"auth_user,omitempty"`
	Device     string    `json:"device,omitempty"`
	Size       int64     `json:"size"` // body bytes as stored (CRLF, with added headers)
	// EightBit: the body holds octets over 127, so it needs an upstream
	// that offers 8BITMIME (RFC 6152). SMTPUTF8: as in Envelope.
	EightBit    bool        `json:"eight_bit,omitempty"`
	SMTPUTF8    bool        `json:"smtputf8,omitempty"`
	Chunks      int         `json:"chunks"` // number of body chunks
	Recipients  []Recipient `json:"recipients"`
	State       State       `json:"state"`
	Attempts    int         `json:"attempts"`
	NextAttempt time.Time   `json:"next_attempt"`
	LastReply   string      `json:"last_reply,omitempty"`
	History     []Attempt   `json:"history,omitempty"` // most recent last, bounded
	Requeued    time.Time   `json:"requeued,omitzero"` // set by a manual retry of a dead message; max_age counts from here then
	// QueuedRun is the spool's run clock (Spool.Run) when the message was
	// queued, or requeued from the dead letters: its age is Run() minus
	// this, which a wall-clock jump does not change. 0: written before
	// the run clock existed (its age is then taken from the wall clock).
	QueuedRun time.Duration `json:"queued_run,omitempty"`
	// TriedRun is the run clock at the last attempt that dialled an
	// upstream: after a clock jump a message expires only once it has had
	// one.
	TriedRun time.Duration `json:"tried_run,omitempty"`
	// Prepaid is the backoff the first delivery attempt earns, charged in
	// advance by the accept commit (Options.Prepay) so that the attempt
	// needs no transaction of its own before it is made. It is no attempt
	// yet: Attempts and History stay empty until one is recorded, which
	// clears it. If relaybox stops without a clean shutdown while it is
	// set, the next Open counts one attempt and makes the message wait
	// this long: the first attempt may have been under way, and a message
	// that crashes relaybox must not be sent again at every restart.
	Prepaid time.Duration `json:"prepaid,omitempty"`
}

// FirstPrepaid says whether m's next attempt is its first and was paid
// for at accept (Prepaid): the scheduler then makes it without recording
// it first.
func (m *Message) FirstPrepaid() bool { return m.Attempts == 0 && m.Prepaid > 0 }

// Pending returns the addresses still waiting for delivery.
func (m *Message) Pending() []string {
	var out []string
	for _, r := range m.Recipients {
		if r.State == RcptPending {
			out = append(out, r.Address)
		}
	}
	return out
}

// Errors callers tell apart with errors.Is. The listener maps ErrQuota to
// 452 and every other spool error to 451: never a 5xx for a local problem.
var (
	ErrQuota    = errors.New("spool: quota reached")
	ErrNotFound = errors.New("spool: no such message")
	ErrClosed   = errors.New("spool: closed")
)
