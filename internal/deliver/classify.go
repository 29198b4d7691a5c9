package deliver

import "errors"

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

// replyOf renders any error as a one-line reply for the spool and logs.
func replyOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reply()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
