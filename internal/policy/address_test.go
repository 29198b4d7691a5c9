package policy

import (
	"errors"
	"testing"
)

// ParseAddress applies every syntax rule of the checklist but no domain rule:
// whatever Recipient refuses with 501 or 553, ParseAddress refuses the same
// way, and whatever it refuses with 550 parses.
func TestParseAddressMatchesChecklist(t *testing.T) {
	for _, tc := range relayCases() {
		a, err := ParseAddress(tc.in)
		switch tc.code {
		case 0, 550:
			if err != nil {
				t.Errorf("%s: ParseAddress(%q) = %v, want no error", tc.name, tc.in, err)
				continue
			}
			if tc.code == 0 && a.String() != tc.want {
				t.Errorf("%s: ParseAddress(%q) = %q, want %q", tc.name, tc.in, a, tc.want)
			}
			// Normalisation is idempotent.
			if b, err := ParseAddress(a.String()); err != nil || b != a {
				t.Errorf("%s: re-parsing %q gave %q, %v", tc.name, a, b, err)
			}
		default:
			var re *RejectError
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Errorf("%s: ParseAddress(%q) = %q, %v; want code %d", tc.name, tc.in, a, err, tc.code)
			}
		}
	}
}

func TestParseAddressKeepsLocalPartCase(t *testing.T) {
	a, err := ParseAddress("<Scanner.Room-12@Lab.Example.EDU>")
	if err != nil {
		t.Fatal(err)
	}
	if a.Local != "Scanner.Room-12" || a.Domain != "lab.example.edu" {
		t.Fatalf("got %#v", a)
	}
}

func TestParseAddressIDNA(t *testing.T) {
	a, err := ParseAddress("Jos\u00e9@b\u00fccher.example")
	if err == nil {
		t.Fatalf("non-ASCII local part accepted as %q", a)
	}
	a, err = ParseAddress("jose@b\u00fccher.example")
	if err != nil {
		t.Fatal(err)
	}
	if a.Domain != "xn--bcher-kva.example" {
		t.Fatalf("domain %q, want the A-label form", a.Domain)
	}
}

func TestParseSender(t *testing.T) {
	for _, in := range []string{"", "<>"} {
		a, err := ParseSender(in)
		if err != nil || a != (Address{}) {
			t.Errorf("ParseSender(%q) = %#v, %v; want the null sender", in, a, err)
		}
		if a.String() != "" {
			t.Errorf("null sender String() = %q, want \"\"", a.String())
		}
	}
	// Senders need no campus domain, only a valid address.
	a, err := ParseSender("<Printer@Outside.Test.>")
	if err != nil || a.String() != "Printer@outside.test" {
		t.Errorf("ParseSender = %q, %v", a, err)
	}
	for in, code := range map[string]int{
		"printer":                       501, // no domain: the listener decides
		"<printer>":                     501,
		"< >":                           501,
		"<<>>":                          501,
		"<":                             501,
		"user%outside.test@campus.test": 553,
		"@relay.test:user@campus.test":  553,
		`"weird"@campus.test`:           553,
		"user@[192.0.2.1]":              553,
		"user@campus.test\r\n":          501,
	} {
		_, err := ParseSender(in)
		var re *RejectError
		if !errors.As(err, &re) || re.Code != code {
			t.Errorf("ParseSender(%q) = %v, want code %d", in, err, code)
		}
	}
}

func TestRejectErrorText(t *testing.T) {
	_, err := ParseAddress("user%outside.test@campus.test")
	want := "policy: 553 5.1.3 '%' in the local part is not accepted"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}
