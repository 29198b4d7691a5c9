package status

import (
	"fmt"
	"time"
)

// Field is one labelled line of a human-readable view.
type Field struct{ Label, Value string }

// Fields is the snapshot as `relaybox status` and the serial console's
// status print it, upstreams aside (the CLI tabulates them, the console
// gives each a line). One wording for both, so the two cannot drift; the
// labels fit the console's 12-column label field.
func (s Snapshot) Fields() []Field {
	f := []Field{{"state", fmt.Sprintf("%s for %s", s.State, FormatDuration(s.Now.Sub(s.Since)))}}
	if s.Reason != "" {
		f = append(f, Field{"reason", s.Reason})
	}
	ver := s.Version
	if !s.Started.IsZero() {
		ver += ", up " + FormatDuration(s.Now.Sub(s.Started))
	}
	f = append(f, Field{"version", ver})
	q := s.Queue
	queue := fmt.Sprintf("%s (%s)", Plural(q.Messages, "message"), FormatBytes(q.Bytes))
	if q.Messages > 0 && !q.Oldest.IsZero() {
		queue += ", oldest " + FormatDuration(time.Duration(q.OldestAgeSeconds*float64(time.Second)))
	}
	f = append(f, Field{"queue", queue},
		Field{"dead", fmt.Sprintf("%s (%s)", Plural(q.Dead, "message"), FormatBytes(q.DeadBytes))})
	if q.Quota > 0 {
		f = append(f, Field{"spool", fmt.Sprintf("%d%% of the %s quota", (q.Bytes+q.DeadBytes)*100/q.Quota, FormatBytes(q.Quota))})
	}
	c := s.Counters
	f = append(f, Field{"counters", fmt.Sprintf("accepted %d, delivered %d, deferred %d, failed %d, expired %d",
		c.Accepted, c.Delivered, c.Deferred, c.Failed, c.Expired)})
	if s.Clock == ClockUnsynchronised {
		f = append(f, Field{"clock", "not synchronised (no NTP yet?): message ages use the relay's own run clock, but TLS to the upstream fails while the date is wrong"})
	}
	if s.ConfigError != "" {
		f = append(f, Field{"config", "reload failed, running on the previous config: " + s.ConfigError})
	}
	for _, w := range s.Warnings {
		f = append(f, Field{"warning", w})
	}
	if s.NoUpstream {
		f = append(f, Field{"upstream", "none configured: mail is held until one is added"})
	}
	return f
}

// Plural counts n of word: "1 message", "3 messages".
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Ago is how long before now t was, "never" for the zero time.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return FormatDuration(now.Sub(t)) + " ago"
}
