package deliver

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/text"
)

// noticeHeaderMax bounds how much of the original header a notice quotes.
const noticeHeaderMax = 64 << 10

// notice spools a failure notice about dead message m to the Notify
// address. Never about a null-sender message: that is how notice loops start.
func (s *Scheduler) notice(m *spool.Message, lastReply string, now time.Time) {
	if s.opt.Notify == "" || m.From == "" {
		return
	}
	hdr, err := s.opt.Store.Headers(m.ID, noticeHeaderMax)
	if err != nil {
		// A notice without the quoted header still tells the admin.
		s.log.Warn("deliver: cannot read headers for notice", "id", m.ID, "err", err)
		hdr = nil
	}
	body := buildNotice(s.opt.Hostname, s.opt.Notify, m, lastReply, hdr, now)
	n, err := s.opt.Store.Enqueue(spool.Envelope{Helo: s.opt.Hostname, From: "", Recipients: []string{s.opt.Notify}}, body)
	if err != nil {
		s.log.Error("deliver: cannot queue failure notice", "id", m.ID, "err", err)
		return
	}
	s.log.Info("failure notice queued", "id", n.ID, "about", m.ID, "to", s.opt.Notify)
	// Run may be in this very Tick; the token makes it look again at once.
	s.Kick()
}

// buildNotice renders the notice: a short text, then the original header
// (never the body: it may be large or confidential). CRLF throughout.
func buildNotice(host, to string, m *spool.Message, lastReply string, hdr []byte, now time.Time) []byte {
	var b bytes.Buffer
	line := func(format string, a ...any) {
		fmt.Fprintf(&b, format, a...)
		b.WriteString("\r\n")
	}
	subject := "Undelivered mail"
	if sub := subjectOf(hdr); sub != "" {
		subject += ": " + sub
	}
	line("From: MAILER-DAEMON@%s", host)
	line("To: <%s>", to)
	line("Subject: %s", subject)
	line("Date: %s", now.Format(time.RFC1123Z))
	line("Message-ID: <notice.%s.%s@%s>", m.ID, strconv.FormatInt(now.UnixNano(), 36), host)
	line("Auto-Submitted: auto-generated") // RFC 3834: do not auto-reply
	line("MIME-Version: 1.0")
	line("Content-Type: text/plain; charset=utf-8")
	line("Content-Transfer-Encoding: 8bit")
	line("")
	line("relaybox on %s could not deliver queued message %s", host, m.ID)
	line("from <%s>, received %s, to these recipients:", m.From, m.Received.Format(time.RFC1123Z))
	line("")
	for _, r := range m.Recipients {
		if r.State == spool.RcptFailed {
			line("  <%s>: %s", r.Address, text.OneLine(r.Reply()))
		}
	}
	line("")
	line("Last reply from the upstream relay: %s", text.OneLine(lastReply))
	line("")
	line("The message is kept in the dead-letter list: see it with")
	line("\"relaybox queue show %s\", send it again with \"relaybox queue retry %s\".", m.ID, m.ID)
	if len(hdr) > 0 {
		line("")
		line("--- header of the undelivered message ---")
		for l := range bytes.Lines(hdr) {
			l = bytes.TrimRight(l, "\r\n")
			if len(l) == 0 {
				break // end of the header block
			}
			b.Write(l)
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

// subjectMax bounds, in octets, the original subject quoted in the
// notice's own Subject field: a limit on the header line as sent, so it
// counts bytes (cut back to whole runes), not the runes text.Clip counts.
const subjectMax = 200

// subjectOf finds the Subject field in a header block and unfolds it.
func subjectOf(hdr []byte) string {
	var sub []byte
	in := false
	for l := range bytes.Lines(hdr) {
		l = bytes.TrimRight(l, "\r\n")
		if len(l) == 0 {
			break
		}
		if in && (l[0] == ' ' || l[0] == '\t') {
			sub = append(sub, ' ')
			sub = append(sub, bytes.TrimSpace(l)...)
			continue
		}
		in = false
		if sub == nil && len(l) >= 8 && strings.EqualFold(string(l[:8]), "subject:") {
			in = true
			sub = append([]byte{}, bytes.TrimSpace(l[8:])...)
		}
	}
	s := text.OneLine(string(sub))
	if len(s) > subjectMax {
		s = strings.ToValidUTF8(s[:subjectMax], "")
	}
	return s
}
