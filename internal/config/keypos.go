package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyLine is where a key first appears in the file.
//
// BurntSushi/toml v1.6 keeps key positions private (MetaData.keyInfo) and,
// for arrays of tables, remembers only the last element's position, so this
// file re-reads the already-validated TOML to learn every key's line and its
// array index. That lets an error say "upstream[1].tls" on line 14 instead of
// "upstream.tls" somewhere. Why not pelletier/go-toml/v2, whose errors carry
// positions: docs/design.md, "The config parser".
type keyLine struct {
	key     toml.Key // without indices
	plain   string   // key.String(): "upstream.tls"
	display string   // with indices, as errors print it: "upstream[1].tls"
	line    int
	elem    bool // an element of an array value, not a key written in the file
}

// keyScanner walks TOML text. It only ever sees input that toml.Decode has
// accepted, but it bounds-checks everything so odd input cannot panic it.
type keyScanner struct {
	src   string
	pos   int
	line  int
	out   []keyLine
	seen  map[string]bool
	count map[string]int // array-of-tables header occurrences, by display path of the array
	last  map[string]int // current element index of each array of tables, by plain path
}

const maxKeyDepth = 16

// pathSeg is one key segment; idx >= 0 marks an element of an array.
type pathSeg struct {
	name string
	idx  int
}

func scanKeyLines(src string) []keyLine {
	s := &keyScanner{src: src, line: 1, seen: map[string]bool{}, count: map[string]int{}, last: map[string]int{}}
	s.document()
	return s.out
}

func (s *keyScanner) eof() bool { return s.pos >= len(s.src) }

func (s *keyScanner) peek(prefix string) bool { return strings.HasPrefix(s.src[s.pos:], prefix) }

func (s *keyScanner) advance(n int) {
	for i := 0; i < n && !s.eof(); i++ {
		if s.src[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

// skipSpace skips blanks and comments, and newlines too when nl is set.
func (s *keyScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.src[s.pos]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.pos++
		case c == '\n' && nl:
			s.advance(1)
		case c == '#':
			for !s.eof() && s.src[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

func (s *keyScanner) record(path []pathSeg, line int) { s.recordAs(path, line, false) }

func (s *keyScanner) recordAs(path []pathSeg, line int, elem bool) {
	// No relaybox key is this deep; the cap keeps hostile nesting linear.
	if len(path) > maxKeyDepth {
		return
	}
	names := make(toml.Key, len(path))
	var b strings.Builder
	for i, p := range path {
		names[i] = p.name
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(toml.Key{p.name}.String())
		if p.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(p.idx) + "]")
		}
	}
	display := b.String()
	if s.seen[display] {
		return
	}
	s.seen[display] = true
	s.out = append(s.out, keyLine{key: names, plain: names.String(), display: display, line: line, elem: elem})
}

// recordPrefixes records every prefix of path, so implicit tables created
// by dotted keys ("listen.smtp = ...") have a line too.
func (s *keyScanner) recordPrefixes(path []pathSeg, line int) {
	for i := 1; i <= len(path) && i <= maxKeyDepth; i++ {
		s.record(path[:i], line)
	}
}

func (s *keyScanner) document() {
	var table []pathSeg
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		line := s.line
		if s.peek("[[") {
			s.advance(2)
			names := s.key()
			s.skipSpace(false)
			s.advance(2) // "]]"
			table = s.resolve(names, true)
			s.recordPrefixes(table, line)
			continue
		}
		if s.peek("[") {
			s.advance(1)
			names := s.key()
			s.skipSpace(false)
			s.advance(1) // "]"
			table = s.resolve(names, false)
			s.recordPrefixes(table, line)
			continue
		}
		start := s.pos
		s.keyValue(table)
		if s.pos == start { // not TOML we understand: skip the line rather than loop
			for !s.eof() && s.src[s.pos] != '\n' {
				s.pos++
			}
		}
	}
}

// resolve turns a header's names into a path, giving each array-of-tables
// prefix its current element index; a [[header]] starts a new element.
func (s *keyScanner) resolve(names []string, array bool) []pathSeg {
	if len(names) > maxKeyDepth+1 {
		names = names[:maxKeyDepth+1] // too deep to record; keeps this linear
	}
	path := make([]pathSeg, 0, len(names))
	for i, n := range names {
		path = append(path, pathSeg{name: n, idx: -1})
		plain := toml.Key(names[:i+1]).String()
		if i == len(names)-1 && array {
			parent := displayOf(path[:i]) + "." + toml.Key{n}.String()
			idx := s.count[parent]
			s.count[parent] = idx + 1
			s.last[plain] = idx
			path[i].idx = idx
		} else if idx, ok := s.last[plain]; ok {
			path[i].idx = idx
		}
	}
	return path
}

func displayOf(path []pathSeg) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteString(toml.Key{p.name}.String() + "[" + strconv.Itoa(p.idx) + "].")
	}
	return b.String()
}

// key reads a possibly dotted, possibly quoted key.
func (s *keyScanner) key() []string {
	var names []string
	for {
		s.skipSpace(false)
		if s.eof() {
			return names
		}
		switch s.src[s.pos] {
		case '"':
			start := s.pos
			s.basicString()
			raw := s.src[start:s.pos]
			if u, err := strconv.Unquote(raw); err == nil {
				names = append(names, u)
			} else {
				names = append(names, strings.Trim(raw, `"`))
			}
		case '\'':
			start := s.pos
			s.literalString()
			names = append(names, strings.Trim(s.src[start:s.pos], "'"))
		default:
			start := s.pos
			for !s.eof() && isBareKeyChar(s.src[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return names
			}
			names = append(names, s.src[start:s.pos])
		}
		s.skipSpace(false)
		if s.eof() || s.src[s.pos] != '.' {
			return names
		}
		s.pos++
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyValue reads "key = value" under table and records the key.
func (s *keyScanner) keyValue(table []pathSeg) {
	line := s.line
	names := s.key()
	if len(names) == 0 {
		return
	}
	path := append(append([]pathSeg(nil), table...), segs(names)...)
	if len(path) > maxKeyDepth+1 {
		// Past the cap nothing is recorded; a short path keeps each level
		// of hostile nesting from copying all the levels above it.
		path = path[:maxKeyDepth+1]
	}
	for i := len(table) + 1; i <= len(path) && i <= maxKeyDepth; i++ {
		s.record(path[:i], line) // the table itself is recorded already
	}
	s.skipSpace(false)
	if s.eof() || s.src[s.pos] != '=' {
		return
	}
	s.pos++
	s.skipSpace(false)
	s.value(path)
}

func segs(names []string) []pathSeg {
	out := make([]pathSeg, len(names))
	for i, n := range names {
		out[i] = pathSeg{name: n, idx: -1}
	}
	return out
}

func (s *keyScanner) value(path []pathSeg) {
	if s.eof() {
		return
	}
	switch {
	case s.peek(`"""`):
		s.multiline(`"""`, true)
	case s.peek(`'''`):
		s.multiline(`'''`, false)
	case s.src[s.pos] == '"':
		s.basicString()
	case s.src[s.pos] == '\'':
		s.literalString()
	case s.src[s.pos] == '[':
		s.array(path)
	case s.src[s.pos] == '{':
		s.inlineTable(path)
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.src[s.pos])) {
			s.pos++
		}
	}
}

func (s *keyScanner) basicString() {
	s.pos++ // opening quote
	for !s.eof() && s.src[s.pos] != '\n' {
		switch s.src[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		default:
			s.pos++
		}
	}
	if s.pos > len(s.src) {
		s.pos = len(s.src)
	}
}

func (s *keyScanner) literalString() {
	s.pos++
	for !s.eof() && s.src[s.pos] != '\n' {
		s.pos++
		if s.src[s.pos-1] == '\'' {
			return
		}
	}
}

// multiline skips a triple-quoted string, which may end with up to two
// extra quote characters that belong to the content.
func (s *keyScanner) multiline(delim string, escapes bool) {
	s.advance(3)
	for !s.eof() {
		if escapes && s.src[s.pos] == '\\' {
			s.advance(2)
			continue
		}
		if s.peek(delim) {
			s.advance(3)
			for i := 0; i < 2 && !s.eof() && s.src[s.pos] == delim[0]; i++ {
				s.pos++
			}
			return
		}
		s.advance(1)
	}
}

// array records each element as path[i], so an error about the third
// network can point at its own line in a multi-line list.
func (s *keyScanner) array(path []pathSeg) {
	s.pos++ // '['
	for i := 0; ; i++ {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		if s.src[s.pos] == ']' {
			s.pos++
			return
		}
		elem := append([]pathSeg(nil), path...)
		// Nested arrays have no name of their own; their elements keep
		// the outer element's path.
		if elem[len(elem)-1].idx < 0 {
			elem[len(elem)-1].idx = i
			s.recordAs(elem, s.line, true)
		}
		start := s.pos
		s.value(elem)
		s.skipSpace(true)
		if !s.eof() && s.src[s.pos] == ',' {
			s.pos++
		} else if s.pos == start {
			s.pos++ // cannot happen in valid TOML; guarantees progress
		}
	}
}

func (s *keyScanner) inlineTable(path []pathSeg) {
	s.pos++ // '{'
	for {
		s.skipSpace(true) // TOML 1.1 allows newlines in inline tables
		if s.eof() {
			return
		}
		if s.src[s.pos] == '}' {
			s.pos++
			return
		}
		start := s.pos
		s.keyValue(path)
		s.skipSpace(true)
		if !s.eof() && s.src[s.pos] == ',' {
			s.pos++
		} else if s.pos == start {
			s.pos++
		}
	}
}
