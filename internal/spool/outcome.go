package spool

import (
	"strconv"
	"strings"
)

// Outcome is what the last attempt for one recipient came to, as data: the
// admin's retry decision reads these fields, never the text, so a reply
// worded like another cannot change what a retry does.
type Outcome struct {
	// Permanent: the upstream refused with a 5xx (or relaybox refused in
	// its stead, as for a message it cannot offer the upstream); sending
	// the same again cannot help until the cause is fixed.
	Permanent bool `json:"permanent,omitempty"`
	// Code is the SMTP reply code; 0 for a network or TLS failure and for
	// relaybox's own words.
	Code int `json:"code,omitempty"`
	// Enhanced is the RFC 3463 status code ("5.1.1"), "" if none.
	Enhanced string `json:"enhanced,omitempty"`
	// Text is the reply text after the codes, or the description of a
	// failure that had no reply; one line.
	Text string `json:"text,omitempty"`
	// Expired: the message passed queue.max_age with this recipient still
	// pending. Text then says how old it was and the last reply (Code 0);
	// a retry gives it a fresh lifetime.
	Expired bool `json:"expired,omitempty"`
}

// Reply renders the outcome as the one-line reply people read: "550 5.1.1
// no such user", or the text alone when there was no code.
func (o Outcome) Reply() string {
	switch {
	case o.Code == 0:
		return o.Text
	case o.Enhanced != "":
		return strconv.Itoa(o.Code) + " " + o.Enhanced + " " + o.Text
	}
	return strconv.Itoa(o.Code) + " " + o.Text
}

// ParseReply recovers an Outcome from a reply as Reply renders it, for
// records written before recipients kept their outcome as data (and for
// an upstream's final reply, which go-smtp hands over as text). It keeps
// the rule those records were read by: a reply starting with three digits
// of which the first is 5 was permanent; one starting with "expired" was
// an expiry.
func ParseReply(s string) Outcome {
	if strings.HasPrefix(s, "expired") {
		return Outcome{Expired: true, Text: s}
	}
	if len(s) < 3 || !digit(s[0]) || !digit(s[1]) || !digit(s[2]) {
		return Outcome{Text: s}
	}
	o := Outcome{Permanent: s[0] == '5'}
	if len(s) == 3 || s[3] != ' ' || s[0] == '0' {
		// Not a code followed by text: keep it all as text, as it was.
		o.Text = s
		return o
	}
	o.Code = int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
	rest := s[4:]
	if enh, text, ok := strings.Cut(rest, " "); ok && enhanced(enh) {
		o.Enhanced, rest = enh, text
	}
	o.Text = rest
	return o
}

func digit(b byte) bool { return b >= '0' && b <= '9' }

// enhanced reports whether s has the form of an RFC 3463 status code:
// class "." subject "." detail, each one to three digits.
func enhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !digit(p[i]) {
				return false
			}
		}
	}
	return true
}

// fillReplies writes each recipient's outcome, rendered, into
// StoredReply before the record is stored.
func (m *Message) fillReplies() {
	for i := range m.Recipients {
		r := &m.Recipients[i]
		r.StoredReply = r.Outcome.Reply()
	}
}

// deriveOutcomes gives each recipient of a record written before outcomes
// (a reply, no outcome) the outcome its reply stands for, once, as the
// record is read: every reader then sees typed data.
func (m *Message) deriveOutcomes() {
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Outcome == (Outcome{}) && r.StoredReply != "" {
			r.Outcome = ParseReply(r.StoredReply)
		}
	}
}
