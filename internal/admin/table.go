package admin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"relaybox/internal/status"
	"relaybox/internal/text"
)

// The tables `relaybox status`, `relaybox queue` and `relaybox log` print
// for a terminal; -json prints the API's own JSON instead. The serial
// console prints narrower layouts of its own (internal/console) from the
// same views (Fields, RecipientSummary, Sender). Whatever came from a
// device or an upstream goes through text.Printable or cell: it must not drive
// the operator's terminal.

// WriteFields writes label: value lines with the values in one column.
func WriteFields(w io.Writer, fields []status.Field) error {
	tw := newTable(w)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f.Label, f.Value)
	}
	return tw.Flush()
}

// WriteStatus writes the snapshot's fields, then one row per upstream.
func WriteStatus(w io.Writer, s status.Snapshot) error {
	if err := WriteFields(w, s.Fields()); err != nil {
		return err
	}
	if len(s.Upstreams) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "UPSTREAM\tUP\tFAILURES\tLAST SUCCESS\tLAST ERROR")
	for _, u := range s.Upstreams {
		ok := "yes"
		if !u.Up {
			ok = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", u.Name, ok, u.ConsecutiveFailures, status.Ago(s.Now, u.LastSuccess), cell(u.LastError, 70))
	}
	return tw.Flush()
}

// WritePage writes one page of the listing named list ("list", "dead" or
// "held", as the queue command's verb) and, when more follow or the page
// was asked for with a cursor (paged), a footer with the count and the
// command for the next page.
func WritePage(w io.Writer, list string, p *Page, paged bool) error {
	if len(p.Messages) == 0 && paged {
		_, err := fmt.Fprintf(w, "no more messages (%d in all)\n", p.Total)
		return err
	}
	if err := writeMessages(w, p.Messages, list == "dead"); err != nil {
		return err
	}
	if p.Next == "" && !paged {
		return nil
	}
	_, err := fmt.Fprintf(w, "\n%d shown of %d", len(p.Messages), p.Total)
	if err == nil && p.Next != "" {
		_, err = fmt.Fprintf(w, "; next page: relaybox queue %s -after %s (or -all)", list, p.Next)
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	return err
}

// writeMessages writes one row per message; dead letters have no NEXT.
func writeMessages(w io.Writer, msgs []Message, dead bool) error {
	if len(msgs) == 0 {
		msg := "queue is empty"
		if dead {
			msg = "no dead letters"
		}
		_, err := fmt.Fprintln(w, msg)
		return err
	}
	tw := newTable(w)
	if dead {
		fmt.Fprintln(tw, "ID\tAGE\tFROM\tSIZE\tTRIES\tRECIPIENTS\tLAST REPLY")
	} else {
		fmt.Fprintln(tw, "ID\tAGE\tFROM\tSIZE\tTRIES\tNEXT\tRECIPIENTS\tLAST REPLY")
	}
	for _, m := range msgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t", m.ID, m.Age(), cell(Sender(m.From), 40),
			status.FormatBytes(m.Size), m.Attempts)
		if !dead {
			fmt.Fprintf(tw, "%s\t", m.Next())
		}
		fmt.Fprintf(tw, "%s\t%s\n", RecipientSummary(m.Recipients), cell(m.LastReply, 60))
	}
	return tw.Flush()
}

// WriteDetail writes what `relaybox queue show` prints: the fields, the
// recipients, the attempt history and the header block.
func WriteDetail(w io.Writer, d *Detail) error {
	if err := WriteFields(w, d.Fields()); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nrecipients:")
	tw := newTable(w)
	for _, r := range d.Recipients {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Address, r.State, r.Reply)
	}
	tw.Flush()
	if len(d.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		tw = newTable(w)
		for _, h := range d.History {
			outcome := h.Outcome
			if outcome == "" {
				outcome = "(unknown: interrupted)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", Stamp(h.At), h.Upstream, outcome, h.Reply)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nheaders:")
	for _, l := range strings.Split(strings.TrimRight(d.Headers, "\r\n"), "\n") {
		fmt.Fprintln(w, "  "+text.Printable(strings.TrimRight(l, "\r")))
	}
	return nil
}

// WriteEvents writes one event a line, oldest first.
func WriteEvents(w io.Writer, events []status.Event) error {
	for _, e := range events {
		if _, err := fmt.Fprintln(w, text.Printable(e.String())); err != nil {
			return err
		}
	}
	return nil
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }

// cell fits s into a table cell of n runes, on one line.
func cell(s string, n int) string { return text.Clip(text.OneLine(s), n) }
