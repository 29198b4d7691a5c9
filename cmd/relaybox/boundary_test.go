package main

import (
	"os/exec"
	"strings"
	"testing"

	"relaybox/internal/config"
	"relaybox/internal/deliver"
)

// TestOnlyCmdImportsConfig holds the config boundary: packages below cmd
// take their own options and cmd translates, so no package under internal/
// other than config itself imports config, not even from its tests.
func TestOnlyCmdImportsConfig(t *testing.T) {
	const cfgPkg = "relaybox/internal/config"
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
		"relaybox/internal/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list listed only %d packages:\n%s", len(lines), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if f[0] == cfgPkg {
			continue
		}
		for _, imp := range f[1:] {
			if imp == cfgPkg {
				t.Errorf("%s imports %s; give it its own options and translate in cmd/relaybox", f[0], cfgPkg)
				break
			}
		}
	}
}

// TestUpstreamTranslation checks that every field and tls mode of an
// [[upstream]] table reaches the delivery client's options.
func TestUpstreamTranslation(t *testing.T) {
	for mode, want := range map[string]deliver.TLSMode{
		config.TLSStartTLS: deliver.TLSStartTLS, config.TLSImplicit: deliver.TLSImplicit,
		config.TLSNone: deliver.TLSNone, "": "",
	} {
		var cfg config.Config
		cfg.Hostname = "relaybox.lab.test"
		cfg.Delivery.ConnectTimeout = config.Duration(1)
		cfg.Delivery.CommandTimeout = config.Duration(2)
		cfg.Delivery.DataTimeout = config.Duration(3)
		u := config.Upstream{Address: "a:587", TLS: mode, Insecure: true, CAFile: "ca", ServerName: "sn",
			Username: "user", PasswordFile: "pw", CertFile: "cert", KeyFile: "key", Auth: "login"}
		got := upstreamOptions(cfg, []config.Upstream{u}, nil, nil)
		wantUp := deliver.Upstream{Address: "a:587", TLS: want, Insecure: true, CAFile: "ca", ServerName: "sn",
			Username: "user", PasswordFile: "pw", CertFile: "cert", KeyFile: "key", Auth: "login"}
		if len(got.Upstreams) != 1 || got.Upstreams[0] != wantUp {
			t.Errorf("tls %q: upstream = %+v, want %+v", mode, got.Upstreams, wantUp)
		}
		if got.Hostname != cfg.Hostname || got.ConnectTimeout != 1 || got.CommandTimeout != 2 || got.DataTimeout != 3 {
			t.Errorf("tls %q: options = %+v", mode, got)
		}
	}
}

// TestAuthTranslation checks that every upstream.auth the config accepts
// means the same mechanism to the delivery client.
func TestAuthTranslation(t *testing.T) {
	for auth, want := range map[string]deliver.AuthMech{
		"": "", config.AuthPlain: deliver.AuthPlain, config.AuthLogin: deliver.AuthLogin,
		config.AuthXOAuth2: deliver.AuthXOAuth2, config.AuthOAuthBearer: deliver.AuthOAuthBearer,
	} {
		got := upstreamOptions(config.Config{}, []config.Upstream{{Address: "a:587", Auth: auth}}, nil, nil)
		if got.Upstreams[0].Auth != want {
			t.Errorf("auth %q became %q, want %q", auth, got.Upstreams[0].Auth, want)
		}
	}
}
