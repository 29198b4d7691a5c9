package config

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestScanKeyLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]int // display key -> line; keys not listed are not checked
		none []string       // display keys that must not be found
	}{
		{"tables and keys", "a = 1\n[listen]\nsmtp = [\"x\"]\n\n[log]\nlevel = \"info\"\n",
			map[string]int{"a": 1, "listen": 2, "listen.smtp": 3, "listen.smtp[0]": 3, "log": 5, "log.level": 6}, nil},
		{"arrays of tables", "[[upstream]]\naddress = \"a\"\n\n[[upstream]]\naddress = \"b\"\ntls = \"none\"\n[auth]\n[[auth.users]]\nname = \"x\"\n",
			map[string]int{"upstream[0]": 1, "upstream[0].address": 2, "upstream[1]": 4, "upstream[1].address": 5, "upstream[1].tls": 6, "auth.users[0].name": 9}, nil},
		{"dotted keys create tables", "listen.smtp = [\"x\"]\n\"log\".'level' = \"debug\"\n",
			map[string]int{"listen": 1, "listen.smtp": 1, "log.level": 2}, nil},
		{"multi-line array", "[listen]\nallowed_networks = [\n  \"10.0.0.0/8\", # lab\n\n  \"10.0.0.5\",\n]\nmax_recipients = 5\n",
			map[string]int{"listen.allowed_networks": 2, "listen.allowed_networks[0]": 3, "listen.allowed_networks[1]": 5, "listen.max_recipients": 7}, nil},
		{"strings that look like TOML", "a = \"[b] c = 1 # \\\" ]\"\nd = 'e = [f'\ng = \"\"\"\n[h]\ni = 2\n\"\"\"\"\nj = '''\n[[k]]'''\nl = 3\n",
			map[string]int{"a": 1, "d": 2, "g": 3, "j": 7, "l": 9}, []string{"h", "i", "k", "b"}},
		{"comments that look like TOML", "# [x]\n[y] # [[z]]\nw = 1 # v = 2\n",
			map[string]int{"y": 2, "y.w": 3}, []string{"x", "z", "v", "y.v"}},
		{"inline tables", "upstream = [\n {address = \"a\", tls = \"tls\"},\n {address = \"b\"},\n]\nled = {pin = \"GPIO4\"}\n",
			map[string]int{"upstream[0]": 2, "upstream[0].tls": 2, "upstream[1].address": 3, "led.pin": 5}, nil},
		{"nested arrays", "a = [[1, 2], [3]]\nb = 1\n", map[string]int{"a": 1, "a[0]": 1, "a[1]": 1, "b": 2}, nil},
		{"CRLF and tabs", "[log]\r\n\tlevel\t=\t\"info\"\r\nformat = \"json\"\r\n",
			map[string]int{"log": 1, "log.level": 2, "log.format": 3}, nil},
		{"quoted key with a dot", "[policy]\n\"odd.key\" = 1\n", map[string]int{`policy."odd.key"`: 2}, nil},
		{"sub-table of an array element", "[[upstream]]\naddress = \"a\"\n[upstream.extra]\nx = 1\n",
			map[string]int{"upstream[0].extra": 3, "upstream[0].extra.x": 4}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := toml.Decode(tt.src, new(map[string]any)); err != nil {
				t.Fatalf("test input is not valid TOML: %v", err)
			}
			got := map[string]int{}
			for _, l := range scanKeyLines(tt.src) {
				got[l.display] = l.line
			}
			for k, line := range tt.want {
				if got[k] != line {
					t.Errorf("%s: line %d; want %d (all: %v)", k, got[k], line, got)
				}
			}
			for _, k := range tt.none {
				if _, ok := got[k]; ok {
					t.Errorf("found %s, which is inside a string or comment", k)
				}
			}
		})
	}
}

// TestScanKeyLinesAgreesWithDecoder checks that the scanner finds every key
// the TOML library saw, on the full example.
func TestScanKeyLinesAgreesWithDecoder(t *testing.T) {
	src := `hostname = "x"
[listen]
smtp = ["a:1", "b:2"]
[[upstream]]
address = "a:1"
[[upstream]]
address = "b:1"
[auth]
users = [{name = "n", password_hash = "h"}]
`
	md, err := toml.Decode(src, new(map[string]any))
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]bool{}
	for _, l := range scanKeyLines(src) {
		plain[l.plain] = true
	}
	for _, k := range md.Keys() {
		if !plain[k.String()] {
			t.Errorf("scanner missed key %s", k)
		}
	}
}

func FuzzScanKeyLines(f *testing.F) {
	for _, s := range []string{
		"a = 1\n[b]\nc = [1,\n2]\n",
		"[[u]]\na = \"\"\"x\n\"\"\"\n",
		"x = {a = [{b = 'c'}]}\n",
		"\"q\\\"k\" = '''\n'''",
		"[a\n", "a = \"\\", "a = [", "a = {", "'", "[[",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		lines := scanKeyLines(src) // must neither panic nor loop
		max := strings.Count(src, "\n") + 1
		for _, l := range lines {
			if l.line < 1 || l.line > max {
				t.Fatalf("line %d outside 1..%d for %q", l.line, max, l.display)
			}
		}
	})
}

// TestScanKeyLinesDeepNesting guards the depth cap: before it, 20,000 nested
// inline tables took about 25 s (each level copied every level above it).
func TestScanKeyLinesDeepNesting(t *testing.T) {
	const n = 20000
	src := strings.Repeat("x = {", n) + "y = 1" + strings.Repeat("}", n) + "\nz = 2\n"
	start := time.Now()
	lines := scanKeyLines(src)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("scan took %v", d)
	}
	if len(lines) != maxKeyDepth+1 || lines[len(lines)-1].display != "z" || lines[len(lines)-1].line != 2 {
		t.Errorf("got %d keys, last %+v; want %d nested x keys then z on line 2", len(lines), lines[len(lines)-1], maxKeyDepth)
	}
}
