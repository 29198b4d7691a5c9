package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relaybox/internal/config"
)

// check-config and run decide alike: a doubtful config is either accepted
// by both (and run really starts on it) or refused by both, with exit 2 and
// the same FILE:LINE: key.
func TestCheckConfigAndRunAgree(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := filepath.Abs("../../testdata/config/campus-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		policy string // lines under [policy]
		listen string // extra lines under [listen]
		extra  string // tables at the end
		ok     bool
		key    string // refused: the key named
	}{
		{"plain domain", `recipient_domains = ["campus.test"]`, "", "", true, ""},
		{"wildcard over a TLD", `recipient_domains = ["*.edu"]`, "", "", false, "policy.recipient_domains[0]"},
		{"wildcard two labels", `recipient_domains = ["*.campus.test"]`, "", "", true, ""},
		{"wildcard twice", `recipient_domains = ["*.*.campus.test"]`, "", "", false, "policy.recipient_domains[0]"},
		{"upper case", `recipient_domains = ["Campus.TEST"]`, "", "", true, ""},
		{"trailing dot", `recipient_domains = ["campus.test."]`, "", "", false, "policy.recipient_domains[0]"},
		{"double dot", `recipient_domains = ["campus..test"]`, "", "", false, "policy.recipient_domains[0]"},
		{"underscore", `recipient_domains = ["ok.test", "camp_us.test"]`, "", "", false, "policy.recipient_domains[1]"},
		{"IDN", `recipient_domains = ["bücher.example"]`, "", "", true, ""},
		{"sender IP literal", "recipient_domains = [\"campus.test\"]\nsender = \"scanner@[10.0.0.1]\"", "", "", false, "policy.sender"},
		{"sender upper case", "recipient_domains = [\"campus.test\"]\nsender = \"Scanner@Campus.TEST\"", "", "", true, ""},
		{"network is an address", `recipient_domains = ["campus.test"]`, `allowed_networks = ["127.0.0.1"]`, "", false, "listen.allowed_networks[0]"},
		{"network bits", `recipient_domains = ["campus.test"]`, `allowed_networks = ["127.0.0.0/33"]`, "", false, "listen.allowed_networks[0]"},
		{"mapped network", `recipient_domains = ["campus.test"]`, `allowed_networks = ["127.0.0.0/8", "::ffff:10.0.0.0/104"]`, "", true, ""},
		{"device sender", `recipient_domains = ["campus.test"]`, "", "[[device]]\nname = \"copier\"\nnetworks = [\"127.0.0.0/8\"]\nsender = \"copier@\"", false, "device[0].sender"},
		{"notify without @", `recipient_domains = ["campus.test"]`, "", "[queue]\nnotify = \"postmaster\"", false, "queue.notify"},
		{"upstream tls upper case", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\ntls = \"STARTTLS\"", false, "upstream[0].tls"},
		{"upstream tls none", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\ntls = \"none\"", false, "upstream[0].tls"},
		{"upstream tls none insecure", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\ntls = \"none\"\ninsecure = true", true, ""},
		{"upstream implicit", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\ntls = \"tls\"\nca_file = \"" + ca + "\"", true, ""},
		{"upstream port name", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"smtp.campus.test:submission\"", false, "upstream[0].address"},
		{"upstream port 0", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"smtp.campus.test:0\"", false, "upstream[0].address"},
		{"upstream CA not PEM", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\nca_file = \"" + notPEM + "\"", false, "upstream[0]"},
		{"second upstream CA not PEM", `recipient_domains = ["campus.test"]`, "", "[[upstream]]\naddress = \"127.0.0.1:1\"\n[[upstream]]\naddress = \"127.0.0.1:2\"\nca_file = \"" + notPEM + "\"", false, "upstream[1]"},
		{"inbound cert not PEM", `recipient_domains = ["campus.test"]`, "tls_cert = \"" + notPEM + "\"\ntls_key = \"" + notPEM + "\"", "", false, "listen.tls_cert"},
		{"tls profile case", `recipient_domains = ["campus.test"]`, "tls_cert = \"auto\"\ntls_profile = \"Modern\"", "", false, "listen.tls_profile"},
		{"auth.required address", `recipient_domains = ["campus.test"]`, "", "[auth]\nrequired = [\"10.0.0.1\"]", false, "auth.required[0]"},
		{"auth.required network", `recipient_domains = ["campus.test"]`, "", "[auth]\nmode = \"any\"\nrequired = [\"10.0.0.0/8\"]", true, ""},
		{"bcrypt cost 3", `recipient_domains = ["campus.test"]`, "", "[auth]\nmode = \"users\"\n[[auth.users]]\nname = \"scanner\"\npassword_hash = \"$2b$03$" + strings.Repeat("a", 53) + "\"", false, "auth.users[0].password_hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := fmt.Sprintf("hostname = \"relaybox.e2e.test\"\ndata_dir = %q\n[listen]\nsmtp = [%q]\n%s\n[policy]\n%s\n[admin]\nlisten = \"\"\n%s\n",
				filepath.Join(dir, "data"), freeAddr(t), tt.listen, tt.policy, tt.extra)
			path := writeFile(t, filepath.Join(dir, "relaybox.toml"), conf)

			checkErr := cmdCheckConfig([]string{"-config", path}, io.Discard, io.Discard)
			runErr := runUntilStarted(path)
			if (checkErr == nil) != (runErr == nil) {
				t.Fatalf("check-config and run disagree:\ncheck-config: %v\nrun: %v\n%s", checkErr, runErr, conf)
			}
			if tt.ok {
				if checkErr != nil {
					t.Fatalf("refused: %v\n%s", checkErr, conf)
				}
				return
			}
			if checkErr == nil {
				t.Fatalf("accepted, want refused at %s\n%s", tt.key, conf)
			}
			for which, err := range map[string]error{"check-config": checkErr, "run": runErr} {
				var ue usageError
				var ce *config.Error
				if !errors.As(err, &ue) {
					t.Errorf("%s: %v is not a config error (exit 2)", which, err)
				}
				if !errors.As(err, &ce) || ce.File != path || ce.Line == 0 || ce.Key != tt.key {
					t.Errorf("%s: %v; want %s:LINE: %s", which, err, path, tt.key)
				}
			}
			if checkErr.Error() != runErr.Error() {
				t.Errorf("different words:\ncheck-config: %v\nrun: %v", checkErr, runErr)
			}
		})
	}
}

// runUntilStarted is `relaybox run` up to a started daemon, which it stops
// again at once.
func runUntilStarted(path string) error {
	b, log, opts, err := prepareRun(path, io.Discard)
	if err != nil {
		return err
	}
	d, err := startDaemon(b, log, opts)
	if err != nil {
		return err
	}
	return d.shutdown()
}
