// Package text holds the rules for showing text that came from outside
// relaybox (a device's SMTP arguments, an upstream's reply, a token
// endpoint's error, a log record) to a person: in a log line, a table
// cell, a serial terminal or a failure notice. Each rule lives here once,
// so every reader shows the same text the same way.
//
// The rules:
//
//   - OneLine is for a value inside a line (a reply, an error, a subject,
//     a table cell): every control character (C0, DEL, C1) and every run
//     of white space becomes one space, and the ends are trimmed, so the
//     value can neither break the line nor drive a terminal.
//   - Printable is for a whole line shown as it is (a header line, a log
//     line): a control character other than tab becomes '?'; spacing,
//     tabs and non-ASCII letters stay.
//   - Escape is for recording exactly what a device sent (a log attribute,
//     the AUTH user kept in the spool): every byte outside printable ASCII
//     becomes \xNN, so two different inputs never look alike.
//   - Clip shortens to at most n runes and marks the cut with "...": ASCII,
//     because a serial terminal shows nothing else. It counts runes, not
//     bytes, so it never splits a UTF-8 sequence and one rune is one
//     column on a terminal.
package text

import (
	"strings"
	"unicode/utf8"
)

// ellipsis marks a cut made by Clip.
const ellipsis = "..."

// control reports whether r is a C0 or C1 control character or DEL.
func control(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)
}

// OneLine makes s one line: controls and runs of white space become one
// space; the ends are trimmed.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if control(r) {
			return ' '
		}
		return r
	}, s)), " ")
}

// Printable replaces each control character of s but tab with '?'.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && control(r) {
			return '?'
		}
		return r
	}, s)
}

// Escape writes every byte of s outside printable ASCII (0x20 to 0x7e) as
// \xNN.
func Escape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Clip shortens s to at most n runes, the last three "..." when it cut.
// An n below 4 leaves no room for text beside the mark: s is then cut to
// n runes without it.
func Clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	keep, mark := n-len(ellipsis), ellipsis
	if keep < 1 {
		keep, mark = n, ""
	}
	i := 0
	for k := 0; k < keep; k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + mark
}
