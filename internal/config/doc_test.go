package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const docPath = "../../docs/configuration.md"

// docKey is one key of the file as a user writes it, with where it lives
// in the code (for the failure message).
type docKey struct {
	key   string // "listen.smtp", "upstream.address" (array tables without [])
	field string // "Listen.SMTP"
	table string // the doc's section: "[listen]", "[[upstream]]" or "top level"
}

// configKeys walks the Config struct by its toml tags.
func configKeys(t reflect.Type, prefix, fieldPrefix, table string) []docKey {
	var out []docKey
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key, field := tag, f.Name
		if prefix != "" {
			key, field = prefix+"."+tag, fieldPrefix+"."+f.Name
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft.Name() != "":
			sect := "[" + key + "]"
			out = append(out, configKeys(ft, key, field, sect)...)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			sect := "[[" + key + "]]"
			if prefix != "" {
				out = append(out, docKey{key, field, table}) // the array itself, e.g. auth.users
			}
			out = append(out, configKeys(ft.Elem(), key, field, sect)...)
			continue
		}
		out = append(out, docKey{key, field, table})
	}
	return out
}

// Every key of the config struct has a row in docs/configuration.md, and
// every row names a key that exists: a key added without documentation,
// or removed without updating the docs, fails here.
func TestConfigurationDocCoversEveryKey(t *testing.T) {
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("reading %s: %v", docPath, err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	keys := configKeys(reflect.TypeOf(Config{}), "", "", "top level")
	if len(keys) < 40 {
		t.Fatalf("found only %d config keys; is the walk broken?", len(keys))
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k.key] = true
		if !documented[k.key] {
			t.Errorf("config key %s (field Config.%s in internal/config/config.go) is not documented: "+
				"add a row \"| `%s` | type | default | meaning |\" to the %s table of docs/configuration.md",
				k.key, k.field, k.key, k.table)
		}
	}
	var stale []string
	for k := range documented {
		if !known[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	for _, k := range stale {
		t.Errorf("docs/configuration.md documents %s, which the config struct does not have: remove or rename its row", k)
	}
}
