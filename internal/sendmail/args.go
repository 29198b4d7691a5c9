// Package sendmail is the sendmail(8) command-line interface that scripts
// and programs on a lab PC call (cron, smartd, backup and instrument
// software): the traditional flags, the message on standard input,
// recipients from the arguments or the headers (-t), and sysexits(3)
// exit codes. Submission itself is internal/submit's job.
package sendmail

import (
	"errors"
	"fmt"
	"strings"
)

// Request is a parsed command line.
type Request struct {
	Config      string   // -config FILE ("" when not given)
	From        string   // -f / -r: envelope sender; "" when not given
	FromGiven   bool     // -f was given (possibly as "<>", the null sender)
	FullName    string   // -F: the display name of an added From: header
	Recipients  []string // addresses on the command line
	FromHeaders bool     // -t: recipients also from To:, Cc: and Bcc:
	IgnoreDots  bool     // -i / -oi: a line with a single "." is not the end
}

// UsageError is a command line that cannot be acted on: exit EX_USAGE.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// ParseArgs reads sendmail's flags. Flags that only tune how a full MTA
// queues or reports (-odi, -oem, -B8BITMIME, -v, ...) are accepted and do
// nothing: relaybox always queues in its spool before saying yes, and
// reports by exit status. Modes relaybox cannot serve (-bp, -bs, -bd, ...)
// are refused rather than silently ignored.
func ParseArgs(args []string) (Request, error) {
	var r Request
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			r.Recipients = append(r.Recipients, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			r.Recipients = append(r.Recipients, a)
			continue
		}
		// value returns the flag's argument: joined ("-ffoo") or the next word.
		value := func(flag string) (string, error) {
			if v := strings.TrimPrefix(a, flag); v != "" {
				return strings.TrimPrefix(v, "="), nil
			}
			if i+1 >= len(args) {
				return "", usagef("%s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-config" || a == "--config" || strings.HasPrefix(a, "-config=") || strings.HasPrefix(a, "--config="):
			r.Config, err = value(strings.SplitN(a, "=", 2)[0])
		case a == "-t":
			r.FromHeaders = true
		case a == "-i" || a == "-oi":
			r.IgnoreDots = true
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			r.From, err = value(a[:2])
			r.FromGiven = true
			r.From = strings.TrimSuffix(strings.TrimPrefix(r.From, "<"), ">")
		case strings.HasPrefix(a, "-F"):
			r.FullName, err = value("-F")
		case strings.HasPrefix(a, "-o"), a == "-v", a == "-U", a == "-m", a == "-bm",
			strings.HasPrefix(a, "-A"), strings.HasPrefix(a, "-O"):
			// -o... (delivery mode, error mode, ...), verbose, initial
			// submission, "me too", deliver mode, alternate config name:
			// meaningful to a full MTA only.
		case strings.HasPrefix(a, "-B"), strings.HasPrefix(a, "-N"), strings.HasPrefix(a, "-R"),
			strings.HasPrefix(a, "-V"), strings.HasPrefix(a, "-X"), strings.HasPrefix(a, "-h"),
			strings.HasPrefix(a, "-L"), strings.HasPrefix(a, "-p"), strings.HasPrefix(a, "-q"):
			// Body type, DSN notify / return / envelope id, log file, hop
			// count, syslog label, protocol, queue runs: they take a value
			// and do nothing here. -q with a value; a bare -q is below.
			if a == "-q" {
				return r, usagef("-q (run the queue) is not supported: relaybox's daemon runs its queue itself; see relaybox queue")
			}
			_, err = value(a[:2])
		case strings.HasPrefix(a, "-b"):
			return r, usagef("%s is not supported: relaybox sendmail only submits a message (-bm)", a)
		default:
			return r, usagef("unknown flag %s", a)
		}
		if err != nil {
			return r, err
		}
	}
	if !r.FromHeaders && len(r.Recipients) == 0 {
		return r, usagef("no recipients: name them as arguments, or use -t to take them from To:, Cc: and Bcc:")
	}
	for _, rc := range r.Recipients {
		if err := checkAddress(rc); err != nil {
			return r, &UsageError{err.Error()}
		}
	}
	if r.From != "" {
		if err := checkAddress(r.From); err != nil {
			return r, usagef("-f: %v", err)
		}
	}
	return r, nil
}

// checkAddress refuses what cannot be an envelope address at all; the
// daemon's policy decides the rest.
func checkAddress(a string) error {
	if a == "" || strings.ContainsAny(a, " \t\r\n<>") {
		return fmt.Errorf("%q is not an e-mail address", a)
	}
	return nil
}

// errNoRecipients is returned when -t found no addresses in the headers
// and none were given as arguments.
var errNoRecipients = errors.New("no recipients: the message has no To:, Cc: or Bcc: header and none were given as arguments")
