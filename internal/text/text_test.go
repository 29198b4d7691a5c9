package text

import (
	"testing"
	"unicode/utf8"
)

func TestOneLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"250 ok", "250 ok"},
		{"550 5.1.1 no such\r\nuser", "550 5.1.1 no such user"},
		{"  lead and trail \t", "lead and trail"},
		{"a\x00b\x1bc\x7fd", "a b c d"},
		{"c1\u0085\u009bx", "c1 x"},   // NEL and CSI are C1 controls
		{"line\u2028sep", "line sep"}, // a Unicode line separator is white space
		{"tabs\t\tand  spaces", "tabs and spaces"},
		{"Grüße, 你好", "Grüße, 你好"},
		{"bad \xff byte", "bad \ufffd byte"}, // invalid UTF-8 shows as U+FFFD
	}
	for _, c := range cases {
		if got := OneLine(c.in); got != c.want {
			t.Errorf("OneLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Subject: scan", "Subject: scan"},
		{"\tfolded continuation", "\tfolded continuation"},
		{"two  spaces stay", "two  spaces stay"},
		{"bell\a esc\x1b[2J del\x7f", "bell? esc?[2J del?"},
		{"nl\nand cr\r", "nl?and cr?"},
		{"c1\u009b", "c1?"},
		{"Grüße", "Grüße"},
	}
	for _, c := range cases {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEscape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"admin", "admin"},
		{"admin\r\nevil=1\x00x", `admin\x0d\x0aevil=1\x00x`},
		{"tab\there", `tab\x09here`},
		{"ü", `\xc3\xbc`}, // bytes, not runes: the exact input stays visible
		{"del\x7f~", `del\x7f~`},
	}
	for _, c := range cases {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClip(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven runes", 11, "eleven r..."},
		{"0123456789", 5, "01..."},
		// A byte count would cut "ü" (two bytes) in half.
		{"aüüüüüüü", 5, "aü..."},
		{"üüüüü", 5, "üüüüü"},
		{"你好世界和平", 4, "你..."},
		{"abcdef", 3, "abc"}, // no room for the mark
		{"abcdef", 0, ""},
	}
	for _, c := range cases {
		got := Clip(c.in, c.n)
		if got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(c.n, 0) {
			t.Errorf("Clip(%q, %d) = %q: not valid UTF-8 or over %d runes", c.in, c.n, got, c.n)
		}
	}
}
