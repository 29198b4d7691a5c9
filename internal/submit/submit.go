// Package submit hands one message to an SMTP server the way a local
// program does: connect, EHLO, MAIL, RCPT for each recipient, DATA. It is
// the client side of `relaybox sendmail` and `relaybox send-test`, so the
// daemon's policy, quota and "250 means fsynced" apply to both exactly as
// they apply to a device on the LAN.
//
// A transaction is all or nothing: if any recipient is refused, nothing is
// sent (RSET), so a caller that retries never duplicates the mail for the
// recipients that were accepted the first time.
package submit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Dialer opens the TCP connection; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Options say where and how to submit.
type Options struct {
	Addr    string        // host:port of the SMTP server
	Hello   string        // the EHLO name
	Dialer  Dialer        // nil: a plain net.Dialer
	Timeout time.Duration // bounds the whole dialog; 0 means 5 minutes
}

// Envelope is the SMTP envelope: MAIL FROM and the RCPT TO list.
type Envelope struct {
	From string   // "" is the null sender <>
	To   []string // at least one
}

// Stage names the step of the dialog that failed.
type Stage string

// The stages of a submission, in order.
const (
	StageConnect Stage = "connect"
	StageHello   Stage = "EHLO"
	StageMail    Stage = "MAIL FROM"
	StageRcpt    Stage = "RCPT TO"
	StageData    Stage = "DATA"
	StageBody    Stage = "message body" // reading the caller's body or sending it
	StageEnd     Stage = "end of DATA"  // the reply that says whether the server took it
)

// Error is a failed submission. Reply codes come from the server; a
// network or local error has Code 0.
type Error struct {
	Stage     Stage
	Recipient string // for StageRcpt: the address refused
	Code      int    // SMTP reply code, 0 when there was no reply
	Reply     string // the server's reply text
	Err       error  // the underlying error
}

func (e *Error) Error() string {
	where := string(e.Stage)
	if e.Recipient != "" {
		where += " <" + e.Recipient + ">"
	}
	if e.Code != 0 {
		return fmt.Sprintf("submit: %s: server said %d %s", where, e.Code, e.Reply)
	}
	return fmt.Sprintf("submit: %s: %v", where, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: a 4xx reply,
// or no reply at all (no server listening, connection lost, timeout).
// Nothing was accepted in either case.
func (e *Error) Temporary() bool { return e.Code == 0 || (e.Code >= 400 && e.Code < 500) }

// ErrBody marks a failure to read the caller's message body (not the
// server's fault, not the network's): StageBody errors wrap it.
var ErrBody = errors.New("reading the message failed")

// Send submits body under env and returns the server's final reply
// ("250 2.0.0 OK: queued as ..."). Any error is an *Error; when Send
// returns an error, the server did not take the message.
func Send(ctx context.Context, opt Options, env Envelope, body io.Reader) (string, error) {
	if len(env.To) == 0 {
		return "", &Error{Stage: StageRcpt, Err: errors.New("no recipients")}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Minute
	}
	if opt.Dialer == nil {
		opt.Dialer = &net.Dialer{}
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	conn, err := opt.Dialer.DialContext(ctx, "tcp", opt.Addr)
	if err != nil {
		return "", &Error{Stage: StageConnect, Err: err}
	}
	// The client has no context of its own: closing the connection is how
	// the deadline reaches a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()

	if err := c.Hello(opt.Hello); err != nil {
		return "", fail(StageHello, "", err)
	}
	if err := c.Mail(env.From, nil); err != nil {
		return "", fail(StageMail, "", err)
	}
	for _, to := range env.To {
		if err := c.Rcpt(to, nil); err != nil {
			_ = c.Reset()
			_ = c.Quit()
			return "", fail(StageRcpt, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", fail(StageData, "", err)
	}
	if _, err := io.Copy(w, bodyReader{body}); err != nil {
		// Closing without the final dot: the server discards the partial
		// message when the connection drops.
		_ = conn.Close()
		var re readError
		if errors.As(err, &re) {
			return "", &Error{Stage: StageBody, Err: fmt.Errorf("%w: %w", ErrBody, re.err)}
		}
		return "", fail(StageBody, "", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", fail(StageEnd, "", err)
	}
	_ = c.Quit()
	return "250 " + resp.StatusText, nil
}

// bodyReader marks the caller's read errors, so that they are told apart
// from the network's (io.Copy reports both the same way).
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		return n, readError{err}
	}
	return n, err
}

type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// fail turns a client error into an *Error with the server's reply when
// there was one.
func fail(stage Stage, rcpt string, err error) *Error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &Error{Stage: stage, Recipient: rcpt, Code: se.Code, Reply: replyText(se), Err: err}
	}
	return &Error{Stage: stage, Recipient: rcpt, Err: err}
}

func replyText(se *smtp.SMTPError) string {
	ec := se.EnhancedCode
	if ec != (smtp.EnhancedCode{}) && ec != smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.%d.%d %s", ec[0], ec[1], ec[2], se.Message)
	}
	return se.Message
}
