package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// decodeError reads two shapes of BurntSushi/toml's errors: a ParseError
// (line, last key, message), and for type mismatches a plain error whose
// text typeErrRE takes apart. Neither shape is a documented contract, so
// this test pins both against the library's real errors, one case per kind
// of error: an upgrade that changes a wording or a shape fails here, by
// name, instead of turning "relaybox.toml:5: upstream[1].tls: ..." into a
// message without line or key. Unknown keys come back without a position
// at all (MetaData.Undecoded), which is why keypos.go finds their lines.
func TestLibraryErrorShapes(t *testing.T) {
	type shape int
	const (
		parseError shape = iota // toml.ParseError
		typeError               // a plain error typeErrRE matches
	)
	tests := []struct {
		kind   string
		src    string
		shape  shape
		line   int    // as the library reports it
		key    string // the library's last key, without indices
		msg    string // how the message starts
		result string // decodeError's *Error, as printed
	}{
		{"string for an integer", "[listen]\nmax_recipients = \"ten\"\n", typeError, 2, "listen.max_recipients",
			"incompatible types: TOML value has type string; destination has type integer",
			"relaybox.toml:2: listen.max_recipients: incompatible types"},
		{"integer for a string", "hostname = 5\n", typeError, 1, "hostname",
			"incompatible types: TOML value has type int64; destination has type string",
			"relaybox.toml:1: hostname: incompatible types"},
		{"string for a bool in an array of tables", "[[upstream]]\naddress = \"a:1\"\n[[upstream]]\naddress = \"b:1\"\ninsecure = \"yes\"\n",
			typeError, 5, "upstream.insecure", "incompatible types: TOML value has type string; destination has type bool",
			"relaybox.toml:5: upstream[1].insecure: incompatible types"},
		{"string for a list", "[listen]\nallowed_networks = \"10.0.0.0/8\"\n", typeError, 2, "listen.allowed_networks",
			"incompatible types: TOML value has type string; destination has type slice",
			"relaybox.toml:2: listen.allowed_networks: incompatible types"},
		{"quoted key", "[listen]\n\"max_recipients\" = \"ten\"\n", typeError, 2, "listen.max_recipients",
			"incompatible types", "relaybox.toml:2: listen.max_recipients: incompatible types"},
		{"UnmarshalText refuses the value", "[listen]\nmax_message_size = \"50 MB\"\n", parseError, 2, "listen.max_message_size",
			`cannot parse "50 MB"`, `relaybox.toml:2: listen.max_message_size: cannot parse "50 MB"`},
		{"integer out of range", "[listen]\nmax_recipients = 99999999999999999999\n", parseError, 2, "listen.max_recipients",
			"99999999999999999999 is out of range for int64", "relaybox.toml:2: listen.max_recipients: 99999999999999999999 is out of range"},
		{"bare word as a value", "[log]\nlevel = debug\n", parseError, 2, "log.level",
			`expected value but found "debug" instead`, `relaybox.toml:2: log.level: expected value but found "debug"`},
		{"duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", parseError, 3, "log.level",
			"Key 'log.level' has already been defined.", "relaybox.toml:3: log.level: Key 'log.level' has already been defined."},
		{"unterminated string", "hostname = \"relaybox\n", parseError, 1, "hostname",
			"strings cannot contain newlines", "relaybox.toml:1: hostname: strings cannot contain newlines"},
		// Reported on the line after the header; decodeError moves it back
		// because Position.Start points at the newline.
		{"table header cut short", "hostname = \"a\"\n[listen\nsmtp = []\n", parseError, 3, "",
			"expected '.' or ']' to end table name, but got '\\n' instead", "relaybox.toml:2: TOML syntax: expected '.' or ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			var c Config
			_, err := toml.NewDecoder(strings.NewReader(tt.src)).Decode(&c)
			if err == nil {
				t.Fatal("BurntSushi/toml accepted it")
			}
			var pe toml.ParseError
			isParse := errors.As(err, &pe)
			switch tt.shape {
			case parseError:
				if !isParse {
					t.Fatalf("BurntSushi/toml no longer returns a ParseError for this (%T: %v): decodeError loses the line", err, err)
				}
				if pe.Position.Line != tt.line || pe.LastKey != tt.key || !strings.HasPrefix(pe.Message, tt.msg) {
					t.Errorf("ParseError changed: line %d, last key %q, message %q; want line %d, key %q, message starting %q",
						pe.Position.Line, pe.LastKey, pe.Message, tt.line, tt.key, tt.msg)
				}
			case typeError:
				if isParse {
					t.Fatalf("BurntSushi/toml now returns a ParseError for a type mismatch: %v; decodeError can read it directly and typeErrRE can go", err)
				}
				m := typeErrRE.FindStringSubmatch(err.Error())
				if m == nil {
					t.Fatalf("typeErrRE no longer matches BurntSushi/toml's type error %q: update it in load.go", err)
				}
				if m[1] != strconv.Itoa(tt.line) || m[2] != tt.key || !strings.HasPrefix(m[3], tt.msg) {
					t.Errorf("typeErrRE took %q apart as line %q, key %q, message %q; want %d, %q, starting %q",
						err, m[1], m[2], m[3], tt.line, tt.key, tt.msg)
				}
			}
			if got := decodeError(err, "relaybox.toml", []byte(tt.src)).Error(); !strings.HasPrefix(got, tt.result) {
				t.Errorf("decodeError = %q, want it to start %q", got, tt.result)
			}
		})
	}
}

// An unknown key is not an error to the library, and it has no position:
// keypos.go must find its line.
func TestLibraryUnknownKeysHaveNoPosition(t *testing.T) {
	var c Config
	md, err := toml.NewDecoder(strings.NewReader("[[upstream]]\naddress = \"a:1\"\n[[upstream]]\nadress = \"b:1\"\n")).Decode(&c)
	if err != nil {
		t.Fatal(err)
	}
	u := md.Undecoded()
	if len(u) != 1 || u[0].String() != "upstream.adress" {
		t.Fatalf("Undecoded = %v, want [upstream.adress]", u)
	}
}
