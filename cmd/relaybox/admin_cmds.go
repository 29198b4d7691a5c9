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

	"relaybox/internal/admin"
	"relaybox/internal/spool"
	"relaybox/internal/status"
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
	return admin.WriteStatus(stdout, snap)
}

const queueUsage = "usage: relaybox queue list | dead | held [-limit N] [-after ID] [-all] | show ID | retry [-force] ID | release ID | retry-all | retry-dead | delete ID  [-config FILE] [-admin HOST:PORT] [-json]"

// queueCmd is one `relaybox queue` invocation, parsed.
type queueCmd struct {
	c      *admin.Client
	stdout io.Writer
	json   bool
	verb   string
	id     string // show, retry, delete
	force  bool
	limit  int
	after  string
	all    bool
}

func cmdQueue(args []string, stdout, stderr io.Writer) error {
	q, err := parseQueue(args, stdout, stderr)
	if err != nil {
		return err
	}
	switch q.verb {
	case "list", "dead", "held":
		return q.list()
	case "show":
		return q.show()
	case "retry":
		return q.retry()
	case "retry-all", "retry-dead":
		return q.retryAll()
	case "delete":
		return q.delete()
	}
	return usageError{fmt.Errorf("unknown queue command %q\n%s", q.verb, queueUsage)}
}

// parseQueue reads the flags (before or after the words) and checks the
// words; it connects to no daemon.
func parseQueue(args []string, stdout, stderr io.Writer) (*queueCmd, error) {
	fs := newFlags("queue", stderr)
	af := newAdminFlags(fs)
	force := fs.Bool("force", false, "retry: also requeue recipients the upstream refused for good (5xx)")
	limit := fs.Int("limit", admin.DefaultLimit, fmt.Sprintf("list, dead, held: messages per page (1 to %d)", admin.MaxLimit))
	after := fs.String("after", "", "list, dead, held: start after this message `ID` (the next page)")
	all := fs.Bool("all", false, "list, dead, held: every page, not just the first")
	words, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
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
		return nil, usageError{fmt.Errorf("unknown queue command %q\n%s", verb, queueUsage)}
	case needID && len(rest) != 1:
		return nil, usageError{fmt.Errorf("queue %s needs one message ID (see relaybox queue list)\n%s", verb, queueUsage)}
	case !needID && len(rest) != 0:
		return nil, usageError{fmt.Errorf("queue %s takes no arguments, got %q\n%s", verb, strings.Join(rest, " "), queueUsage)}
	}
	c, err := af.client()
	if err != nil {
		return nil, err
	}
	q := &queueCmd{c: c, stdout: stdout, json: *af.json, verb: verb, force: *force, limit: *limit, after: *after, all: *all}
	if needID {
		q.id = rest[0]
	}
	return q, nil
}

// out prints v as JSON with -json, else runs human.
func (q *queueCmd) out(v any, human func() error) error {
	if q.json {
		return printJSON(q.stdout, v)
	}
	return human()
}

func (q *queueCmd) list() error {
	if q.limit < 1 || q.limit > admin.MaxLimit {
		return usageError{fmt.Errorf("-limit %d: want 1 to %d", q.limit, admin.MaxLimit)}
	}
	get := map[string]func(string, int) (*admin.Page, error){"list": q.c.Queue, "dead": q.c.Dead, "held": q.c.Held}[q.verb]
	page, err := get(q.after, q.limit)
	if err != nil {
		return err
	}
	// -all follows the cursor; each request stays one page, so the
	// daemon never builds the whole listing at once.
	for q.all && page.Next != "" {
		more, err := get(page.Next, q.limit)
		if err != nil {
			return err
		}
		page.Messages, page.Next = append(page.Messages, more.Messages...), more.Next
		page.Total = more.Total
	}
	return q.out(page, func() error { return admin.WritePage(q.stdout, q.verb, page, q.after != "") })
}

func (q *queueCmd) show() error {
	d, err := q.c.Show(q.id)
	if err != nil {
		return notFoundHint(err, q.id)
	}
	return q.out(d, func() error { return admin.WriteDetail(q.stdout, d) })
}

func (q *queueCmd) retry() error {
	retry := q.c.Retry
	if q.force {
		retry = q.c.ForceRetry
	}
	m, err := retry(q.id)
	var ae *admin.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict && !q.force {
		return fmt.Errorf("%w\nto requeue it anyway: relaybox queue retry -force %s", err, q.id)
	}
	if err != nil {
		return notFoundHint(err, q.id)
	}
	return q.out(m, func() error {
		pending := 0
		for _, r := range m.Recipients {
			if r.State == spool.RcptPending {
				pending++
			}
		}
		_, err := fmt.Fprintf(q.stdout, "%s: due now (%s, %s waiting)\n", m.ID, m.State, status.Plural(pending, "recipient"))
		return err
	})
}

func (q *queueCmd) retryAll() error {
	retry, what := q.c.RetryAll, "due now"
	if q.verb == "retry-dead" {
		retry, what = q.c.RetryDead, "requeued from the dead letters, due now"
	}
	n, err := retry()
	if err != nil {
		return err
	}
	return q.out(map[string]int{"retried": n}, func() error {
		_, err := fmt.Fprintf(q.stdout, "%s %s\n", status.Plural(n, "message"), what)
		return err
	})
}

func (q *queueCmd) delete() error {
	if err := q.c.Delete(q.id); err != nil {
		return notFoundHint(err, q.id)
	}
	return q.out(map[string]string{"deleted": q.id}, func() error {
		_, err := fmt.Fprintf(q.stdout, "%s: deleted\n", q.id)
		return err
	})
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
	return admin.WriteEvents(stdout, events)
}
