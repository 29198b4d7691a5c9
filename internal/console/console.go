// Package console is relaybox's serial console: a line-based shell for a
// technician with a USB-serial cable, for when the network is the
// problem. The interpreter runs on any io.ReadWriter (Serve), so tests
// drive it through a pipe; Open and Run put it on a serial device.
//
// The console reads health from the status model and acts on the queue
// through the admin command layer, the same calls the HTTP API makes, so
// the console and the API can never disagree. It works on a dumb
// terminal at 115200 8N1: it echoes, handles backspace, CR, LF and CRLF,
// writes CRLF line ends and plain ASCII, and never sends an escape
// sequence.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"relaybox/internal/admin"
	"relaybox/internal/status"
	"relaybox/internal/text"
)

// Options configure New. Commands and Status are required.
type Options struct {
	Commands *admin.Server // the command layer the HTTP API uses
	Status   *status.Model
	// Upstream runs the same check as `relaybox upstream-check`, calling
	// report once per finished step; nil = not available.
	Upstream func(ctx context.Context, report func(name, result string)) error
	// SendTest sends one test message to to through the relay's own
	// listener and returns the listener's reply; nil = not available.
	SendTest func(ctx context.Context, to string) (string, error)
	// Net lists the box's addresses, one line each (default: every
	// interface's addresses but loopback, with the interface name).
	Net      func() ([]string, error)
	Version  string
	Hostname string
	Now      func() time.Time // default time.Now
	// NoEcho turns the echo of typed characters off, for a terminal set
	// to local echo. Serial terminals expect the device to echo, so the
	// default is on.
	NoEcho bool
}

// Console is the shell. One Console may serve several sessions, one
// after another or at once on different transports.
type Console struct {
	opt Options

	// Backoff between attempts to (re)open the device in Run; fields so
	// tests can shorten them.
	minBackoff, maxBackoff time.Duration
	// stableAfter: a device that stayed open this long resets the backoff.
	stableAfter time.Duration
}

// Limits that keep output readable at 115200 baud on an 80-column screen.
const (
	width      = 79 // one less than the screen, so no terminal auto-wraps early
	maxRows    = 20 // messages shown by queue / dead
	defaultLog = 20 // events shown by log
	maxLog     = 100
	maxHeaders = 40 // output lines of headers in queue show
	maxHistory = 10 // attempts in queue show, newest
	// checkTimeout is a safety net for upstream and send-test, which
	// carry their own per-step timeouts; Ctrl-C is the usual way out.
	checkTimeout = 10 * time.Minute
	prompt       = "relaybox> "
)

// New builds a console.
func New(opt Options) *Console {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Net == nil {
		opt.Net = interfaceAddrs
	}
	return &Console{opt: opt, minBackoff: time.Second, maxBackoff: 30 * time.Second, stableAfter: time.Minute}
}

// session is one conversation, from the banner to exit.
type session struct {
	c    *Console
	ctx  context.Context
	in   *input
	out  *out
	echo bool
}

// errExit ends a session at the user's request.
var errExit = errors.New("console: session ended")

// Serve runs one session on rw: banner, prompt, commands, until exit or
// quit (nil), the end of input (nil), a read or write error, or ctx
// ending (ctx.Err()). A Read in flight when ctx ends stays blocked until
// the caller closes rw, as Run does.
func (c *Console) Serve(ctx context.Context, rw io.ReadWriter) error {
	err := c.serve(ctx, newInput(rw), rw)
	if errors.Is(err, errExit) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// serve runs one session on an input that may outlive it (Run keeps one
// per open device, so type-ahead after exit is not lost).
func (c *Console) serve(ctx context.Context, in *input, w io.Writer) error {
	s := &session{c: c, ctx: ctx, in: in, out: &out{w: w}, echo: !c.opt.NoEcho}
	s.banner()
	for {
		line, ok, err := s.readLine(prompt)
		if err != nil {
			return s.ioErr(err)
		}
		if !ok {
			continue
		}
		if err := s.exec(line); err != nil {
			return s.ioErr(err)
		}
		if err := s.out.failed(); err != nil {
			return s.ioErr(err)
		}
	}
}

// ioErr names where a transport error happened; errExit, io.EOF and
// context errors pass as they are.
func (s *session) ioErr(err error) error {
	if errors.Is(err, errExit) || errors.Is(err, io.EOF) || s.ctx.Err() != nil && errors.Is(err, s.ctx.Err()) {
		return err
	}
	if werr := s.out.failed(); werr != nil && errors.Is(err, werr) {
		return fmt.Errorf("console: write: %w", err)
	}
	return fmt.Errorf("console: read: %w", err)
}

func (s *session) printf(format string, a ...any) {
	fmt.Fprintf(s.out, format, a...)
}

func (s *session) banner() {
	o := s.c.opt
	snap := o.Status.Snapshot()
	host := o.Hostname
	if host == "" {
		host = "(no hostname)"
	}
	s.printf("\nrelaybox %s on %s\n", o.Version, host)
	s.printf("state %s for %s, clock %s\n", snap.State, status.FormatDuration(snap.Now.Sub(snap.Since)),
		snap.Now.UTC().Format("2006-01-02 15:04:05 UTC"))
	if snap.Reason != "" {
		s.wrapped("  ", snap.Reason)
	}
	s.printf("type help for commands\n")
}

// command is one shell command.
type command struct {
	name, args, help string
	run              func(s *session, args []string) error
}

// commands is the table help prints and exec dispatches on. It is a
// function, not a package variable, so the table holds no state.
func commands() []command {
	return []command{
		{"help", "", "this list", (*session).cmdHelp},
		{"status", "", "health, queue figures, upstreams", (*session).cmdStatus},
		{"queue", "", "waiting messages (at most 20)", (*session).cmdQueue},
		{"queue", "show ID", "one message: recipients, attempts, headers", nil},
		{"queue", "retry [-force] ID", "make a message due now (-force: also 5xx refusals)", nil},
		{"queue", "retry-all", "make every waiting message due now", nil},
		{"queue", "retry-dead", "requeue the dead letters that can be retried", nil},
		{"queue", "delete ID", "delete a message for good (asks first)", nil},
		{"dead", "", "dead letters (at most 20)", (*session).cmdDead},
		{"held", "", "repeats held as duplicates (queue retry ID releases one)", (*session).cmdHeld},
		{"upstream", "", "check each upstream relay; sends no mail", (*session).cmdUpstream},
		{"net", "", "this box's network addresses", (*session).cmdNet},
		{"log", "[N]", "the last N events (default 20, at most 100)", (*session).cmdLog},
		{"send-test", "ADDR", "send a test message through this relay", (*session).cmdSendTest},
		{"version", "", "version and platform", (*session).cmdVersion},
		{"exit", "", "end the session (also quit)", nil},
	}
}

// exec runs one line. A nil error means carry on; errExit ends the session.
func (s *session) exec(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	name, args := strings.ToLower(f[0]), f[1:]
	if name == "exit" || name == "quit" {
		s.printf("bye\n")
		return errExit
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(s, args)
		}
	}
	s.printf("unknown command %q: type help for the list\n", text.Clip(f[0], 20))
	return nil
}

func (s *session) cmdHelp(args []string) error {
	for _, c := range commands() {
		usage := c.name
		if c.args != "" {
			usage += " " + c.args
		}
		s.wrapped(fmt.Sprintf("  %-25s", usage), c.help)
	}
	s.wrapped("", "Keys: Backspace erases, Ctrl-U clears the line, Ctrl-C cancels the line or a running check.")
	return nil
}

// usage prints a one-line usage hint for a command.
func (s *session) usage(u string) error {
	s.printf("usage: %s\n", u)
	return nil
}

// interruptible runs f while watching the line for Ctrl-C, which cancels
// f's context: an upstream check against a black hole can take minutes.
// Other bytes typed meanwhile are kept as type-ahead.
func (s *session) interruptible(f func(ctx context.Context)) error {
	ctx, cancel := context.WithTimeout(s.ctx, checkTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	for {
		var reads <-chan readResult
		if s.in.err == nil {
			reads = s.in.start()
		}
		select {
		case <-done:
			return nil
		case <-s.ctx.Done():
			<-done
			return s.ctx.Err()
		case r := <-reads:
			at := strings.LastIndexByte(string(r.b), ctrlC)
			if at >= 0 {
				r.b = r.b[at+1:]
				s.in.buf = s.in.buf[:0]
			}
			s.in.got(r)
			if at >= 0 {
				s.out.raw("^C\r\n")
				cancel()
				<-done
				s.printf("cancelled\n")
				return nil
			}
		}
	}
}
