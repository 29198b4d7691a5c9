package deliver

import (
	"errors"

	"relaybox/internal/spool"
)

// connLevel reports whether err says the upstream itself is unusable (so
// the next one is tried at once) rather than that this message had a problem.
func connLevel(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Op {
	case "dial", "tls", "greeting", "ehlo", "starttls", "auth":
		return true
	}
	// RFC 5321 3.8: 421 means the server is closing the channel.
	return e.Code == 421
}

// outcomeOf records any error as an outcome for the spool: an *Error keeps
// its codes and whether it is permanent; any other error is temporary.
func outcomeOf(err error) spool.Outcome {
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome()
	}
	if err == nil {
		return spool.Outcome{}
	}
	return spool.Outcome{Text: err.Error()}
}

// replyOf renders any error as a one-line reply for the spool and logs.
func replyOf(err error) string { return outcomeOf(err).Reply() }
