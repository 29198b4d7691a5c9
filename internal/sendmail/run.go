package sendmail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"relaybox/internal/submit"
)

// Exit statuses from sysexits(3), the convention callers of sendmail test.
const (
	ExOK          = 0  // the daemon accepted the message into its spool
	ExUsage       = 64 // bad command line
	ExDataErr     = 65 // the message or the sender cannot be sent as it is
	ExNoUser      = 67 // a recipient was refused
	ExUnavailable = 69 // the daemon refuses this client
	ExSoftware    = 70 // a bug
	ExIOErr       = 74 // standard input could not be read
	ExTempFail    = 75 // try again later: no daemon answering, spool full, ...
	ExConfig      = 78 // the relaybox config cannot be read
)

// ConfigError is a config that cannot be read or is invalid: EX_CONFIG.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Target is the daemon to submit to.
type Target struct {
	Submit        submit.Options
	DefaultSender string // envelope sender when -f is not given, e.g. "backup@relaybox.lab.example.edu"
}

// Send reads the message from stdin as req says and submits it to the
// daemon. It returns the daemon's final reply; on any error nothing was
// accepted.
func Send(ctx context.Context, req Request, stdin io.Reader, t Target) (string, error) {
	sender := req.From
	if !req.FromGiven {
		sender = t.DefaultSender
	}
	headerSender := sender
	if headerSender == "" {
		headerSender = t.DefaultSender
	}
	msg, err := ReadMessage(stdin, ReadOptions{
		FromHeaders: req.FromHeaders, IgnoreDots: req.IgnoreDots,
		Sender: headerSender, FullName: req.FullName,
	})
	if err != nil {
		return "", err
	}
	rcpts := dedupe(append(append([]string(nil), req.Recipients...), msg.Recipients...))
	if len(rcpts) == 0 {
		return "", errNoRecipients
	}
	return submit.Send(ctx, t.Submit, submit.Envelope{From: sender, To: rcpts}, msg.Reader())
}

// dedupe keeps the first of each address (compared without case): -t
// with the same address as an argument sends one copy.
func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, a := range in {
		k := strings.ToLower(a)
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// ExitCode maps an error from ParseArgs, Send or config loading to the
// sysexits status. It is never ExOK for an error.
func ExitCode(err error) int {
	if err == nil {
		return ExOK
	}
	var (
		ue *UsageError
		de *DataError
		ce *ConfigError
		se *submit.Error
	)
	switch {
	case errors.As(err, &ue):
		return ExUsage
	case errors.As(err, &ce):
		return ExConfig
	case errors.As(err, &de), errors.Is(err, errNoRecipients):
		return ExDataErr
	case errors.Is(err, ErrRead), errors.Is(err, submit.ErrBody):
		return ExIOErr
	case errors.As(err, &se):
		if se.Temporary() {
			return ExTempFail
		}
		switch se.Stage {
		case submit.StageConnect, submit.StageHello:
			return ExUnavailable
		case submit.StageRcpt:
			return ExNoUser
		}
		return ExDataErr
	}
	return ExSoftware
}

// Explain is the one line for stderr: what happened and what to do.
func Explain(err error) string {
	var se *submit.Error
	if errors.As(err, &se) {
		switch {
		case se.Stage == submit.StageConnect:
			return fmt.Sprintf("mail not sent, try again later: no relaybox daemon answers at %v (is the service running? check listen.smtp in the config)", se.Err)
		case se.Temporary():
			return "mail not sent, try again later: " + se.Error()
		case se.Stage == submit.StageRcpt:
			return fmt.Sprintf("mail not sent: recipient <%s> refused: %d %s (is its domain in policy.recipient_domains?)", se.Recipient, se.Code, se.Reply)
		}
		return "mail not sent: " + se.Error()
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return "mail not sent: " + ce.Error()
	}
	return "mail not sent: " + err.Error()
}

// DefaultSender is the envelope sender when -f is not given: the user's
// name at the relay's hostname, as sendmail makes it. A Windows account
// (DOMAIN\name) contributes its name.
func DefaultSender(user, hostname string) string {
	if i := strings.LastIndexAny(user, `\/`); i >= 0 {
		user = user[i+1:]
	}
	user = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>()[]\,;:@"`, r) {
			return -1
		}
		return r
	}, user)
	if user == "" {
		user = "relaybox"
	}
	return user + "@" + hostname
}
