package policy

import (
	"errors"
	"strings"
	"testing"
)

// campusDomains is the configuration the abuse checklist is written against.
func campusDomains() []string { return []string{"campus.test", "*.dept.campus.test"} }

func campusRules(t testing.TB) *Rules {
	t.Helper()
	r, err := NewRules(campusDomains())
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

type relayCase struct {
	name string
	in   string
	code int    // 0: accepted
	want string // the normalised address when accepted
}

// relayCases is the abuse checklist as a table. Every input also seeds the
// fuzz corpus (see address_fuzz_test.go).
func relayCases() []relayCase {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	// 63-octet labels under dept.campus.test, to build long domains.
	l63 := long("a", 63)
	// local(64) "@" domain(189) = 254 octets exactly.
	domain189 := long("b", 63) + "." + long("c", 63) + "." + long("d", 44) + ".dept.campus.test"
	if len(domain189) != 189 {
		panic("test table: domain189 has the wrong length")
	}
	return []relayCase{
		// Refused by the domain rule.
		{"outside domain", "user@outside.test", 550, ""},
		{"campus as subdomain of outsider", "user@campus.test.outside.test", 550, ""},
		{"suffix without dot boundary", "user@evilcampus.test", 550, ""},
		{"wildcard base not listed", "user@dept.campus.test", 550, ""},
		{"cyrillic look-alike", "user@c\u0430mpus.test", 550, ""},
		{"uppercase outsider", "USER@OUTSIDE.TEST", 550, ""},
		{"valid A-label outsider", "user@xn--bcher-kva.test", 550, ""},

		// Routing tricks in the local part.
		{"percent hack", "user%outside.test@campus.test", 553, ""},
		{"bang path", "outside.test!user@campus.test", 553, ""},
		{"two at signs", "user@outside.test@campus.test", 553, ""},
		{"trailing at", "user@campus.test@", 553, ""},
		{"quoted local part", `"user@outside.test"@campus.test`, 553, ""},
		{"quoted plain local part", `"user"@campus.test`, 553, ""},
		{"source route", "@campus.test:user@outside.test", 553, ""},
		{"bracketed source route", "<@campus.test:user@outside.test>", 553, ""},
		{"multi-hop source route", "<@a.campus.test,@b.campus.test:user@outside.test>", 553, ""},
		{"option injection", "-oQ/tmp@campus.test", 553, ""},
		{"non-ASCII local part", "\u00fcser@campus.test", 553, ""},

		// Domains that are not host names.
		{"IPv4 literal", "user@[192.0.2.10]", 553, ""},
		{"IPv6 literal", "user@[IPv6:2001:db8::1]", 553, ""},
		{"bare IPv4", "user@192.0.2.10", 553, ""},
		{"all-digit TLD", "user@campus.123", 553, ""},
		{"full-width look-alike", "user@\uff43\uff41\uff4d\uff50\uff55\uff53.test", 553, ""},
		{"long s look-alike", "user@campu\u017f.test", 553, ""},
		{"A-label decoding to ASCII", "user@xn--campus-.test", 553, ""},
		{"invalid A-label", "user@xn--zz.campus.test", 553, ""},
		{"no-break space in domain", "user@campus.test\u00a0", 553, ""},
		{"ideographic full stop", "user@campus\u3002test", 553, ""},
		{"NEL in domain", "user@campus.test\u0085", 553, ""},
		{"zero-width joiner", "user@cam\u200dpus.test", 553, ""},
		{"upper-case non-ASCII", "user@x.B\u00dcCHER.test", 553, ""},

		// Plain syntax errors.
		{"empty", "", 501, ""},
		{"empty brackets", "<>", 501, ""},
		{"unterminated bracket", "<user@campus.test", 501, ""},
		{"unbalanced closing bracket", "user@campus.test>", 501, ""},
		{"double brackets", "<<user@campus.test>>", 501, ""},
		{"lone bracket", "<", 501, ""},
		{"no domain", "user", 501, ""},
		{"postmaster without domain", "postmaster", 501, ""},
		{"empty domain", "user@", 501, ""},
		{"empty local part", "@campus.test", 501, ""},
		{"two trailing dots", "user@campus.test..", 501, ""},
		{"only a dot", "user@.", 501, ""},
		{"empty label", "user@campus..test", 501, ""},
		{"leading dot in domain", "user@.campus.test", 501, ""},
		{"CRLF smuggling", "user@campus.test\r\nRCPT TO:<x@outside.test>", 501, ""},
		{"CR", "user@campus.test\r", 501, ""},
		{"LF in local part", "us\ner@campus.test", 501, ""},
		{"NUL in domain", "user@campus.test\x00.outside.test", 501, ""},
		{"NUL at end", "user@campus.test\x00", 501, ""},
		{"tab", "user@campus.test\t", 501, ""},
		{"DEL", "\x7fuser@campus.test", 501, ""},
		{"escape", "user\x1b@campus.test", 501, ""},
		{"space in local part", "us er@campus.test", 501, ""},
		{"space in domain", "user@campus .test", 501, ""},
		{"space in brackets", "< user@campus.test>", 501, ""},
		{"invalid UTF-8", "user@campus.test\xff", 501, ""},
		{"leading dot in local part", ".user@campus.test", 501, ""},
		{"trailing dot in local part", "user.@campus.test", 501, ""},
		{"double dot in local part", "us..er@campus.test", 501, ""},
		{"backslash", `us\er@campus.test`, 501, ""},
		{"parentheses", "us(er)@campus.test", 501, ""},
		{"comma", "us,er@campus.test", 501, ""},
		{"semicolon", "us;er@campus.test", 501, ""},
		{"colon in local part", "us:er@campus.test", 501, ""},
		{"angle bracket in local part", "us<er@campus.test", 501, ""},
		{"square bracket in local part", "us[er]@campus.test", 501, ""},
		{"local part 65 octets", long("a", 65) + "@campus.test", 501, ""},
		{"label 64 octets", "user@" + long("a", 64) + ".dept.campus.test", 501, ""},
		{"domain over 255 octets", "u@" + l63 + "." + l63 + "." + l63 + "." + l63 + ".dept.campus.test", 501, ""},
		{"address 255 octets", long("a", 63) + "@x." + domain189, 501, ""},
		{"label starts with hyphen", "user@-a.dept.campus.test", 501, ""},
		{"label ends with hyphen", "user@a-.dept.campus.test", 501, ""},
		{"underscore in domain", "user@a_b.dept.campus.test", 501, ""},
		{"slash in domain", "user@a/b.dept.campus.test", 501, ""},
		{"percent in domain", "user@outside.test%campus.test", 501, ""},

		// Accepted.
		{"case", "User@CAMPUS.TEST", 0, "User@campus.test"},
		{"one trailing dot", "user@campus.test.", 0, "user@campus.test"},
		{"brackets", "<user@campus.test>", 0, "user@campus.test"},
		{"brackets and trailing dot", "<user@campus.test.>", 0, "user@campus.test"},
		{"wildcard one level", "user@a.dept.campus.test", 0, "user@a.dept.campus.test"},
		{"wildcard two levels", "user@x.y.dept.campus.test", 0, "user@x.y.dept.campus.test"},
		{"wildcard mixed case", "user@A.Dept.CAMPUS.test", 0, "user@a.dept.campus.test"},
		{"dots and plus", "first.last+tag@campus.test", 0, "first.last+tag@campus.test"},
		{"apostrophe", "o'brien@campus.test", 0, "o'brien@campus.test"},
		{"all atext specials", "#$&'*+-/=?^_`{|}~@campus.test", 0, "#$&'*+-/=?^_`{|}~@campus.test"},
		{"inner hyphen in local part", "scan-to-mail@campus.test", 0, "scan-to-mail@campus.test"},
		{"digits", "123@9lab.dept.campus.test", 0, "123@9lab.dept.campus.test"},
		{"double hyphen label", "user@ab--cd.dept.campus.test", 0, "user@ab--cd.dept.campus.test"},
		{"local part 64 octets", long("a", 64) + "@campus.test", 0, long("a", 64) + "@campus.test"},
		{"label 63 octets", "user@" + l63 + ".dept.campus.test", 0, "user@" + l63 + ".dept.campus.test"},
		{"address 254 octets", long("a", 64) + "@" + domain189, 0, long("a", 64) + "@" + domain189},
	}
}

func TestRecipientChecklist(t *testing.T) {
	r := campusRules(t)
	for _, tc := range relayCases() {
		t.Run(tc.name, func(t *testing.T) {
			a, err := r.Recipient(tc.in)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("Recipient(%q) = %v, want accepted", tc.in, err)
				}
				if got := a.String(); got != tc.want {
					t.Fatalf("Recipient(%q) = %q, want %q", tc.in, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Recipient(%q) accepted as %q, want %d", tc.in, a, tc.code)
			}
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("Recipient(%q) error %T %v, want *RejectError", tc.in, err, err)
			}
			if re.Code != tc.code {
				t.Fatalf("Recipient(%q) = %v, want code %d", tc.in, err, tc.code)
			}
			if a != (Address{}) {
				t.Errorf("Recipient(%q) returned %q with an error", tc.in, a)
			}
			wantEnh := [3]int{5, 1, 3}
			if tc.code == 550 {
				wantEnh = [3]int{5, 7, 1}
			}
			if re.Enhanced != wantEnh {
				t.Errorf("Recipient(%q) enhanced code %v, want %v", tc.in, re.Enhanced, wantEnh)
			}
			assertSafeReply(t, re.Reason)
		})
	}
}

// assertSafeReply checks that a reason can go into an SMTP reply line as is.
func assertSafeReply(t *testing.T, reason string) {
	t.Helper()
	if reason == "" {
		t.Errorf("empty reason")
	}
	for i := 0; i < len(reason); i++ {
		if c := reason[i]; c < 0x20 || c > 0x7e {
			t.Errorf("reason %q has byte %#x", reason, c)
		}
	}
}

func TestRecipientDeniedReason(t *testing.T) {
	r := campusRules(t)
	_, err := r.Recipient("Someone@Outside.TEST.")
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *RejectError", err)
	}
	want := RejectError{Code: 550, Enhanced: [3]int{5, 7, 1}, Reason: "relaying denied: outside.test is not a campus domain"}
	if *re != want {
		t.Fatalf("got %+v, want %+v", *re, want)
	}
	if got := err.Error(); got != "policy: 550 5.7.1 relaying denied: outside.test is not a campus domain" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestNewRulesNormalises(t *testing.T) {
	r, err := NewRules([]string{"Campus.TEST.", "*.Dept.Campus.Test", "campus.test", "*.b\u00fccher.test", "*.DEPT.campus.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.exact["campus.test"]; len(r.exact) != 1 || !ok {
		t.Errorf("exact domains %v, want only campus.test", r.exact)
	}
	if got, want := strings.Join(r.wildcards, ","), ".dept.campus.test,.xn--bcher-kva.test"; got != want {
		t.Errorf("wildcards %q, want %q", got, want)
	}

	for in, want := range map[string]string{
		"user@shop.b\u00fccher.test":   "user@shop.xn--bcher-kva.test",
		"user@shop.xn--bcher-kva.test": "user@shop.xn--bcher-kva.test",
		"user@a.b.xn--BCHER-KVA.test":  "user@a.b.xn--bcher-kva.test",
		"user@x.dept.campus.test.":     "user@x.dept.campus.test",
		"user@CAMPUS.test":             "user@campus.test",
	} {
		a, err := r.Recipient(in)
		if err != nil || a.String() != want {
			t.Errorf("Recipient(%q) = %q, %v; want %q", in, a, err, want)
		}
	}
	for _, in := range []string{"user@b\u00fccher.test", "user@xn--bcher-kva.test", "user@dept.campus.test"} {
		if _, err := r.Recipient(in); err == nil {
			t.Errorf("Recipient(%q) accepted the bare base of a wildcard", in)
		}
	}
}

func TestNewRulesRejectsBadEntries(t *testing.T) {
	for _, bad := range []string{
		"", "*", "*.", "**.campus.test", "*.*.x", "*campus.test", "campus.*",
		"exa mple.edu", " campus.test", "campus.test\n", "campus..test", "campus.test..",
		"-campus.test", "campus-.test", "cam_pus.test", "user@campus.test",
		"[192.0.2.1]", "192.0.2.1", "*.192.0.2.1", "2001:db8::1", "[IPv6:2001:db8::1]",
		"*.edu", "*.test.", "\uff43ampus.test", "xn--campus-.test",
		strings.Repeat("a", 64) + ".test",
		strings.Repeat("a.", 127) + "ab", // 256 octets
	} {
		r, err := NewRules([]string{"good.test", bad})
		if err == nil {
			t.Errorf("NewRules(%q) = %v %q, want an error", bad, r.exact, r.wildcards)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "policy: ") || !strings.Contains(msg, `"`+strings.ReplaceAll(bad, "\n", `\n`)+`"`) {
			t.Errorf("NewRules(%q) error %q does not name the entry", bad, msg)
		}
	}
}

func TestNewRulesLongestDomain(t *testing.T) {
	d := strings.Repeat("a.", 126) + "abc" // 255 octets, RFC 5321 4.5.3.1.2
	r, err := NewRules([]string{d})
	if err != nil || !r.allowsDomain(d) {
		t.Fatalf("NewRules(255-octet domain) = %v", err)
	}
}

func TestEmptyRulesRefuseEverything(t *testing.T) {
	r, err := NewRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Recipient("user@campus.test")
	var re *RejectError
	if !errors.As(err, &re) || re.Code != 550 {
		t.Fatalf("Recipient with no domains = %v, want 550", err)
	}
}

// A wildcard must match on a label boundary only, whatever the other entries.
func TestWildcardBoundary(t *testing.T) {
	r, err := NewRules([]string{"*.campus.test"})
	if err != nil {
		t.Fatal(err)
	}
	for in, ok := range map[string]bool{
		"u@a.campus.test":         true,
		"u@a.b.c.campus.test":     true,
		"u@campus.test":           false,
		"u@xcampus.test":          false,
		"u@a-campus.test":         false,
		"u@campus.test.evil.test": false,
		"u@campus.testx":          false,
	} {
		_, err := r.Recipient(in)
		if (err == nil) != ok {
			t.Errorf("Recipient(%q) error = %v, want accepted=%v", in, err, ok)
		}
	}
}

// With SMTPUTF8, a UTF-8 local part is accepted; the domain is still
// checked (and returned) in its A-label form, and what a later hop could
// fold into a routing character is refused.
func TestRecipientSMTPUTF8(t *testing.T) {
	r, err := NewRules([]string{"campus.example", "bücher.example"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		code     int
	}{
		{"ü@campus.example", "ü@campus.example", 0},
		{"<jürg.müller@Campus.Example>", "jürg.müller@campus.example", 0},
		{"ü@bücher.example", "ü@xn--bcher-kva.example", 0},
		{"ü@xn--bcher-kva.example", "ü@xn--bcher-kva.example", 0},
		{"ü@evil.example", "", 550},
		{"ü@cämpus.example", "", 550},                        // a look-alike is another domain
		{"victim\uff05evil.example@campus.example", "", 553}, // full-width % folds to %
		{"victim\uff20evil.example@campus.example", "", 553}, // full-width @
		{"a\u202eb@campus.example", "", 501},                 // bidi override
		{"a\u200bb@campus.example", "", 501},                 // zero-width space
		{"a\u00a0b@campus.example", "", 501},                 // no-break space
		{"a\u0085b@campus.example", "", 501},                 // C1 control
	} {
		a, err := r.RecipientSMTPUTF8(tc.in)
		var re *RejectError
		switch {
		case tc.code == 0 && (err != nil || a.String() != tc.want):
			t.Errorf("RecipientSMTPUTF8(%q) = %q, %v; want %q", tc.in, a, err, tc.want)
		case tc.code != 0 && (!errors.As(err, &re) || re.Code != tc.code):
			t.Errorf("RecipientSMTPUTF8(%q) = %q, %v; want code %d", tc.in, a, err, tc.code)
		}
	}
	// Without SMTPUTF8 the same UTF-8 local part is refused, saying why.
	_, err = r.Recipient("ü@campus.example")
	var re *RejectError
	if !errors.As(err, &re) || re.Code != 553 || !strings.Contains(re.Reason, "SMTPUTF8") {
		t.Errorf("Recipient(ü@campus.example) = %v; want 553 naming SMTPUTF8", err)
	}
	if a, err := ParseSenderSMTPUTF8("jürg@lab.campus.example"); err != nil || a.Local != "jürg" {
		t.Errorf("ParseSenderSMTPUTF8 = %q, %v", a, err)
	}
}
