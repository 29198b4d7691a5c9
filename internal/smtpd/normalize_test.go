package smtpd

import (
	"bytes"
	"strings"
	"testing"
)

func normalize(t *testing.T, in string, split int) string {
	t.Helper()
	var out bytes.Buffer
	w := newCRLFWriter(&out)
	// Feed in pieces of the given size: CR and LF of one pair may arrive in
	// different writes, as they do across TCP reads.
	b := []byte(in)
	for len(b) > 0 {
		n := min(split, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestCRLFWriter(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"crlf untouched", "a\r\nb\r\n", "a\r\nb\r\n"},
		{"bare lf", "a\nb\n", "a\r\nb\r\n"},
		{"bare cr", "a\rb\r", "a\r\nb\r\n"},
		{"cr cr lf", "a\r\r\n", "a\r\n"},
		{"busybox lines", "Subject: s\r\r\nTo: t\r\r\n\r\r\nbody\r\r\n", "Subject: s\r\nTo: t\r\n\r\nbody\r\n"},
		{"long cr run before lf", "a\r\r\r\r\nb", "a\r\nb"},
		{"cr run then text", "a\r\rb", "a\r\n\r\nb"},
		{"cr run at end", "a\r\r", "a\r\n\r\n"},
		{"cr run then lf then lf", "a\r\r\n\n", "a\r\n\r\n"},
		{"lf cr", "a\n\rb", "a\r\n\r\nb"},
		{"mixed", "x\r\ny\nz\rw", "x\r\ny\r\nz\r\nw"},
		{"no newline", "abc", "abc"},
		{"smuggle lf dot lf", "a\n.\nMAIL FROM:<x>\n", "a\r\n.\r\nMAIL FROM:<x>\r\n"},
		{"smuggle cr dot cr", "a\r.\rb", "a\r\n.\r\nb"},
		{"nul kept", "a\x00b\r\n", "a\x00b\r\n"},
	}
	for _, c := range cases {
		for _, split := range []int{1, 2, 3, 1 << 20} {
			if got := normalize(t, c.in, split); got != c.want {
				t.Errorf("%s (split %d): got %q, want %q", c.name, split, got, c.want)
			}
		}
	}
}

func TestCRLFWriterOutputHasOnlyCRLF(t *testing.T) {
	in := strings.Repeat("x\ry\nz\r\n\n\r\r", 1000)
	out := normalize(t, in, 7)
	for i := 0; i < len(out); i++ {
		switch out[i] {
		case '\r':
			if i+1 >= len(out) || out[i+1] != '\n' {
				t.Fatalf("bare CR at %d", i)
			}
		case '\n':
			if i == 0 || out[i-1] != '\r' {
				t.Fatalf("bare LF at %d", i)
			}
		}
	}
}

func FuzzCRLFWriter(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\r\r\n\n", "a\r\n.\r\n", "\r.\r", "\n.\n", "a\r\r\r\nb\r\r"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, in string, split int) {
		if split <= 0 || split > 64 {
			split = 1
		}
		out := normalize(t, in, split)
		for i := 0; i < len(out); i++ {
			if out[i] == '\r' && (i+1 >= len(out) || out[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, out)
			}
			if out[i] == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		// Where the writes split the input does not matter.
		if whole := normalize(t, in, 1<<20); whole != out {
			t.Fatalf("%q: split %d gives %q, one write %q", in, split, out, whole)
		}
		// Removing line endings gives the same text on both sides.
		strip := strings.NewReplacer("\r", "", "\n", "")
		if strip.Replace(in) != strip.Replace(out) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}

func BenchmarkCRLFWriter(b *testing.B) {
	line := bytes.Repeat([]byte("0123456789abcdef"), 4)
	buf := bytes.Repeat(append(line, '\r', '\n'), 1000)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	w := newCRLFWriter(discard{})
	for b.Loop() {
		_, _ = w.Write(buf)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
