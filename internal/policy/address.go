// Package policy decides which envelope addresses relaybox accepts. It parses
// and normalises SMTP paths and holds the relay rules (recipient domains and
// client networks). It is pure: no I/O, no clocks, no globals that change.
//
// The parser is deliberately narrower than RFC 5321. Devices on a LAN never
// need quoted local parts, source routes or IP literals, and each of those
// is a classic way to trick a relay into forwarding mail elsewhere, so they
// are refused rather than interpreted. (On the SMTP listener go-smtp strips
// a source route before this package sees the path, so there the route is
// ignored and the address after it is judged; callers that pass a raw path
// get the refusal.) A UTF-8 local part is accepted only in a transaction
// whose MAIL carried SMTPUTF8 (RFC 6531), and only if its compatibility
// form (NFKC) passes the ASCII rules too; domains are always checked and
// returned in their ASCII (A-label) form.
package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Length limits from RFC 5321 4.5.3.1.
const (
	maxLocalLen   = 64  // 4.5.3.1.1
	maxDomainLen  = 255 // 4.5.3.1.2
	maxLabelLen   = 63  // RFC 1035 2.3.4
	maxAddressLen = 254 // 4.5.3.1.3: a path is 256 octets including "<" and ">"
	// maxInputLen bounds the work done on hostile input before any other
	// check; a Unicode domain may be longer in UTF-8 than in its ASCII form.
	maxInputLen = 1024
)

// Address is a parsed, normalised mailbox. Domain is lower-case ASCII (IDNA
// to-ASCII applied) without a trailing dot; Local is kept exactly as given,
// because RFC 5321 2.4 lets the receiving system treat it as case-sensitive.
type Address struct {
	Local, Domain string
}

// String returns local@domain, or "" for the zero Address (the null sender).
func (a Address) String() string {
	if a.Local == "" && a.Domain == "" {
		return ""
	}
	return a.Local + "@" + a.Domain
}

// RejectError is a refusal that the SMTP listener can send as it is: Code and
// Enhanced are the reply codes, Reason is safe to show to the client (it never
// echoes raw client bytes).
type RejectError struct {
	Code     int
	Enhanced [3]int
	Reason   string
}

// Error implements error.
func (e *RejectError) Error() string {
	return fmt.Sprintf("policy: %d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Reason)
}

// badSyntax is for input that is not an address at all (RFC 5321 4.2.3: 501).
func badSyntax(reason string) *RejectError {
	return &RejectError{Code: 501, Enhanced: [3]int{5, 1, 3}, Reason: reason}
}

// notAllowed is for forms that are valid SMTP but that relaybox refuses on
// purpose, because old MTAs route on them (553: mailbox name not allowed).
func notAllowed(reason string) *RejectError {
	return &RejectError{Code: 553, Enhanced: [3]int{5, 1, 3}, Reason: reason}
}

// ParseAddress parses a mailbox as go-smtp hands it over (angle brackets
// already stripped; a single surrounding pair is accepted too) and normalises
// it. Every error is a *RejectError.
func ParseAddress(s string) (Address, error) {
	a, rerr := parseAddress(s, false)
	if rerr != nil {
		return Address{}, rerr
	}
	return a, nil
}

// ParseAddressSMTPUTF8 is ParseAddress for a transaction whose MAIL carried
// SMTPUTF8: the local part may hold UTF-8 (RFC 6531 3.3).
func ParseAddressSMTPUTF8(s string) (Address, error) {
	a, rerr := parseAddress(s, true)
	if rerr != nil {
		return Address{}, rerr
	}
	return a, nil
}

// ParseSender is ParseAddress for the MAIL FROM path: the null reverse-path
// ("" or "<>", RFC 5321 4.5.5) is allowed and returns the zero Address. A
// sender without a domain is an error like any other; the listener decides
// whether to tolerate it.
func ParseSender(s string) (Address, error) {
	if s == "" || s == "<>" {
		return Address{}, nil
	}
	return ParseAddress(s)
}

// ParseSenderSMTPUTF8 is ParseSender for a MAIL that carried SMTPUTF8.
func ParseSenderSMTPUTF8(s string) (Address, error) {
	if s == "" || s == "<>" {
		return Address{}, nil
	}
	return ParseAddressSMTPUTF8(s)
}

// parseAddress returns a concrete type so that callers inside the package
// cannot end up with a typed nil inside an error interface.
func parseAddress(s string, smtputf8 bool) (Address, *RejectError) {
	if len(s) > maxInputLen {
		return Address{}, badSyntax("address too long")
	}
	// Control characters and spaces are checked on the raw input, before
	// anything is split, so that no later step can be confused by them.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return Address{}, badSyntax("control character or space in address")
		}
	}
	if !utf8.ValidString(s) {
		return Address{}, badSyntax("address is not valid UTF-8")
	}
	if strings.HasPrefix(s, "<") {
		if len(s) < 2 || !strings.HasSuffix(s, ">") {
			return Address{}, badSyntax("unterminated '<'")
		}
		s = s[1 : len(s)-1]
	} else if strings.HasSuffix(s, ">") {
		return Address{}, badSyntax("unbalanced '>'")
	}
	if s == "" {
		return Address{}, badSyntax("empty address")
	}
	// RFC 5321 4.1.2 still parses "@relay:user@host" (a source route), and
	// some MTAs honour it; relaybox never does.
	if s[0] == '@' && strings.ContainsRune(s, ':') {
		return Address{}, notAllowed("source routes are not accepted")
	}
	if strings.ContainsRune(s, '"') {
		return Address{}, notAllowed("quoted local parts are not accepted")
	}
	switch n := strings.Count(s, "@"); {
	case n == 0:
		return Address{}, badSyntax("address has no domain")
	case n > 1:
		return Address{}, notAllowed("more than one '@' in the address")
	}
	at := strings.IndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if rerr := checkLocal(local, smtputf8); rerr != nil {
		return Address{}, rerr
	}
	d, rerr := normaliseDomain(domain)
	if rerr != nil {
		return Address{}, rerr
	}
	if len(local)+1+len(d) > maxAddressLen {
		return Address{}, badSyntax("address longer than 254 octets")
	}
	return Address{Local: local, Domain: d}, nil
}

// checkLocal accepts an RFC 5321 dot-string made of ASCII atext, minus the
// characters that old MTAs treat as routing ('%' and '!'), and refuses a
// leading '-' so the address can never be read as a command-line option by a
// sendmail-style program further down the line.
//
// With smtputf8 set, UTF-8 is allowed as well (RFC 6531 3.3), except
// controls, format characters (bidi overrides, zero-width joiners) and
// spaces; and the NFKC form must pass the ASCII rules, so that "％" or
// "＠" (full-width) cannot become a routing character at a later hop that
// normalises.
func checkLocal(local string, smtputf8 bool) *RejectError {
	switch {
	case local == "":
		return badSyntax("empty local part")
	case len(local) > maxLocalLen:
		return badSyntax("local part longer than 64 octets")
	case strings.ContainsRune(local, '%'):
		return notAllowed("'%' in the local part is not accepted")
	case strings.ContainsRune(local, '!'):
		return notAllowed("'!' in the local part is not accepted")
	case local[0] == '-':
		return notAllowed("a local part starting with '-' is not accepted")
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return badSyntax("misplaced '.' in the local part")
	}
	ascii := true
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= utf8.RuneSelf {
			ascii = false
			continue
		}
		if c != '.' && !isAtext(c) {
			return badSyntax("invalid character in the local part")
		}
	}
	if ascii {
		return nil
	}
	if !smtputf8 {
		return notAllowed("a non-ASCII local part needs SMTPUTF8 on MAIL FROM (RFC 6531)")
	}
	for _, r := range local {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) || r == utf8.RuneError {
			return badSyntax("control, format or space character in the local part")
		}
	}
	if folded := norm.NFKC.String(local); folded != local {
		if rerr := checkLocal(folded, true); rerr != nil {
			return notAllowed("the local part folds to a form that is not accepted (" + rerr.Reason + ")")
		}
	}
	return nil
}

// isAtext reports whether c is RFC 5322 3.2.3 atext.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// normaliseDomain returns the lower-case ASCII form of a domain, or a
// refusal. The result is always a valid host name: labels of letters, digits
// and inner hyphens, with a last label that is not all digits.
func normaliseDomain(d string) (string, *RejectError) {
	if d == "" {
		return "", badSyntax("empty domain")
	}
	if d[0] == '[' {
		return "", notAllowed("IP literals are not accepted")
	}
	// "host.example." is the absolute form of "host.example"; devices copy it
	// from DNS settings. Exactly one dot goes, so "x.." still fails below.
	d = strings.TrimSuffix(d, ".")
	d = asciiLower(d)
	if needsIDNA(d) {
		// Registration is the strict profile: it refuses anything that would
		// need mapping (upper case, full-width or compatibility forms such as
		// the Kelvin sign), so a look-alike can never fold into a real name.
		a, err := idna.Registration.ToASCII(d)
		if err != nil {
			return "", notAllowed("domain is not a valid internationalised name")
		}
		d = a
	}
	if rerr := checkHostname(d); rerr != nil {
		return "", rerr
	}
	return d, nil
}

// needsIDNA reports whether d has non-ASCII text or A-labels to validate. Plain
// LDH names skip IDNA because its hyphen rule would refuse names like
// "ab--cd.example" that DNS allows.
func needsIDNA(d string) bool {
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			return true
		}
	}
	return strings.HasPrefix(d, "xn--") || strings.Contains(d, ".xn--")
}

// checkHostname checks an ASCII, lower-case domain against RFC 1035 2.3.1
// (letters, digits, hyphens; no hyphen at either end of a label).
func checkHostname(d string) *RejectError {
	if len(d) > maxDomainLen {
		return badSyntax("domain longer than 255 octets")
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if l == "" {
			return badSyntax("empty label in domain")
		}
		if len(l) > maxLabelLen {
			return badSyntax("domain label longer than 63 octets")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return badSyntax("domain label starts or ends with '-'")
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return badSyntax("invalid character in domain")
			}
		}
	}
	// An all-digit last label is how "user@192.0.2.10" (an IP address without
	// brackets) looks; no top-level domain is all digits (RFC 3696 2).
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return notAllowed("domain looks like an IP address")
	}
	return nil
}

// asciiLower folds only A-Z: Unicode case folding would turn look-alikes
// such as the Kelvin sign (U+212A) into plain ASCII letters.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
