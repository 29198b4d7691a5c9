package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const goodHash = "$2b$10$nRwEHKsFZCJ1zGcJ0FNaFwEaDPjzQNlVLWtKGFY90m54skdVdIk9p"

// validBase is Default plus one upstream and a domain: what a real box runs.
func validBase() Config {
	c := Default()
	c.Policy.RecipientDomains = []string{"example.edu"}
	c.Upstream = []Upstream{{Address: "smtp.example.edu:587", TLS: TLSStartTLS}}
	return c
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if err := validBase().Validate(); err != nil {
		t.Fatalf("validBase().Validate() = %v", err)
	}
	if got := Default().SpoolPath(); got != filepath.Join("relaybox-data", "spool.db") {
		t.Errorf("SpoolPath() = %q", got)
	}
}

// problemsOf returns the *Error values inside a Validate result.
func problemsOf(err error) []*Error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, problemsOf(e)...)
		}
		return out
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}

func TestValidateRules(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.pem")
	if err := os.WriteFile(existing, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		mutate  func(c *Config)
		key     string // the key the error must name
		wantMsg string // substring of the message
	}{
		{"empty hostname", func(c *Config) { c.Hostname = "" }, "hostname", "set the name"},
		{"empty data_dir", func(c *Config) { c.DataDir = "" }, "data_dir", "spool.db"},
		{"no listen address", func(c *Config) { c.Listen.SMTP = nil }, "listen.smtp", "at least one"},
		{"listen without port", func(c *Config) { c.Listen.SMTP = []string{"127.0.0.1:2525", "0.0.0.0"} }, "listen.smtp[1]", "not host:port"},
		{"listen port zero", func(c *Config) { c.Listen.SMTP = []string{"127.0.0.1:0"} }, "listen.smtp[0]", "1 to 65535"},
		{"listen port too big", func(c *Config) { c.Listen.SMTP = []string{"127.0.0.1:70000"} }, "listen.smtp[0]", "1 to 65535"},
		{"listen port by name", func(c *Config) { c.Listen.SMTP = []string{"127.0.0.1:smtp"} }, "listen.smtp[0]", "must be a number"},
		{"no networks", func(c *Config) { c.Listen.AllowedNetworks = []string{} }, "listen.allowed_networks", "every client would be refused"},
		{"bare IPv4", func(c *Config) { c.Listen.AllowedNetworks = []string{"10.0.0.5"} }, "listen.allowed_networks[0]", `write "10.0.0.5/32"`},
		{"bare IPv6", func(c *Config) { c.Listen.AllowedNetworks = []string{"::1", "fd00::7"} }, "listen.allowed_networks[1]", `write "fd00::7/128"`},
		{"junk network", func(c *Config) { c.Listen.AllowedNetworks = []string{"lab"} }, "listen.allowed_networks[0]", "CIDR"},
		{"zero message size", func(c *Config) { c.Listen.MaxMessageSize = 0 }, "listen.max_message_size", "at most 1GiB"},
		{"huge message size", func(c *Config) { c.Listen.MaxMessageSize = 2 * GiB }, "listen.max_message_size", "at most 1GiB"},
		{"zero recipients", func(c *Config) { c.Listen.MaxRecipients = 0 }, "listen.max_recipients", "1 to 1000"},
		{"too many recipients", func(c *Config) { c.Listen.MaxRecipients = 1001 }, "listen.max_recipients", "1 to 1000"},
		{"zero connections", func(c *Config) { c.Listen.MaxConnections = 0 }, "listen.max_connections", "at least 1"},
		{"zero idle timeout", func(c *Config) { c.Listen.IdleTimeout = 0 }, "listen.idle_timeout", "above 0"},
		{"negative grace", func(c *Config) { c.Listen.ShutdownGrace = -1 }, "listen.shutdown_grace", "negative"},
		{"negative per-client connections", func(c *Config) { c.Listen.PerClientConnections = -1 }, "listen.per_client_connections", "0 (no limit)"},
		{"negative per-client rate", func(c *Config) { c.Listen.PerClientRate = -0.5 }, "listen.per_client_rate", "messages per second"},
		{"rate without burst", func(c *Config) { c.Listen.PerClientBurst = 0 }, "listen.per_client_burst", "at least 1"},
		{"per-client takes every slot", func(c *Config) { c.Listen.PerClientConnections = 100 }, "listen.per_client_connections", "not below max_connections"},
		{"zero command timeout", func(c *Config) { c.Listen.CommandTimeout = 0 }, "listen.command_timeout", "above 0"},
		{"session shorter than a command", func(c *Config) { c.Listen.SessionTimeout = Duration(time.Minute) }, "listen.session_timeout", "shorter than command_timeout"},
		{"zero data rate", func(c *Config) { c.Listen.MinDataRate = 0 }, "listen.min_data_rate", "slowest device"},
		{"stress longer than a command", func(c *Config) { c.Listen.StressTimeout = Duration(time.Hour) }, "listen.stress_timeout", "at most command_timeout"},
		{"auth required with auth off", func(c *Config) { c.Auth.Required = []string{"10.0.5.0/24"} }, "auth.required", "auth.mode is off"},
		{"auth required bad network", func(c *Config) { c.Auth.Mode = AuthAny; c.Auth.Required = []string{"lab"} }, "auth.required[0]", "CIDR"},
		{"tls cert without key", func(c *Config) { c.Listen.TLSCert = existing }, "listen.tls_key", "private key"},
		{"tls key without cert", func(c *Config) { c.Listen.TLSKey = existing }, "listen.tls_key", "tls_cert is empty"},
		{"tls cert missing", func(c *Config) { c.Listen.TLSCert, c.Listen.TLSKey = missing, existing }, "listen.tls_cert", "does not exist"},
		{"tls key missing", func(c *Config) { c.Listen.TLSCert, c.Listen.TLSKey = existing, missing }, "listen.tls_key", "does not exist"},
		{"auto with a key", func(c *Config) { c.Listen.TLSCert, c.Listen.TLSKey = TLSCertAuto, existing }, "listen.tls_key", "must be empty"},
		{"unknown tls profile", func(c *Config) { c.Listen.TLSProfile = "tls1.0" }, "listen.tls_profile", "modern"},
		{"empty tls profile", func(c *Config) { c.Listen.TLSProfile = "" }, "listen.tls_profile", "legacy"},
		{"smtps without cert", func(c *Config) { c.Listen.SMTPS = []string{"0.0.0.0:465"} }, "listen.smtps", "set listen.tls_cert"},
		{"smtps without port", func(c *Config) {
			c.Listen.TLSCert, c.Listen.SMTPS = TLSCertAuto, []string{"0.0.0.0:465", "0.0.0.0"}
		}, "listen.smtps[1]", "not host:port"},
		{"device without name", func(c *Config) { c.Devices = []Device{{Networks: []string{"10.0.0.5/32"}}} }, "device[0].name", "give the device a name"},
		{"device name twice", func(c *Config) {
			c.Devices = []Device{{Name: "a", AuthUser: "x"}, {Name: "a", AuthUser: "y"}}
		}, "device[1].name", "unique"},
		{"device matching nothing", func(c *Config) { c.Devices = []Device{{Name: "a"}} }, "device[0]", "matches nothing"},
		{"device bare address", func(c *Config) {
			c.Devices = []Device{{Name: "a", Networks: []string{"10.0.0.0/8", "10.0.0.5"}}}
		}, "device[0].networks[1]", `write "10.0.0.5/32"`},
		{"device sender without domain", func(c *Config) { c.Devices = []Device{{Name: "a", AuthUser: "x", Sender: "copier"}} }, "device[0].sender", "not one"},
		{"duplicates without repeats", func(c *Config) { c.Duplicates.MaxRepeats = 0 }, "duplicates.max_repeats", "at least 1"},
		{"negative window", func(c *Config) { c.Duplicates.Window = -1 }, "duplicates.window", "negative"},
		{"auth mode", func(c *Config) { c.Auth.Mode = "plain" }, "auth.mode", "off, any or users"},
		{"users without users", func(c *Config) { c.Auth.Mode = AuthUsers }, "auth.users", "at least one"},
		{"user without name", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{PasswordHash: goodHash}}}
		}, "auth.users[0].name", "give the device account a name"},
		{"duplicate user", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"a", goodHash}, {"a", goodHash}}}
		}, "auth.users[1].name", "unique"},
		{"plain password", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"scanner", "hunter2"}}}
		}, "auth.users[0].password_hash", "relaybox hash-password"},
		{"md5 hash", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"scanner", "$1$abc$" + strings.Repeat("x", 53)}}}
		}, "auth.users[0].password_hash", "not a bcrypt hash"},
		{"redacted hash pasted back", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"scanner", RedactedText}}}
		}, "auth.users[0].password_hash", "check-config"},
		{"empty domain", func(c *Config) { c.Policy.RecipientDomains = []string{"example.edu", ""} }, "policy.recipient_domains[1]", "is empty"},
		{"domain with space", func(c *Config) { c.Policy.RecipientDomains = []string{"example.edu lab.example.edu"} }, "policy.recipient_domains[0]", "space"},
		{"domain with @", func(c *Config) { c.Policy.RecipientDomains = []string{"@example.edu"} }, "policy.recipient_domains[0]", "'@'"},
		{"wildcard twice", func(c *Config) { c.Policy.RecipientDomains = []string{"*.*.example.edu"} }, "policy.recipient_domains[0]", "only once"},
		{"wildcard inside", func(c *Config) { c.Policy.RecipientDomains = []string{"lab.*.example.edu"} }, "policy.recipient_domains[0]", "only once, at the start"},
		{"bare wildcard", func(c *Config) { c.Policy.RecipientDomains = []string{"*"} }, "policy.recipient_domains[0]", "only once"},
		{"wildcard without domain", func(c *Config) { c.Policy.RecipientDomains = []string{"*."} }, "policy.recipient_domains[0]", "no domain"},
		{"trailing dot", func(c *Config) { c.Policy.RecipientDomains = []string{"example.edu."} }, "policy.recipient_domains[0]", "trailing dot"},
		{"double dot", func(c *Config) { c.Policy.RecipientDomains = []string{"example..edu"} }, "policy.recipient_domains[0]", "empty label"},
		{"sender without @", func(c *Config) { c.Policy.Sender = "lab-devices" }, "policy.sender", "not one"},
		{"sender with two @", func(c *Config) { c.Policy.Sender = "a@b@example.edu" }, "policy.sender", "has 2 '@'"},
		{"sender empty domain", func(c *Config) { c.Policy.Sender = "lab@" }, "policy.sender", "both sides"},
		{"zero quota", func(c *Config) { c.Queue.MaxSize = 0 }, "queue.max_size", "above 0"},
		{"zero max age", func(c *Config) { c.Queue.MaxAge = 0 }, "queue.max_age", "above 0"},
		{"notify without @", func(c *Config) { c.Queue.Notify = "postmaster" }, "queue.notify", "postmaster@example.edu"},
		{"upstream without address", func(c *Config) { c.Upstream[0].Address = "" }, "upstream[0].address", "is required"},
		{"upstream without port", func(c *Config) {
			c.Upstream = append(c.Upstream, Upstream{Address: "smtp2.example.edu"})
		}, "upstream[1].address", "not host:port"},
		{"upstream without host", func(c *Config) { c.Upstream[0].Address = ":587" }, "upstream[0].address", "no host"},
		{"upstream tls junk", func(c *Config) {
			c.Upstream = append(c.Upstream, Upstream{Address: "b.example.edu:587", TLS: "ssl"})
		}, "upstream[1].tls", "starttls (port 587), tls (port 465) or none"},
		{"tls none without insecure", func(c *Config) { c.Upstream[0].TLS = TLSNone }, "upstream[0].tls",
			`"none" sends mail in clear; set insecure = true to allow it`},
		{"username without password file", func(c *Config) { c.Upstream[0].Username = "lab" }, "upstream[0].password_file", "go together"},
		{"password file without username", func(c *Config) { c.Upstream[0].PasswordFile = existing }, "upstream[0].password_file", "go together"},
		{"cert without key", func(c *Config) { c.Upstream[0].CertFile = existing }, "upstream[0].key_file", "go together"},
		{"missing ca file", func(c *Config) { c.Upstream[0].CAFile = missing }, "upstream[0].ca_file", missing},
		{"missing password file", func(c *Config) {
			c.Upstream[0].Username, c.Upstream[0].PasswordFile = "lab", missing
		}, "upstream[0].password_file", "does not exist"},
		{"missing cert file", func(c *Config) {
			c.Upstream[0].CertFile, c.Upstream[0].KeyFile = missing, existing
		}, "upstream[0].cert_file", missing},
		{"key file is a directory", func(c *Config) {
			c.Upstream[0].CertFile, c.Upstream[0].KeyFile = existing, dir
		}, "upstream[0].key_file", "is a directory"},
		{"zero connections upstream", func(c *Config) { c.Delivery.Connections = 0 }, "delivery.connections", "above 0"},
		{"zero min backoff", func(c *Config) { c.Delivery.MinBackoff = 0 }, "delivery.min_backoff", "above 0"},
		{"zero max backoff", func(c *Config) { c.Delivery.MaxBackoff = 0 }, "delivery.max_backoff", "above 0"},
		{"zero connect timeout", func(c *Config) { c.Delivery.ConnectTimeout = 0 }, "delivery.connect_timeout", "above 0"},
		{"zero command timeout", func(c *Config) { c.Delivery.CommandTimeout = 0 }, "delivery.command_timeout", "above 0"},
		{"zero data timeout", func(c *Config) { c.Delivery.DataTimeout = 0 }, "delivery.data_timeout", "above 0"},
		{"zero idle close", func(c *Config) { c.Delivery.IdleClose = 0 }, "delivery.idle_close", "above 0"},
		{"zero upstream hold", func(c *Config) { c.Delivery.UpstreamHold = 0 }, "delivery.upstream_hold", "above 0"},
		{"backoff inverted", func(c *Config) {
			c.Delivery.MinBackoff, c.Delivery.MaxBackoff = Duration(2*time.Hour), Duration(time.Hour)
		}, "delivery.min_backoff", "more than delivery.max_backoff"},
		{"zero baud", func(c *Config) { c.Console.Baud = 0 }, "console.baud", "115200"},
		{"admin listen junk", func(c *Config) { c.Admin.Listen = "8025" }, "admin.listen", "not host:port"},
		{"admin on LAN without password", func(c *Config) { c.Admin.Listen = "0.0.0.0:8025" }, "admin.password_file",
			"admin.listen 0.0.0.0:8025 is reachable from the LAN; set admin.password_file"},
		{"admin on all interfaces without password", func(c *Config) { c.Admin.Listen = ":8025" }, "admin.password_file", "reachable from the LAN"},
		{"admin on a LAN name without password", func(c *Config) { c.Admin.Listen = "relaybox.lan:8025" }, "admin.password_file", "reachable from the LAN"},
		{"admin password file missing", func(c *Config) { c.Admin.PasswordFile = missing }, "admin.password_file", missing},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level", "debug, info, warn or error"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", "text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			tt.mutate(&c)
			ps := problemsOf(c.Validate())
			if len(ps) == 0 {
				t.Fatalf("Validate() = nil; want an error about %s", tt.key)
			}
			for _, p := range ps {
				if p.Key == tt.key && strings.Contains(p.Msg, tt.wantMsg) {
					if !strings.Contains(p.Error(), tt.key) {
						t.Errorf("Error() = %q does not name %s", p.Error(), tt.key)
					}
					return
				}
			}
			t.Errorf("no error for %s containing %q; got %v", tt.key, tt.wantMsg, ps)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"no recipient domains (cmd warns)", func(c *Config) { c.Policy.RecipientDomains = nil }},
		{"no upstream (mail is held)", func(c *Config) { c.Upstream = nil }},
		{"wildcard domain", func(c *Config) { c.Policy.RecipientDomains = []string{"*.example.edu", "example.edu"} }},
		{"listen on all interfaces", func(c *Config) { c.Listen.SMTP = []string{":25", "[::]:25"} }},
		{"short idle timeout for tests", func(c *Config) { c.Listen.IdleTimeout = Duration(time.Second) }},
		{"tls none when insecure", func(c *Config) { c.Upstream[0].TLS, c.Upstream[0].Insecure = TLSNone, true }},
		{"empty tls means starttls", func(c *Config) { c.Upstream[0].TLS = "" }},
		{"upstream auth", func(c *Config) { c.Upstream[0].Username, c.Upstream[0].PasswordFile = "lab", pw }},
		{"users mode", func(c *Config) {
			c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"scanner", goodHash}, {"copier", "$2y$12$" + goodHash[7:]}}}
		}},
		{"tls auto with smtps", func(c *Config) { c.Listen.TLSCert, c.Listen.SMTPS = TLSCertAuto, []string{":465"} }},
		{"tls files, legacy profile", func(c *Config) {
			c.Listen.TLSCert, c.Listen.TLSKey, c.Listen.TLSProfile = pw, pw, TLSProfileLegacy
		}},
		{"admin disabled", func(c *Config) { c.Admin.Listen = "" }},
		{"admin on localhost", func(c *Config) { c.Admin.Listen = "localhost:8025" }},
		{"admin on IPv6 loopback", func(c *Config) { c.Admin.Listen = "[::1]:8025" }},
		{"admin on 127.0.0.2", func(c *Config) { c.Admin.Listen = "127.0.0.2:8025" }},
		{"admin on LAN with password", func(c *Config) { c.Admin.Listen, c.Admin.PasswordFile = "0.0.0.0:8025", pw }},
		{"equal backoffs", func(c *Config) { c.Delivery.MinBackoff = c.Delivery.MaxBackoff }},
		{"largest message", func(c *Config) { c.Listen.MaxMessageSize = GiB }},
		{"large quota on 64-bit", func(c *Config) { c.Queue.MaxSize = 64 * GiB }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validBase()
			tt.mutate(&c)
			// 64-bit rules: the 32-bit quota cap has its own test, and
			// this suite also runs under qemu-arm.
			if ps := c.problems(64); len(ps) != 0 {
				t.Errorf("problems(64) = %v; want none", ps)
			}
		})
	}
}

func TestQueueSizeOn32Bit(t *testing.T) {
	c := validBase()
	c.Queue.MaxSize = 2 * GiB
	if ps := c.problems(64); len(ps) != 0 {
		t.Fatalf("64-bit: %v", ps)
	}
	ps := c.problems(32)
	if len(ps) != 1 || ps[0].Key != "queue.max_size" || !strings.Contains(ps[0].Msg, "2 GiB") {
		t.Fatalf("32-bit: %v; want one queue.max_size error explaining the 2 GiB map", ps)
	}
	c.Queue.MaxSize = GiB
	if ps := c.problems(32); len(ps) != 0 {
		t.Fatalf("32-bit with 1GiB: %v", ps)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validBase()
	c.Log.Level = "loud"
	c.Console.Baud = -1
	c.Upstream[0].TLS = "ssl"
	ps := problemsOf(c.Validate())
	if len(ps) != 3 {
		t.Fatalf("got %d problems, want 3: %v", len(ps), ps)
	}
	msg := c.Validate().Error()
	for _, k := range []string{"log.level", "console.baud", "upstream[0].tls"} {
		if !strings.Contains(msg, k) {
			t.Errorf("joined error %q does not mention %s", msg, k)
		}
	}
}

func TestPasswordHashNeverEchoed(t *testing.T) {
	c := validBase()
	c.Auth = Auth{Mode: AuthUsers, Users: []AuthUser{{"scanner", "my-plain-password"}}}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "my-plain-password") {
		t.Fatalf("Validate() = %v; want an error that does not repeat the value", err)
	}
}

// Flood limits and duplicate detection switch off with 0, and the device
// table reads back as written.
func TestParseDevicesAndLimits(t *testing.T) {
	src := `
[listen]
per_client_connections = 0
per_client_rate = 0.5
per_client_burst = 3
[policy]
rewrite_from_header = true
[[device]]
name = "ups"
networks = ["10.0.9.0/24", "fd00::/64"]
[[device]]
name = "ricoh"
auth_user = "ricoh"
sender = "ricoh@example.edu"
[duplicates]
max_repeats = 0
window = "0"
`
	c, err := Parse([]byte(src), "test.toml")
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if l := c.Listen; l.PerClientConnections != 0 || l.PerClientRate != 0.5 || l.PerClientBurst != 3 {
		t.Errorf("listen limits = %+v", l)
	}
	want := []Device{{Name: "ups", Networks: []string{"10.0.9.0/24", "fd00::/64"}},
		{Name: "ricoh", AuthUser: "ricoh", Sender: "ricoh@example.edu"}}
	if !reflect.DeepEqual(c.Devices, want) || !c.Policy.RewriteFromHeader {
		t.Errorf("devices = %+v, rewrite_from_header = %v", c.Devices, c.Policy.RewriteFromHeader)
	}
	if c.Duplicates != (Duplicates{}) {
		t.Errorf("duplicates = %+v, want off", c.Duplicates)
	}
	r := c.Redacted()
	r.Devices[0].Networks[0] = "changed"
	if c.Devices[0].Networks[0] != "10.0.9.0/24" {
		t.Error("Redacted shares the device networks with the original")
	}

	_, err = Parse([]byte("[[device]]\nname = \"x\"\nnetwork = [\"10.0.0.0/8\"]\n"), "typo.toml")
	if err == nil || !strings.Contains(err.Error(), "networks") {
		t.Errorf("a misspelt device key: %v, want an error suggesting networks", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8025": true, "localhost:1": true, "[::1]:8025": true, "127.0.0.2:1": true,
		"[::ffff:127.0.0.1]:1": true, "[::]:8025": false, ":8025": false, "192.168.1.2:80": false, "bad": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%s) = %v", addr, got)
		}
	}
}

func TestValidateUpstreamOAuth(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "client.secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	refresh := filepath.Join(dir, "refresh.token") // need not exist yet
	ok := UpstreamOAuth{Flow: FlowRefreshToken, TokenURL: "https://login.example.com/token", ClientID: "c", RefreshTokenFile: refresh}
	for _, tc := range []struct {
		name string
		edit func(u *Upstream)
		key  string // "" = valid
		msg  string
	}{
		{"refresh_token ok", func(u *Upstream) {}, "", ""},
		{"oauthbearer ok", func(u *Upstream) { u.Auth = AuthOAuthBearer }, "", ""},
		{"loopback http endpoint", func(u *Upstream) { u.OAuth.TokenURL = "http://127.0.0.1:8080/token" }, "", ""},
		{"plain http endpoint", func(u *Upstream) { u.OAuth.TokenURL = "http://login.example.com/token" }, "upstream[0].oauth.token_url", "must use https"},
		{"no username", func(u *Upstream) { u.Username = "" }, "upstream[0].username", "the mailbox to send as"},
		{"insecure", func(u *Upstream) { u.Insecure = true }, "upstream[0].insecure", "needs verified TLS"},
		{"tls none", func(u *Upstream) { u.TLS, u.Insecure = TLSNone, true }, "upstream[0].insecure", "needs verified TLS"},
		{"password too", func(u *Upstream) { u.PasswordFile = secret }, "upstream[0].password_file", "not used with auth"},
		{"no flow", func(u *Upstream) { u.OAuth = UpstreamOAuth{} }, "upstream[0].oauth.flow", "is required"},
		{"bad flow", func(u *Upstream) { u.OAuth.Flow = "password" }, "upstream[0].oauth.flow", "not a flow"},
		{"bad auth", func(u *Upstream) { u.Auth = "cram-md5" }, "upstream[0].auth", "not a mechanism"},
		{"plain with oauth table", func(u *Upstream) { u.Auth = AuthPlain; u.PasswordFile = secret }, "upstream[0].auth", "does not use [upstream.oauth]"},
		{"no refresh file", func(u *Upstream) { u.OAuth.RefreshTokenFile = "" }, "upstream[0].oauth.refresh_token_file", "oauth-login"},
		{"refresh dir missing", func(u *Upstream) { u.OAuth.RefreshTokenFile = filepath.Join(dir, "no", "rt") }, "upstream[0].oauth.refresh_token_file", "does not exist"},
		{"cc without secret", func(u *Upstream) { u.OAuth.Flow = FlowClientCredentials }, "upstream[0].oauth.client_secret_file", "certificate_file"},
		{"cc with secret", func(u *Upstream) { u.OAuth.Flow, u.OAuth.ClientSecretFile = FlowClientCredentials, secret }, "", ""},
		{"cc secret missing", func(u *Upstream) {
			u.OAuth.Flow, u.OAuth.ClientSecretFile = FlowClientCredentials, filepath.Join(dir, "gone")
		}, "upstream[0].oauth.client_secret_file", "does not exist"},
		{"jwt without subject", func(u *Upstream) { u.OAuth = UpstreamOAuth{Flow: FlowJWT, ServiceAccountFile: secret} }, "upstream[0].oauth.subject", "mailbox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase()
			u := &c.Upstream[0]
			u.Username, u.Auth, u.OAuth = "scanner@example.edu", AuthXOAuth2, ok
			tc.edit(u)
			ps := problemsOf(c.Validate())
			if tc.key == "" {
				if len(ps) > 0 {
					t.Fatalf("want valid, got %v", ps)
				}
				return
			}
			for _, p := range ps {
				if p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("want %s: ...%s..., got %v", tc.key, tc.msg, ps)
		})
	}
}

func TestParseOAuthDefaults(t *testing.T) {
	c, err := Parse([]byte(`
[[upstream]]
address = "smtp.office365.com:587"
username = "scanner@example.edu"
[upstream.oauth]
flow = "refresh_token"
tenant = "contoso.onmicrosoft.com"
client_id = "abc"
refresh_token_file = "`+filepath.Join(t.TempDir(), "rt")+`"
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstream[0]
	if u.Auth != AuthXOAuth2 || u.OAuth.TokenURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" ||
		u.OAuth.DeviceAuthURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode" ||
		!reflect.DeepEqual(u.OAuth.Scopes, []string{"https://outlook.office.com/SMTP.Send", "offline_access"}) {
		t.Fatalf("defaults not filled: %+v", u)
	}
	// An error in the oauth table names its line.
	_, err = Parse([]byte("[[upstream]]\naddress = \"smtp.office365.com:587\"\nusername = \"a@b\"\n[upstream.oauth]\nflow = \"pasword\"\n"), "test.toml")
	if err == nil || !strings.Contains(err.Error(), "test.toml:5: upstream[0].oauth.flow") {
		t.Fatalf("err = %v", err)
	}
}
