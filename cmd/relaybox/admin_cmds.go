package main

// relaybox status and relaybox queue: thin clients of the running daemon's
// admin API. They never open the spool (bbolt locks it while the daemon
// runs); everything they print comes from internal/admin.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"relaybox/internal/admin"
	"relaybox/internal/spool"
	"relaybox/internal/status"
	"relaybox/internal/text"
)

const defaultAdminAddr = "127.0.0.1:8025"

// adminFlags are the flags status and queue share.
type adminFlags struct {
	config, addr, passwordFile *string
	json                       *bool
}

func newAdminFlags(fs *flag.FlagSet) *adminFlags {
	return &adminFlags{
		config:       fs.String("config", "", "the daemon's config file: use its admin.listen and admin.password_file"),
		addr:         fs.String("admin", "", "admin API `HOST:PORT` (default: admin.listen of -config, else "+defaultAdminAddr+")"),
		passwordFile: fs.String("password-file", "", "`FILE` holding the admin password (default: admin.password_file of -config)"),
		json:         fs.Bool("json", false, "print JSON instead of tables"),
	}
}

// client builds the API client: -admin and -password-file win over the
// config, which wins over the default loopback address.
func (a *adminFlags) client() (*admin.Client, error) {
	addr, pwFile := defaultAdminAddr, ""
	if *a.config != "" {
		cfg, err := loadConfig(*a.config)
		if err != nil {
			return nil, err
		}
		if cfg.Admin.Listen == "" && *a.addr == "" {
			return nil, usageError{fmt.Errorf("admin.listen is empty in %s: the admin API is off, so there is no daemon to ask; set admin.listen or pass -admin HOST:PORT", *a.config)}
		}
		if cfg.Admin.Listen != "" {
			addr = dialable(cfg.Admin.Listen)
		}
		pwFile = cfg.Admin.PasswordFile
	}
	if *a.addr != "" {
		if _, _, err := net.SplitHostPort(*a.addr); err != nil {
			return nil, usageError{fmt.Errorf("-admin %q: want HOST:PORT, like %s", *a.addr, defaultAdminAddr)}
		}
		addr = dialable(*a.addr)
	}
	if *a.passwordFile != "" {
		pwFile = *a.passwordFile
	}
	pass := ""
	if pwFile != "" {
		var err error
		if pass, err = admin.ReadPassword(pwFile); err != nil {
			return nil, usageError{err}
		}
	}
	return &admin.Client{Base: "http://" + addr, Password: pass}, nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	af := newAdminFlags(fs)
	words, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return usageError{fmt.Errorf("status takes no arguments, got %q", strings.Join(words, " "))}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	snap, err := c.Status()
	if err != nil {
		return err
	}
	if *af.json {
		return printJSON(stdout, snap)
	}
	return printStatus(stdout, snap)
}

const queueUsage = "usage: relaybox queue list | dead | held [-limit N] [-after ID] [-all] | show ID | retry [-force] ID | release ID | retry-all | retry-dead | delete ID  [-config FILE] [-admin HOST:PORT] [-json]"

func cmdQueue(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("queue", stderr)
	af := newAdminFlags(fs)
	force := fs.Bool("force", false, "retry: also requeue recipients the upstream refused for good (5xx)")
	limit := fs.Int("limit", admin.DefaultLimit, fmt.Sprintf("list, dead, held: messages per page (1 to %d)", admin.MaxLimit))
	after := fs.String("after", "", "list, dead, held: start after this message `ID` (the next page)")
	all := fs.Bool("all", false, "list, dead, held: every page, not just the first")
	words, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		words = []string{"list"}
	}
	verb, rest := words[0], words[1:]
	if verb == "release" { // a held repeat is released by retrying it
		verb = "retry"
	}
	needID := verb == "show" || verb == "retry" || verb == "delete"
	switch {
	case !needID && !slices.Contains([]string{"list", "dead", "held", "retry-all", "retry-dead"}, verb):
		return usageError{fmt.Errorf("unknown queue command %q\n%s", verb, queueUsage)}
	case needID && len(rest) != 1:
		return usageError{fmt.Errorf("queue %s needs one message ID (see relaybox queue list)\n%s", verb, queueUsage)}
	case !needID && len(rest) != 0:
		return usageError{fmt.Errorf("queue %s takes no arguments, got %q\n%s", verb, strings.Join(rest, " "), queueUsage)}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	out := func(v any, human func() error) error {
		if *af.json {
			return printJSON(stdout, v)
		}
		return human()
	}
	switch verb {
	case "list", "dead", "held":
		if *limit < 1 || *limit > admin.MaxLimit {
			return usageError{fmt.Errorf("-limit %d: want 1 to %d", *limit, admin.MaxLimit)}
		}
		get := map[string]func(string, int) (*admin.Page, error){"list": c.Queue, "dead": c.Dead, "held": c.Held}[verb]
		page, err := get(*after, *limit)
		if err != nil {
			return err
		}
		// -all follows the cursor; each request stays one page, so the
		// daemon never builds the whole listing at once.
		for *all && page.Next != "" {
			more, err := get(page.Next, *limit)
			if err != nil {
				return err
			}
			page.Messages, page.Next = append(page.Messages, more.Messages...), more.Next
			page.Total = more.Total
		}
		return out(page, func() error { return printPage(stdout, verb, page, *after != "") })
	case "show":
		d, err := c.Show(rest[0])
		if err != nil {
			return notFoundHint(err, rest[0])
		}
		return out(d, func() error { return printDetail(stdout, d) })
	case "retry":
		retry := c.Retry
		if *force {
			retry = c.ForceRetry
		}
		m, err := retry(rest[0])
		var ae *admin.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict && !*force {
			return fmt.Errorf("%w\nto requeue it anyway: relaybox queue retry -force %s", err, rest[0])
		}
		if err != nil {
			return notFoundHint(err, rest[0])
		}
		return out(m, func() error {
			pending := 0
			for _, r := range m.Recipients {
				if r.State == spool.RcptPending {
					pending++
				}
			}
			_, err := fmt.Fprintf(stdout, "%s: due now (%s, %s waiting)\n", m.ID, m.State, status.Plural(pending, "recipient"))
			return err
		})
	case "retry-all", "retry-dead":
		var n int
		if verb == "retry-all" {
			n, err = c.RetryAll()
		} else {
			n, err = c.RetryDead()
		}
		if err != nil {
			return err
		}
		return out(map[string]int{"retried": n}, func() error {
			what := "due now"
			if verb == "retry-dead" {
				what = "requeued from the dead letters, due now"
			}
			_, err := fmt.Fprintf(stdout, "%s %s\n", status.Plural(n, "message"), what)
			return err
		})
	case "delete":
		if err := c.Delete(rest[0]); err != nil {
			return notFoundHint(err, rest[0])
		}
		return out(map[string]string{"deleted": rest[0]}, func() error {
			_, err := fmt.Fprintf(stdout, "%s: deleted\n", rest[0])
			return err
		})
	}
	return usageError{fmt.Errorf("unknown queue command %q\n%s", verb, queueUsage)}
}

// notFoundHint turns the API's 404 into a sentence that says where to look.
func notFoundHint(err error, id string) error {
	if admin.NotFound(err) {
		return fmt.Errorf("no message %s in the queue or the dead letters (see relaybox queue list, relaybox queue dead)", id)
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, s status.Snapshot) error {
	if err := printFields(w, s.Fields()); err != nil {
		return err
	}
	if len(s.Upstreams) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tUP\tFAILURES\tLAST SUCCESS\tLAST ERROR")
	for _, u := range s.Upstreams {
		ok := "yes"
		if !u.Up {
			ok = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", u.Name, ok, u.ConsecutiveFailures, status.Ago(s.Now, u.LastSuccess), clip(u.LastError, 70))
	}
	return tw.Flush()
}

// printPage prints a page of a listing and, when more follow, how to get
// the next one.
func printPage(w io.Writer, verb string, p *admin.Page, paged bool) error {
	if len(p.Messages) == 0 && paged {
		_, err := fmt.Fprintf(w, "no more messages (%d in all)\n", p.Total)
		return err
	}
	if err := printMessages(w, p.Messages, verb == "dead"); err != nil {
		return err
	}
	if p.Next == "" && !paged {
		return nil
	}
	_, err := fmt.Fprintf(w, "\n%d shown of %d", len(p.Messages), p.Total)
	if err == nil && p.Next != "" {
		_, err = fmt.Fprintf(w, "; next page: relaybox queue %s -after %s (or -all)", verb, p.Next)
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	return err
}

func printMessages(w io.Writer, msgs []admin.Message, dead bool) error {
	if len(msgs) == 0 {
		msg := "queue is empty"
		if dead {
			msg = "no dead letters"
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if dead {
		fmt.Fprintln(tw, "ID\tAGE\tFROM\tSIZE\tTRIES\tRECIPIENTS\tLAST REPLY")
	} else {
		fmt.Fprintln(tw, "ID\tAGE\tFROM\tSIZE\tTRIES\tNEXT\tRECIPIENTS\tLAST REPLY")
	}
	for _, m := range msgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t", m.ID, m.Age(), clip(admin.Sender(m.From), 40),
			status.FormatBytes(m.Size), m.Attempts)
		if !dead {
			fmt.Fprintf(tw, "%s\t", m.Next())
		}
		fmt.Fprintf(tw, "%s\t%s\n", admin.RecipientSummary(m.Recipients), clip(m.LastReply, 60))
	}
	return tw.Flush()
}

func printDetail(w io.Writer, d *admin.Detail) error {
	if err := printFields(w, d.Fields()); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nrecipients:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, r := range d.Recipients {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Address, r.State, r.Reply)
	}
	tw.Flush()
	if len(d.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, h := range d.History {
			outcome := h.Outcome
			if outcome == "" {
				outcome = "(unknown: interrupted)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", admin.Stamp(h.At), h.Upstream, outcome, h.Reply)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nheaders:")
	for _, l := range strings.Split(strings.TrimRight(d.Headers, "\r\n"), "\n") {
		fmt.Fprintln(w, "  "+text.Printable(strings.TrimRight(l, "\r")))
	}
	return nil
}

// printFields prints label: value lines with the values in one column.
func printFields(w io.Writer, fields []status.Field) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f.Label, f.Value)
	}
	return tw.Flush()
}

// clip fits s into a table cell of n columns.
func clip(s string, n int) string { return text.Clip(text.OneLine(s), n) }

// cmdLog prints the daemon's recent events (the ring the console's `log`
// shows), oldest first: what a technician on the LAN reads first.
func cmdLog(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("log", stderr)
	af := newAdminFlags(fs)
	n := fs.Int("n", 20, "how many of the most recent events")
	words, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(words) > 0 || *n < 1 {
		return usageError{fmt.Errorf("usage: relaybox log [-n N] [-config FILE | -admin HOST:PORT] [-json]")}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	events, err := c.Events()
	if err != nil {
		return err
	}
	events = events[max(0, len(events)-*n):]
	if *af.json {
		return printJSON(stdout, map[string]any{"events": events})
	}
	for _, e := range events {
		if _, err := fmt.Fprintln(stdout, text.Printable(e.String())); err != nil {
			return err
		}
	}
	return nil
}
