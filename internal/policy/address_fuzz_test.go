package policy

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// seedInputs is every input of the checklist table; the same strings are in
// testdata/fuzz/FuzzParseAddress so that plain `go test` replays them too.
func seedInputs() []string {
	var in []string
	for _, tc := range relayCases() {
		in = append(in, tc.in)
	}
	return in
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range seedInputs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if a != (Address{}) {
				t.Fatalf("ParseAddress(%q) returned %#v with error %v", s, a, err)
			}
			return
		}
		checkParsed(t, s, a)
	})
}

// checkParsed holds the invariants of every address the parser accepts.
func checkParsed(t *testing.T, in string, a Address) {
	t.Helper()
	out := a.String()
	if strings.Count(out, "@") != 1 {
		t.Fatalf("ParseAddress(%q) = %q: want exactly one '@'", in, out)
	}
	for i := 0; i < len(out); i++ {
		if c := out[i]; c < 0x21 || c > 0x7e || strings.IndexByte(`%!"[:`, c) >= 0 {
			t.Fatalf("ParseAddress(%q) = %q: forbidden byte %#x", in, out, c)
		}
	}
	if a.Local == "" || a.Domain == "" || len(out) > maxAddressLen {
		t.Fatalf("ParseAddress(%q) = %#v: empty part or too long", in, a)
	}
	if a.Domain != strings.ToLower(a.Domain) {
		t.Fatalf("ParseAddress(%q) = %q: domain not lower case", in, out)
	}
	b, err := ParseAddress(out)
	if err != nil || b != a {
		t.Fatalf("ParseAddress(%q) = %q, which re-parses to %#v, %v", in, out, b, err)
	}
}

// FuzzRecipient checks the one property that keeps relaybox from being an
// open relay: an accepted recipient's domain is listed, or lies strictly
// below a wildcard's base on a label boundary.
func FuzzRecipient(f *testing.F) {
	for _, s := range seedInputs() {
		f.Add(s)
	}
	r := campusRules(f)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := r.Recipient(s)
		if err != nil {
			return
		}
		checkParsed(t, s, a)
		if !campusDomain(a.Domain) {
			t.Fatalf("Recipient(%q) accepted %q outside %q", s, a, campusDomains())
		}
	})
}

// campusDomain is the open-relay line written independently of the rules
// under test: domain is listed, or lies strictly below a wildcard's base
// on a label boundary.
func campusDomain(domain string) bool {
	for _, d := range campusDomains() {
		if base, wild := strings.CutPrefix(d, "*."); wild {
			if strings.HasSuffix(domain, "."+base) {
				return true
			}
		} else if domain == d {
			return true
		}
	}
	return false
}

// FuzzRecipientSMTPUTF8 holds the same line for SMTPUTF8 transactions: the
// domain is ASCII and listed, and the local part, UTF-8 or not, holds no
// routing or control character, not even once folded with NFKC.
func FuzzRecipientSMTPUTF8(f *testing.F) {
	for _, s := range append(seedInputs(), "ü@campus.test", "jürg.müller@x.dept.campus.test",
		"a\uff05b@campus.test", "a\u202eb@campus.test", "ü@bücher.campus.test") {
		f.Add(s)
	}
	r := campusRules(f)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := r.RecipientSMTPUTF8(s)
		if err != nil {
			return
		}
		out := a.String()
		for i := 0; i < len(a.Domain); i++ {
			if c := a.Domain[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
				t.Fatalf("RecipientSMTPUTF8(%q) = %q: domain not lower-case ASCII", s, out)
			}
		}
		if !campusDomain(a.Domain) {
			t.Fatalf("RecipientSMTPUTF8(%q) accepted %q outside %q", s, out, campusDomains())
		}
		for _, local := range []string{a.Local, norm.NFKC.String(a.Local)} {
			for _, c := range local {
				if c < 0x21 || c == 0x7f || strings.ContainsRune(`%!"@[]:\`, c) || unicode.IsControl(c) ||
					unicode.Is(unicode.Cf, c) || unicode.IsSpace(c) {
					t.Fatalf("RecipientSMTPUTF8(%q) = %q: forbidden %U in the local part %q", s, out, c, local)
				}
			}
		}
		if b, err := r.RecipientSMTPUTF8(out); err != nil || b != a {
			t.Fatalf("RecipientSMTPUTF8(%q) = %q, which re-parses to %#v, %v", s, out, b, err)
		}
	})
}

// corpusFile is the name and content of a seed file in Go's corpus format.
func corpusFile(s string) (name, content string) {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("seed-%x", sum[:8]), "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
}

// TestFuzzCorpusHasTableInputs keeps the checked-in corpus in step with the
// table: a new checklist case must also become a seed file.
func TestFuzzCorpusHasTableInputs(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseAddress")
	for _, s := range seedInputs() {
		name, want := corpusFile(s)
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("seed for %q missing or different: write %s containing:\n%s", s, filepath.Join(dir, name), want)
		}
	}
}
