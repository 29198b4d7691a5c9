package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Rules is the recipient policy: the campus relay accepts unauthenticated
// mail only for its own domains, so relaybox must never queue anything else.
// A Rules is immutable after NewRules and safe for concurrent use.
type Rules struct {
	exact     map[string]struct{} // "campus.test"
	wildcards []string            // ".dept.campus.test" for "*.dept.campus.test"
}

// NewRules builds the recipient policy. An entry is either a domain
// ("example.edu", only that domain) or "*." and a domain ("*.example.edu",
// any subdomain at any depth, but not example.edu itself). Entries are
// case-insensitive and may be internationalised; they are normalised like
// addresses. The error names the first bad entry. An empty list is valid and
// refuses every recipient.
func NewRules(recipientDomains []string) (*Rules, error) {
	r := &Rules{exact: make(map[string]struct{})}
	for _, e := range recipientDomains {
		wild := strings.HasPrefix(e, "*.")
		base := e
		if wild {
			base = e[len("*."):]
		}
		d, rerr := normaliseDomain(base)
		if rerr != nil {
			return nil, fmt.Errorf("policy: recipient domain %q: %s", e, rerr.Reason)
		}
		// A wildcard over a top-level domain ("*.edu") would relay for the
		// whole world's universities; that is never what a campus means.
		if wild && !strings.Contains(d, ".") {
			return nil, fmt.Errorf("policy: recipient domain %q: a wildcard needs at least two labels after \"*.\"", e)
		}
		if wild {
			if !slices.Contains(r.wildcards, "."+d) {
				r.wildcards = append(r.wildcards, "."+d)
			}
		} else {
			r.exact[d] = struct{}{}
		}
	}
	return r, nil
}

// Recipient parses s like ParseAddress and accepts it only if its domain is
// listed. Every error is a *RejectError: 501/553 5.1.3 for syntax and refused
// forms, 550 5.7.1 for a domain that is not a campus domain.
func (r *Rules) Recipient(s string) (Address, error) { return r.recipient(s, false) }

// RecipientSMTPUTF8 is Recipient for a transaction whose MAIL carried
// SMTPUTF8: the local part may hold UTF-8; the domain is checked in its
// ASCII (A-label) form all the same.
func (r *Rules) RecipientSMTPUTF8(s string) (Address, error) { return r.recipient(s, true) }

func (r *Rules) recipient(s string, smtputf8 bool) (Address, error) {
	a, rerr := parseAddress(s, smtputf8)
	if rerr != nil {
		return Address{}, rerr
	}
	if !r.allowsDomain(a.Domain) {
		return Address{}, &RejectError{
			Code:     550,
			Enhanced: [3]int{5, 7, 1},
			// The domain is safe to echo: normaliseDomain only returns
			// lower-case letters, digits, '-' and '.'.
			Reason: "relaying denied: " + a.Domain + " is not a campus domain",
		}
	}
	return a, nil
}

// allowsDomain expects a normalised domain. A wildcard base is stored with
// its leading dot, so "evilcampus.test" can never match "*.campus.test" and
// the base domain itself never matches its own wildcard.
func (r *Rules) allowsDomain(d string) bool {
	if _, ok := r.exact[d]; ok {
		return true
	}
	for _, w := range r.wildcards {
		if strings.HasSuffix(d, w) {
			return true
		}
	}
	return false
}
