package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is one problem with the configuration. Line is 0 when the key is not
// in the file (a default, or a missing key) or the position is unknown.
type Error struct {
	File string // as given to Load or Parse; "" for Validate on a value
	Line int
	Key  string // e.g. "upstream[1].tls"; "" for whole-file problems
	Msg  string
	Err  error // underlying cause, if any (for errors.Is)
}

// Error formats as "relaybox.toml:12: listen.max_message_size: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File == "" {
		b.WriteString("config")
	} else {
		b.WriteString(e.File)
	}
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, such as fs.ErrNotExist.
func (e *Error) Unwrap() error { return e.Err }

// Load reads the file at path, decodes it over Default(), and validates it.
// Relative paths written in the file (data_dir, upstream files,
// admin.password_file) are taken relative to the file's directory, so a
// service finds them whatever its working directory. Every error is an
// *Error; several are joined with errors.Join.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, &Error{File: path, Msg: fmt.Sprintf("cannot read the config file: %v; check -config", err), Err: err}
	}
	return parse(data, path, filepath.Dir(path))
}

// Parse is Load for bytes already in memory; name is used in messages.
// Relative paths stay relative to the working directory.
func Parse(data []byte, name string) (Config, error) { return parse(data, name, "") }

func parse(data []byte, name, baseDir string) (Config, error) {
	c, _, err := parseSource(data, name, baseDir)
	return c, err
}

func parseSource(data []byte, name, baseDir string) (Config, Source, error) {
	c, lines, err := decode(data, name)
	if err != nil {
		return Config{}, Source{}, err
	}
	c.resolvePaths(baseDir, lines)
	c.normalize()
	ps := c.problems(strconv.IntSize)
	for _, p := range ps {
		p.File = name
		p.Line = lines.find(p.Key)
	}
	if err := joinErrors(ps); err != nil {
		return Config{}, Source{}, err
	}
	return c, Source{file: name, lines: lines}, nil
}

// Source says where each key of a loaded file is, so a problem found after
// validation (a file's content, a port already taken) names FILE:LINE too.
// The zero Source (built-in defaults) names no file.
type Source struct {
	file  string
	lines keyIndex
}

// LoadSource is Load that also returns where each key is in the file.
func LoadSource(path string) (Config, Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, Source{}, &Error{File: path, Msg: fmt.Sprintf("cannot read the config file: %v; check -config", err), Err: err}
	}
	return parseSource(data, path, filepath.Dir(path))
}

// KeyError is a problem with the setting at key found after validation:
// an *Error naming the file and line of key, like Load's own errors.
func (s Source) KeyError(key string, err error) *Error {
	e := &Error{Key: key, Msg: err.Error(), Err: err}
	if s.file != "" {
		e.File, e.Line = s.file, s.lines.find(key)
	}
	return e
}

// File is the config file, "" for built-in defaults.
func (s Source) File() string { return s.file }

// keyIndex finds the line of a key, or of its nearest ancestor in the file.
type keyIndex struct {
	lines []keyLine
	byKey map[string]int // lower-cased display key -> line
}

func newKeyIndex(lines []keyLine) keyIndex {
	idx := keyIndex{lines: lines, byKey: make(map[string]int, len(lines))}
	for _, l := range lines {
		// The TOML decoder matches field names without regard to case.
		idx.byKey[strings.ToLower(l.display)] = l.line
	}
	return idx
}

// find falls back from "upstream[0].address" to "upstream[0]" so a missing
// key points at its table's header; it returns 0 for keys not in the file.
func (k keyIndex) find(key string) int {
	key = strings.ToLower(key)
	for key != "" {
		if l, ok := k.byKey[key]; ok {
			return l
		}
		cut := max(strings.LastIndexByte(key, '.'), strings.LastIndexByte(key, '['))
		if cut < 0 {
			break
		}
		key = key[:cut]
	}
	return 0
}

func (k keyIndex) defined(key string) bool {
	_, ok := k.byKey[strings.ToLower(key)]
	return ok
}

// decode parses TOML over Default() and refuses unknown keys.
func decode(data []byte, name string) (Config, keyIndex, error) {
	c := Default()
	md, err := toml.NewDecoder(strings.NewReader(string(data))).Decode(&c)
	if err != nil {
		return Config{}, keyIndex{}, decodeError(err, name, data)
	}
	lines := newKeyIndex(scanKeyLines(string(data)))
	if ps := unknownKeys(md.Undecoded(), lines, name); len(ps) > 0 {
		return Config{}, keyIndex{}, joinErrors(ps)
	}
	return c, lines, nil
}

// typeErrRE matches the decoder's plain-error form, "toml: line 7 (last key
// "listen.max_recipients"): incompatible types: ...", which v1.6 returns
// without a ParseError for type mismatches.
var typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

// decodeError turns the TOML library's errors into *Error with line and key.
func decodeError(err error, name string, data []byte) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e := &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message, Err: err}
		if pe.LastKey == "" {
			e.Msg = "TOML syntax: " + pe.Message
		}
		// An error found at a newline ("[listen" then Enter) is reported on
		// the next line by the library; the admin's mistake is on this one.
		if st := pe.Position.Start; st >= 0 && st < len(data) && data[st] == '\n' {
			e.Line = 1 + strings.Count(string(data[:st]), "\n")
		}
		// A value error (Size, Duration) names the key without array
		// indices; the line tells which element it was.
		if e.Line > 0 && e.Key != "" {
			e.Key = indexedKeyAt(data, e.Key, e.Line)
		}
		return e
	}
	if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, uerr := strconv.Unquote(`"` + m[2] + `"`)
		if uerr != nil {
			key = m[2]
		}
		msg := m[3]
		if strings.HasPrefix(msg, "incompatible types") {
			msg += "; check quotes: strings, sizes and durations are quoted, numbers and booleans are not"
		}
		if line > 0 {
			key = indexedKeyAt(data, key, line)
		}
		return &Error{File: name, Line: line, Key: key, Msg: msg, Err: err}
	}
	return &Error{File: name, Msg: "TOML: " + strings.TrimPrefix(err.Error(), "toml: "), Err: err}
}

// indexedKeyAt returns the display form ("upstream[1].tls") of plain key at
// line, or plain itself if the file cannot be scanned (a syntax error).
func indexedKeyAt(data []byte, plain string, line int) string {
	for _, l := range scanKeyLines(string(data)) {
		if l.plain == plain && l.line == line {
			return l.display
		}
	}
	return plain
}

// unknownKeys reports each key the decoder did not use, once per place it
// appears, skipping keys under an unknown table (the table is reported).
func unknownKeys(undecoded []toml.Key, lines keyIndex, name string) []*Error {
	if len(undecoded) == 0 {
		return nil
	}
	unknown := map[string]bool{}
	for _, k := range undecoded {
		unknown[k.String()] = true
	}
	top := func(k toml.Key) bool {
		for i := 1; i < len(k); i++ {
			if unknown[k[:i].String()] {
				return false
			}
		}
		return true
	}
	known := knownKeys()
	var out []*Error
	found := map[string]bool{}
	for _, l := range lines.lines {
		if l.elem || !unknown[l.plain] || !top(l.key) {
			continue
		}
		found[l.plain] = true
		out = append(out, &Error{File: name, Line: l.line, Key: l.display, Msg: unknownMsg(l.plain, known)})
	}
	// The scanner should find every key; if it missed one, still report it.
	for _, k := range undecoded {
		if s := k.String(); !found[s] && top(k) {
			found[s] = true
			out = append(out, &Error{File: name, Key: s, Msg: unknownMsg(s, known)})
		}
	}
	return out
}

// unknownMsg suggests the nearest known key: a typo at the same level, or
// the same name in another table (a key written under the wrong header).
func unknownMsg(plain string, known map[string]keyKind) string {
	parent, leaf := splitLast(plain)
	best, bestDist := "", typoLimit(leaf)+1
	var elsewhere []string
	for k, kind := range known {
		kp, kl := splitLast(k)
		if kp == parent {
			if d := editDistance(leaf, kl); d < bestDist {
				best, bestDist = kl, d
			}
		} else if kl == leaf && kind == leafKey {
			if known[kp] == arrayTable {
				elsewhere = append(elsewhere, "[["+kp+"]]")
			} else {
				elsewhere = append(elsewhere, "["+kp+"]")
			}
		}
	}
	switch {
	case best != "":
		return fmt.Sprintf("unknown key; did you mean %s?", best)
	case len(elsewhere) > 0:
		sort.Strings(elsewhere)
		return fmt.Sprintf("unknown key here; %s belongs in %s: is a table header missing above it?", leaf, strings.Join(elsewhere, " or "))
	}
	return "unknown key; remove it or fix the spelling (`relaybox check-config` prints every key)"
}

func splitLast(k string) (parent, leaf string) {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i], k[i+1:]
	}
	return "", k
}

// typoLimit is how many edits still count as a typo: one for short names,
// so "tls" does not suggest "log".
func typoLimit(name string) int {
	switch {
	case len(name) <= 4:
		return 1
	case len(name) <= 8:
		return 2
	}
	return 3
}

type keyKind int

const (
	leafKey keyKind = iota + 1
	table
	arrayTable
)

// knownKeys lists every key Config accepts, from the toml struct tags, as
// plain toml.Key strings ("upstream.tls").
func knownKeys() map[string]keyKind {
	out := map[string]keyKind{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			ft, kind := f.Type, table
			if ft.Kind() == reflect.Slice {
				ft, kind = ft.Elem(), arrayTable
			}
			if ft.Kind() != reflect.Struct {
				out[key] = leafKey
				continue
			}
			out[key] = kind
			walk(ft, key+".")
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// adjacent transpositions, the commonest typo ("smpt" for "smtp").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// resolvePaths makes relative paths from the file relative to baseDir.
// data_dir is resolved only when the file sets it: the built-in default
// stays relative to the working directory, as documented for `relaybox run`.
func (c *Config) resolvePaths(baseDir string, lines keyIndex) {
	if baseDir == "" {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	if lines.defined("data_dir") {
		abs(&c.DataDir)
	}
	for i := range c.Upstream {
		u := &c.Upstream[i]
		abs(&u.CAFile)
		abs(&u.PasswordFile)
		abs(&u.CertFile)
		abs(&u.KeyFile)
		o := &u.OAuth
		abs(&o.ClientSecretFile)
		abs(&o.RefreshTokenFile)
		abs(&o.CertificateFile)
		abs(&o.CertificateKeyFile)
		abs(&o.ServiceAccountFile)
	}
	abs(&c.Admin.PasswordFile)
	if c.Listen.TLSCert != TLSCertAuto {
		abs(&c.Listen.TLSCert)
	}
	abs(&c.Listen.TLSKey)
}

// normalize fills defaults that depend on other keys, before validation.
func (c *Config) normalize() {
	for i := range c.Upstream {
		u := &c.Upstream[i]
		if u.TLS == "" {
			u.TLS = TLSStartTLS
		}
		if u.ServerName == "" {
			if host, _, err := net.SplitHostPort(u.Address); err == nil {
				u.ServerName = host
			}
		}
		u.OAuth.normalize()
		if u.OAuth.Flow != "" && u.Auth == "" {
			u.Auth = AuthXOAuth2 // what Microsoft and Google both document for SMTP
		}
		if u.OAuth.Flow == FlowJWT && u.Username == "" {
			u.Username = u.OAuth.Subject
		}
	}
}

// Microsoft identity platform endpoints, per tenant (ID or domain).
const msLogin = "https://login.microsoftonline.com/"

// normalize fills the endpoints a tenant implies and the usual scopes.
func (o *UpstreamOAuth) normalize() {
	if o.Tenant != "" {
		if o.TokenURL == "" {
			o.TokenURL = msLogin + o.Tenant + "/oauth2/v2.0/token"
		}
		if o.DeviceAuthURL == "" {
			o.DeviceAuthURL = msLogin + o.Tenant + "/oauth2/v2.0/devicecode"
		}
	}
	if len(o.Scopes) > 0 {
		return
	}
	switch {
	case o.Flow == FlowJWT:
		o.Scopes = []string{"https://mail.google.com/"}
	case o.Tenant != "" && o.Flow == FlowClientCredentials:
		o.Scopes = []string{"https://outlook.office365.com/.default"}
	case o.Tenant != "" && o.Flow == FlowRefreshToken:
		o.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access"}
	}
}
