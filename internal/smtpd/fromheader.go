package smtpd

import (
	"bytes"
	"strings"
)

// rewriteFrom replaces an unqualified address in the first From: field of
// a header block (root@localhost, scanner@printer, scanner) with addr,
// keeping the display name and comments. It returns the block unchanged,
// and old "", when there is nothing to rewrite, when the field holds more
// than one mailbox or a group, or when it cannot be read with confidence:
// a header we do not understand is better passed on than mangled.
func rewriteFrom(block []byte, addr string) (out []byte, old string) {
	start, end := -1, -1
	for off := 0; off < len(block); {
		i := bytes.IndexByte(block[off:], '\n')
		if i < 0 {
			break // a last line without its end: not a field we rewrite
		}
		line := block[off : off+i+1]
		switch {
		case start >= 0 && (line[0] == ' ' || line[0] == '\t'):
			end = off + i + 1 // a folded continuation of From:
		case start >= 0:
			off = len(block) // the field is complete
			continue
		case hasName(line, "from"):
			start, end = off, off+i+1
		}
		off += i + 1
	}
	if start < 0 {
		return block, ""
	}
	field := block[start:end]
	colon := bytes.IndexByte(field, ':')
	// RFC 5322 2.2.3 unfolding: drop each CRLF that precedes white space.
	value := strings.ReplaceAll(strings.ReplaceAll(string(field[colon+1:]), "\r\n", ""), "\n", "")
	a, b, ok := mailboxSpan(value)
	if !ok || !unqualifiedAddr(value[a:b]) {
		return block, ""
	}
	old = value[a:b]
	out = make([]byte, 0, len(block)+len(addr))
	out = append(out, block[:start]...)
	out = append(out, field[:colon+1]...)
	out = append(out, value[:a]...)
	out = append(out, addr...)
	out = append(out, value[b:]...)
	out = append(out, "\r\n"...)
	out = append(out, block[end:]...)
	return out, old
}

// mailboxSpan finds the address in a From: value holding one mailbox:
// inside the angle brackets of `Name <addr>`, or the bare addr-spec of
// `addr (Comment)`. Quoted strings and comments are skipped.
func mailboxSpan(v string) (start, end int, ok bool) {
	depth, quoted, sawQuote := 0, false, false
	lt, gt := -1, -1
	words, prevSep := 0, true
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
			continue
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			continue
		}
		switch c {
		case '"':
			quoted, sawQuote, prevSep = true, true, true
		case '(':
			depth, prevSep = 1, true
		case ',', ':', ';':
			return 0, 0, false // several mailboxes or a group
		case '<':
			if lt >= 0 {
				return 0, 0, false
			}
			lt = i
		case '>':
			if lt < 0 || gt >= 0 {
				return 0, 0, false
			}
			gt = i
		case ' ', '\t':
			prevSep = true
		default:
			if lt >= 0 {
				continue
			}
			if prevSep {
				words++
				if words == 1 {
					start = i
				}
			}
			if words == 1 {
				end = i + 1
			}
			prevSep = false
		}
	}
	switch {
	case quoted || depth > 0:
		return 0, 0, false
	case lt >= 0:
		return lt + 1, gt, gt > lt+1
	case sawQuote || words != 1:
		return 0, 0, false // a display name without <>, or nothing
	}
	return start, end, true
}

// unqualifiedAddr reports whether a From: address has no usable domain:
// none at all, localhost, or a single label such as a device's own name.
func unqualifiedAddr(a string) bool {
	if a == "" || strings.ContainsAny(a, "\" \t") {
		return false
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return true
	}
	local, domain := a[:at], strings.ToLower(strings.TrimSuffix(a[at+1:], "."))
	switch {
	case local == "" || strings.HasPrefix(domain, "["):
		return false
	case domain == "" || domain == "localhost" || domain == "localhost.localdomain":
		return true
	}
	return !strings.Contains(domain, ".")
}
