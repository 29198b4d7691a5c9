package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readLines runs the line editor over input until it runs out and
// returns the lines (a cancelled line as "<^C>") and the echo.
func readLines(t *testing.T, r io.Reader, echo bool) ([]string, string) {
	t.Helper()
	var echoed bytes.Buffer
	s := &session{ctx: context.Background(), in: newInput(r), out: &out{w: &echoed}, echo: echo}
	var lines []string
	for {
		line, ok, err := s.readLine("")
		if errors.Is(err, io.EOF) {
			return lines, echoed.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			line = "<^C>"
		}
		lines = append(lines, line)
	}
}

func TestLineEditing(t *testing.T) {
	long := strings.Repeat("a", 300)
	cases := []struct {
		name, in string
		lines    []string
		echo     string
	}{
		{"CR", "status\r", []string{"status"}, "status\r\n"},
		{"CRLF is one line end", "status\r\nhelp\r\n", []string{"status", "help"}, "status\r\nhelp\r\n"},
		{"LF", "status\nhelp\n", []string{"status", "help"}, "status\r\nhelp\r\n"},
		{"mixed ends", "a\rb\nc\r\nd\n\n", []string{"a", "b", "c", "d", ""}, "a\r\nb\r\nc\r\nd\r\n\r\n"},
		{"CR CR is two lines", "\r\r", []string{"", ""}, "\r\n\r\n"},
		{"LF CR is two lines", "x\n\ry\r", []string{"x", "", "y"}, "x\r\n\r\ny\r\n"},
		{"DEL erases", "stau\x7ftus\r", []string{"status"}, "stau\b \btus\r\n"},
		{"BS erases", "stau\x08tus\r", []string{"status"}, "stau\b \btus\r\n"},
		{"erase on empty line does nothing", "\x7f\x08ok\r", []string{"ok"}, "ok\r\n"},
		{"Ctrl-C cancels the line", "queue delete X\x03ok\r", []string{"<^C>", "ok"}, "queue delete X^C\r\nok\r\n"},
		{"Ctrl-U clears the line", "junk\x15ok\r", []string{"ok"}, "junk\b \b\b \b\b \b\b \bok\r\n"},
		{"other control bytes ignored", "o\x00\x01\x04\x07\t\x0ck\r", []string{"ok"}, "ok\r\n"},
		{"8-bit noise ignored", "o\xff\x80\xc3\xa9k\r", []string{"ok"}, "ok\r\n"},
		{"arrow and function keys ignored", "\x1b[Aok\x1b[1;5Cx\x1bOP\r", []string{"okx"}, "okx\r\n"},
		{"lone ESC dropped", "\x1bok\r", []string{"ok"}, "ok\r\n"},
		{"line bounded", long + "\r", []string{long[:maxLine]}, long[:maxLine] + "\r\n"},
		{"unfinished line at EOF is not run", "status", nil, "status"},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			name := tc.name
			var r io.Reader = strings.NewReader(tc.in)
			if split {
				// One byte per Read: a CRLF split across reads must still
				// be one line end.
				name += "/byte by byte"
				r = iotest.OneByteReader(r)
			}
			t.Run(name, func(t *testing.T) {
				lines, echo := readLines(t, r, true)
				if strings.Join(lines, "|") != strings.Join(tc.lines, "|") {
					t.Errorf("lines %q, want %q", lines, tc.lines)
				}
				if echo != tc.echo {
					t.Errorf("echo %q, want %q", echo, tc.echo)
				}
			})
		}
	}
}

func TestNoEcho(t *testing.T) {
	lines, echo := readLines(t, strings.NewReader("ab\x7fc\r\x15\rx\x03"), false)
	if strings.Join(lines, "|") != "ac||<^C>" {
		t.Errorf("lines %q", lines)
	}
	// Only the Ctrl-C notice: the terminal echoes locally.
	if echo != "^C\r\n" {
		t.Errorf("echo %q, want only the ^C notice", echo)
	}
}

// Text from devices (headers, replies) must reach the terminal as plain
// ASCII, whatever bytes it holds.
func TestOutputIsPlainASCII(t *testing.T) {
	var b bytes.Buffer
	o := &out{w: &b}
	_, _ = io.WriteString(o, "a\x1b[2Jb\x9b31mc\tdé\u201c\r\ne\n\x07\xff")
	if got, want := b.String(), "a?[2Jb?31mc d??\r\ne\r\n??"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWrap(t *testing.T) {
	cases := []struct {
		text, first, indent string
		want                []string
	}{
		{"short", "x: ", "   ", []string{"x: short"}},
		{"", "label: ", "", []string{"label:"}},
		{strings.Repeat("word ", 20), "", "  ", []string{
			strings.TrimSpace(strings.Repeat("word ", 16)), "  " + strings.TrimSpace(strings.Repeat("word ", 4))}},
		{strings.Repeat("x", 100), "h: ", "   ", []string{"h: " + strings.Repeat("x", 76), "   " + strings.Repeat("x", 24)}},
	}
	for _, tc := range cases {
		got := wrap(tc.text, tc.first, tc.indent)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("wrap(%q, %q):\n got %q\nwant %q", tc.text, tc.first, got, tc.want)
		}
		for _, l := range got {
			if len(l) > width {
				t.Errorf("line of %d columns: %q", len(l), l)
			}
		}
	}
}
