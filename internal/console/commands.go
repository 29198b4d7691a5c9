package console

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"

	"relaybox/internal/admin"
	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/text"
)

// The commands print what the status model and the admin command layer
// return; none of them computes health or touches the spool itself.

const labelWidth = 12 // "last reply:" and one space

func (s *session) cmdStatus(args []string) error {
	snap := s.c.opt.Commands.Status()
	for _, f := range snap.Fields() {
		s.field(f.Label, f.Value)
	}
	for _, u := range snap.Upstreams {
		line := u.Name + " up"
		if !u.Up {
			line = fmt.Sprintf("%s DOWN for %s, %s", u.Name, status.FormatDuration(snap.Now.Sub(u.FailingSince)),
				status.Plural(u.ConsecutiveFailures, "failure"))
		}
		s.field("upstream", line+", last success "+status.Ago(snap.Now, u.LastSuccess))
		if !u.Up && u.LastError != "" {
			s.field("", "last error: "+u.LastError)
		}
	}
	return nil
}

const queueUsage = "queue | queue show ID | queue retry [-force] ID | queue retry-all | queue retry-dead | queue delete ID"

func (s *session) cmdQueue(args []string) error {
	if len(args) == 0 {
		return s.list(spool.StateQueued)
	}
	verb, rest := strings.ToLower(args[0]), args[1:]
	force := false
	if verb == "retry" && len(rest) == 2 && rest[0] == "-force" {
		force, rest = true, rest[1:]
	}
	if len(rest) == 1 {
		// IDs are upper-case Crockford base32; accept them typed in
		// lower case.
		rest = []string{strings.ToUpper(rest[0])}
	}
	switch verb {
	case "list":
		if len(rest) == 0 {
			return s.list(spool.StateQueued)
		}
	case "dead":
		if len(rest) == 0 {
			return s.list(spool.StateDead)
		}
	case "show":
		if len(rest) == 1 {
			return s.show(rest[0])
		}
	case "retry":
		if len(rest) == 1 {
			return s.retry(rest[0], force)
		}
	case "retry-all", "retry-dead":
		if len(rest) == 0 {
			return s.retryAll(verb == "retry-dead")
		}
	case "delete":
		if len(rest) == 1 {
			return s.delete(rest[0])
		}
	}
	return s.usage(queueUsage)
}

func (s *session) cmdDead(args []string) error {
	if len(args) != 0 {
		return s.usage("dead (the dead letters; queue retry ID or queue retry-dead requeues them)")
	}
	return s.list(spool.StateDead)
}

func (s *session) cmdHeld(args []string) error {
	if len(args) != 0 {
		return s.usage("held (repeats a device sent over and over; queue retry ID releases one)")
	}
	return s.list(spool.StateHeld)
}

// list prints the oldest maxRows messages and the total: at 115200 baud a
// spool of thousands would scroll for minutes, and the oldest are the
// stuck ones. Only that page is read from the spool.
func (s *session) list(state spool.State) error {
	page, err := s.c.opt.Commands.List(state, "", maxRows)
	if err != nil {
		s.fail(err, "")
		return nil
	}
	msgs := page.Messages
	dead := state == spool.StateDead
	if len(msgs) == 0 {
		switch state {
		case spool.StateDead:
			s.printf("no dead letters\n")
		case spool.StateHeld:
			s.printf("no held repeats\n")
		default:
			s.printf("queue is empty\n")
		}
		return nil
	}
	next := "NEXT   "
	if dead {
		next = ""
	}
	s.printf("%-13s %5s %9s %5s %sFROM -> TO\n", "ID", "AGE", "SIZE", "TRIES", next)
	for _, m := range msgs {
		row := fmt.Sprintf("%-13s %5s %9s %5d ", m.ID, m.Age(),
			status.FormatBytes(m.Size), m.Attempts)
		if !dead {
			row += fmt.Sprintf("%-7s", m.Next())
		}
		row += admin.Sender(m.From) + " -> " + admin.RecipientSummary(m.Recipients)
		s.printf("%s\n", text.Clip(row, width))
		if m.LastReply != "" {
			s.printf("%s\n", text.Clip(strings.Repeat(" ", 14)+"last reply: "+m.LastReply, width))
		}
	}
	if n := page.Total - len(msgs); n > 0 {
		cli := "relaybox queue list"
		switch state {
		case spool.StateDead:
			cli = "relaybox queue dead"
		case spool.StateHeld:
			cli = "relaybox queue held"
		}
		s.printf("... %d more of %d: `%s -after %s`\n", n, page.Total, cli, page.Next)
	}
	return nil
}

func (s *session) show(id string) error {
	d, err := s.c.opt.Commands.Show(id)
	if err != nil {
		s.fail(err, id)
		return nil
	}
	for _, f := range d.Fields() {
		s.field(f.Label, f.Value)
	}
	s.printf("recipients:\n")
	for _, r := range d.Recipients {
		s.printf("  %-9s %s\n", r.State, r.Address)
		if r.Reply != "" {
			s.field("", r.Reply)
		}
	}
	if h := d.History; len(h) > 0 {
		s.printf("history (newest %d of %d):\n", min(len(h), maxHistory), len(h))
		for _, a := range h[max(len(h)-maxHistory, 0):] {
			outcome := a.Outcome
			if outcome == "" {
				outcome = "(interrupted)"
			}
			s.wrapped("  ", fmt.Sprintf("%s %s %s %s", admin.Stamp(a.At), a.Upstream, outcome, a.Reply))
		}
	}
	s.printf("headers:\n")
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(d.Headers, "\r\n"), "\n") {
		first := "  "
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			first = "    " // a folded continuation stays visibly indented
		}
		lines = append(lines, wrap(strings.TrimRight(l, "\r"), first, "      ")...)
	}
	for _, l := range lines[:min(len(lines), maxHeaders)] {
		s.printf("%s\n", l)
	}
	if n := len(lines) - maxHeaders; n > 0 {
		s.printf("... %d more header lines; `relaybox queue show %s` has them all\n", n, d.ID)
	}
	return nil
}

func (s *session) retry(id string, force bool) error {
	retry := s.c.opt.Commands.Retry
	if force {
		retry = s.c.opt.Commands.ForceRetry
	}
	m, err := retry(id)
	if err != nil {
		s.fail(err, id)
		if errors.Is(err, admin.ErrNothingToRetry) && !force {
			s.printf("to requeue it anyway: queue retry -force %s\n", id)
		}
		return nil
	}
	s.printf("%s: due now (%s, %s waiting)\n", m.ID, m.State, status.Plural(len(m.Pending()), "recipient"))
	return nil
}

func (s *session) retryAll(dead bool) error {
	retry, what := s.c.opt.Commands.RetryAll, "due now"
	if dead {
		retry, what = s.c.opt.Commands.RetryDead, "requeued from the dead letters, due now"
	}
	n, err := retry()
	if err != nil {
		s.fail(err, "")
		if n == 0 {
			return nil
		}
	}
	s.printf("%s %s\n", status.Plural(n, "message"), what)
	return nil
}

// delete asks first: a typo in an ID on a serial line should not lose
// mail for good.
func (s *session) delete(id string) error {
	d, err := s.c.opt.Commands.Show(id)
	if err != nil {
		s.fail(err, id)
		return nil
	}
	s.printf("%s: %s message from %s to %s, %s\n", d.ID, d.State, admin.Sender(d.From),
		status.Plural(len(d.Recipients), "recipient"), status.FormatBytes(d.Size))
	answer, ok, err := s.readLine("type yes to delete " + d.ID + ": ")
	if err != nil {
		return err
	}
	if !ok || strings.TrimSpace(answer) != "yes" {
		s.printf("not deleted\n")
		return nil
	}
	if err := s.c.opt.Commands.Delete(d.ID); err != nil {
		s.fail(err, d.ID)
		return nil
	}
	s.printf("%s: deleted\n", d.ID)
	return nil
}

func (s *session) cmdUpstream(args []string) error {
	if len(args) != 0 {
		return s.usage("upstream (checks every configured upstream; sends no mail)")
	}
	check := s.c.opt.Upstream
	if check == nil {
		s.printf("the upstream check is not available: no [[upstream]] is configured\n")
		return nil
	}
	s.printf("checking the upstream relays, sending no mail (Ctrl-C stops)\n")
	return s.interruptible(func(ctx context.Context) {
		err := check(ctx, func(name, result string) {
			s.wrapped(fmt.Sprintf("  %-10s ", name), result)
		})
		if err != nil {
			s.wrapped("result: ", "FAILED: "+err.Error())
			return
		}
		s.printf("result: ok, nothing was sent\n")
	})
}

func (s *session) cmdNet(args []string) error {
	if len(args) != 0 {
		return s.usage("net")
	}
	if h := s.c.opt.Hostname; h != "" {
		s.printf("hostname %s\n", h)
	}
	lines, err := s.c.opt.Net()
	if err != nil {
		s.printf("error: %s\n", err)
		return nil
	}
	if len(lines) == 0 {
		s.printf("no network interface besides loopback\n")
	}
	for _, l := range lines {
		s.printf("%s\n", text.Clip(l, width))
	}
	return nil
}

func (s *session) cmdLog(args []string) error {
	n := defaultLog
	if len(args) > 1 {
		return s.usage("log [N]  (N from 1 to 100)")
	}
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > maxLog {
			return s.usage("log [N]  (N from 1 to 100)")
		}
		n = v
	}
	events := s.c.opt.Status.Recent(n)
	if len(events) == 0 {
		s.printf("no events yet\n")
	}
	for _, e := range events {
		for _, l := range wrap(e.String(), "", "    ") {
			s.printf("%s\n", l)
		}
	}
	return nil
}

func (s *session) cmdSendTest(args []string) error {
	if len(args) != 1 || !strings.Contains(args[0], "@") || len(args[0]) > 254 {
		return s.usage("send-test ADDR  (e.g. send-test you@example.edu)")
	}
	send := s.c.opt.SendTest
	if send == nil {
		s.printf("send-test is not available: the relay has no listener to send through\n")
		return nil
	}
	to := args[0]
	s.printf("sending a test message to %s through this relay (Ctrl-C stops)\n", to)
	return s.interruptible(func(ctx context.Context) {
		reply, err := send(ctx, to)
		if err != nil {
			s.wrapped("failed: ", err.Error())
			return
		}
		s.wrapped("accepted: ", reply)
		s.printf("type queue to watch it leave, or log to see it sent\n")
	})
}

func (s *session) cmdVersion(args []string) error {
	s.printf("relaybox %s (%s, %s/%s)\n", s.c.opt.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// fail prints a command error in words a technician can act on.
func (s *session) fail(err error, id string) {
	if errors.Is(err, spool.ErrNotFound) && id != "" {
		s.printf("no message %s in the queue or the dead letters (type queue or dead)\n", text.Clip(id, 20))
		return
	}
	s.wrapped("error: ", strings.TrimPrefix(err.Error(), "admin: "))
}

// field prints "label:" in a fixed column and the value wrapped beside it.
func (s *session) field(label, value string) {
	if label != "" {
		label += ":"
	}
	s.wrapped(fmt.Sprintf("%-*s", labelWidth, label), value)
}

// wrapped prints text after first, wrapped to the screen width with
// continuation lines indented to first's width. Many dumb terminals do
// not wrap at all, so long reasons would otherwise run off the screen.
func (s *session) wrapped(first, text string) {
	for _, l := range wrap(text, first, strings.Repeat(" ", len(first))) {
		s.printf("%s\n", l)
	}
}

// wrap breaks text into lines of at most width columns, the first
// starting with first and the rest with indent, at spaces where it can
// and inside a word too long for a line where it must.
func wrap(text, first, indent string) []string {
	var lines []string
	line := first
	room := func() int { return width - len(line) }
	started := false // whether line holds a word yet
	for _, word := range strings.Fields(text) {
		sep := ""
		if started {
			sep = " "
		}
		if started && len(sep)+len(word) > room() {
			lines = append(lines, line)
			line, sep, started = indent, "", false
		}
		for len(sep)+len(word) > room() && room() > 0 {
			k := room() - len(sep)
			lines = append(lines, line+sep+word[:k])
			word, line, sep = word[k:], indent, ""
		}
		line += sep + word
		started = true
	}
	if started || len(lines) == 0 {
		lines = append(lines, strings.TrimRight(line, " "))
	}
	return lines
}

// interfaceAddrs is the default Options.Net: every interface but
// loopback, with its state and hardware address (what a DHCP reservation
// needs), then its addresses.
func interfaceAddrs() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("console: list interfaces: %w", err)
	}
	var lines []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		state := "down"
		switch {
		case ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagRunning == 0:
			state = "up, no link"
		case ifc.Flags&net.FlagUp != 0:
			state = "up"
		}
		head := ifc.Name + " (" + state
		if mac := ifc.HardwareAddr.String(); mac != "" {
			head += ", mac " + mac
		}
		lines = append(lines, head+")")
		addrs, err := ifc.Addrs()
		if err != nil {
			lines = append(lines, "  addresses unknown: "+err.Error())
			continue
		}
		switch {
		case state == "up, no link":
			lines = append(lines, "  no link: is the cable in?")
		case len(addrs) == 0 && state == "up":
			lines = append(lines, "  no address: is a DHCP server answering?")
		}
		for _, a := range addrs {
			lines = append(lines, "  "+a.String())
		}
	}
	return lines, nil
}
