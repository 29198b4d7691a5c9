// Package deliver forwards the spool to the campus relay: a scheduler that
// picks due messages, and an upstream client behind a narrow seam (Dialer /
// Conn) so the scheduler tests need no network.
package deliver

import (
	"context"
	"fmt"
	"io"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// Error is an upstream failure: an SMTP reply, or a network / TLS problem
// (Code 0). Permanent is true only for a 5xx reply.
type Error struct {
	Upstream  string // "smtp.example.edu:587"
	Op        string // token | dial | tls | greeting | ehlo | starttls | auth | mail | rcpt | data | dot | rset
	Code      int    // SMTP code, 0 for network / TLS errors
	Enhanced  string // "5.1.1", "" if none
	Text      string // reply text, or a human description of the network error
	Permanent bool
	Err       error // underlying error, if any
}

func (e *Error) Error() string {
	if e.Code != 0 {
		enh := ""
		if e.Enhanced != "" {
			enh = e.Enhanced + " "
		}
		return fmt.Sprintf("upstream %s: %s: %d %s%s", e.Upstream, e.Op, e.Code, enh, e.Text)
	}
	return fmt.Sprintf("upstream %s: %s: %s", e.Upstream, e.Op, e.Text)
}

func (e *Error) Unwrap() error { return e.Err }

// Outcome is the error as the spool keeps it for a recipient.
func (e *Error) Outcome() spool.Outcome {
	return spool.Outcome{Permanent: e.Permanent, Code: e.Code, Enhanced: e.Enhanced, Text: e.Text}
}

// Reply renders the error as a one-line reply for logs and the spool.
func (e *Error) Reply() string { return e.Outcome().Reply() }

// RcptResult is the upstream's answer to one RCPT. Err nil means accepted.
type RcptResult struct {
	Address string
	Err     *Error
	// Reply is, for a recipient delivered by a successful Send, the
	// upstream's final reply to the message ("250 2.0.0 Ok: queued as
	// 4Bx…"): its queue ID is how campus IT follows a message further.
	Reply string
}

// Outgoing is what Send needs to know of one message before its body.
type Outgoing struct {
	From  string
	Rcpts []string // one RcptResult each, in this order
	// Size is the body's size as stored, announced as SIZE= (RFC 1870).
	Size int64
	// EightBit: the body holds octets over 127, so the upstream must offer
	// 8BITMIME (RFC 6152).
	EightBit bool
	// SMTPUTF8: the device asked for SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool
}

// Conn is one open, verified session with an upstream relay. It is used by
// one goroutine at a time.
type Conn interface {
	// Send runs MAIL, one RCPT per recipient, DATA and the body. rcpts
	// holds one result per recipient in order (nil when the message-level
	// step failed before RCPT). err is non-nil when the message as a whole
	// was not accepted (MAIL, all RCPTs refused, DATA, the final dot, or the
	// network); it is an *Error. When err is nil, every recipient whose
	// RcptResult.Err is nil was delivered.
	Send(ctx context.Context, msg Outgoing, body io.Reader) (results []RcptResult, err error)
	// Reset sends RSET so the session can carry the next message.
	Reset(ctx context.Context) error
	// Close sends QUIT (best effort) and closes the connection.
	Close() error
	// Upstream names the relay ("host:port").
	Upstream() string
}

// Dialer opens a Conn to the upstream at index i of the configured list.
type Dialer interface {
	Dial(ctx context.Context, i int) (Conn, error)
	// Count is the number of configured upstreams.
	Count() int
	// Name of upstream i, for logs and status.
	Name(i int) string
}

// Event is one message event, for the log line and the status model.
type Event struct {
	Time     time.Time
	ID       string
	Kind     status.EventKind
	From     string
	To       []string
	Upstream string
	Reply    string
	Delay    time.Duration // since the message was received
}
