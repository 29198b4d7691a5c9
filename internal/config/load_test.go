package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const exampleDir = "../../testdata/config"

// inDir is how Load resolves a relative path written in a file in dir.
func inDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func TestLoadFullExample(t *testing.T) {
	got, err := Load(filepath.Join(exampleDir, "full.toml"))
	if err != nil {
		t.Fatalf("Load(full.toml) = %v", err)
	}
	want := Config{
		Hostname: "relaybox.lab.example.edu",
		DataDir:  inDir(exampleDir, "/var/lib/relaybox"),
		Listen: Listen{
			SMTP:            []string{"0.0.0.0:25"},
			AllowedNetworks: []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"},
			MaxMessageSize:  50 * MiB,
			MaxRecipients:   100,
			MaxConnections:  100,
			IdleTimeout:     Duration(5 * time.Minute),
			ShutdownGrace:   Duration(30 * time.Second),
			CommandTimeout:  Duration(5 * time.Minute),
			SessionTimeout:  Duration(30 * time.Minute),
			MinDataRate:     512,
			StressTimeout:   Duration(10 * time.Second),

			PerClientConnections: 50,
			PerClientRate:        50,
			PerClientBurst:       50,
			TLSCert:              TLSCertAuto,
			TLSProfile:           TLSProfileModern,
			SMTPS:                []string{"0.0.0.0:465"},
		},
		Auth: Auth{Mode: AuthUsers, Users: []AuthUser{
			{Name: "scanner", PasswordHash: "$2b$10$nRwEHKsFZCJ1zGcJ0FNaFwEaDPjzQNlVLWtKGFY90m54skdVdIk9p"},
			{Name: "copier-2nd-floor", PasswordHash: "$2b$10$3iHNzTpR8zDHmpq94GJg6GFl3ivqA5rTM9FZiOdww9IT3xhP1hzru"},
		}, Required: []string{"10.0.5.0/24"}},
		Policy: Policy{RecipientDomains: []string{"example.edu", "*.example.edu"}, Sender: "lab-devices@example.edu",
			RewriteFromHeader: true},
		Devices: []Device{
			{Name: "copier-2nd-floor", Networks: []string{"10.0.2.15/32"}, Sender: "copier-2nd-floor@example.edu"},
			{Name: "scanner-lab-3", AuthUser: "scanner", Networks: []string{"10.0.3.0/24"}, Sender: "lab3-scans@example.edu"},
		},
		Duplicates: Duplicates{MaxRepeats: 5, Window: Duration(10 * time.Minute)},
		Queue:      Queue{MaxSize: GiB, MaxAge: Duration(120 * time.Hour), Notify: "postmaster@example.edu"},
		Upstream: []Upstream{{
			Address:      "smtp.example.edu:587",
			TLS:          TLSStartTLS,
			CAFile:       filepath.Join(exampleDir, "campus-ca.pem"),
			ServerName:   "smtp.example.edu",
			Username:     "lab-relay",
			PasswordFile: filepath.Join(exampleDir, "upstream.password"),
			CertFile:     filepath.Join(exampleDir, "client.crt"),
			KeyFile:      filepath.Join(exampleDir, "client.key"),
		}, {
			Address:    "smtp2.example.edu:465",
			TLS:        TLSImplicit,
			ServerName: "smtp2.example.edu", // filled in from address
		}, {
			Address: "smtp.office365.com:587", TLS: TLSStartTLS, ServerName: "smtp.office365.com",
			Username: "lab-scanner@example.edu", Auth: AuthXOAuth2,
			OAuth: UpstreamOAuth{Flow: FlowRefreshToken, Tenant: "example.edu",
				TokenURL:         "https://login.microsoftonline.com/example.edu/oauth2/v2.0/token",
				DeviceAuthURL:    "https://login.microsoftonline.com/example.edu/oauth2/v2.0/devicecode",
				ClientID:         "00000000-0000-0000-0000-000000000000",
				ClientSecretFile: filepath.Join(exampleDir, "m365-client.secret"),
				RefreshTokenFile: filepath.Join(exampleDir, "m365-refresh.token"),
				Scopes:           []string{"https://outlook.office.com/SMTP.Send", "offline_access"}},
		}, {
			Address: "smtp.office365.com:587", TLS: TLSStartTLS, ServerName: "smtp.office365.com",
			Username: "lab-scanner@example.edu", Auth: AuthXOAuth2, // the default with [upstream.oauth]
			OAuth: UpstreamOAuth{Flow: FlowClientCredentials, Tenant: "example.edu",
				TokenURL:           "https://login.microsoftonline.com/example.edu/oauth2/v2.0/token", // from tenant
				DeviceAuthURL:      "https://login.microsoftonline.com/example.edu/oauth2/v2.0/devicecode",
				ClientID:           "00000000-0000-0000-0000-000000000000",
				CertificateFile:    filepath.Join(exampleDir, "client.crt"),
				CertificateKeyFile: filepath.Join(exampleDir, "client.key"),
				Scopes:             []string{"https://outlook.office365.com/.default"}},
		}, {
			Address: "smtp.gmail.com:587", TLS: TLSStartTLS, ServerName: "smtp.gmail.com",
			Username: "lab-scanner@example.edu", Auth: AuthOAuthBearer, // username from subject
			OAuth: UpstreamOAuth{Flow: FlowJWT,
				ServiceAccountFile: filepath.Join(exampleDir, "google-service-account.json"),
				Subject:            "lab-scanner@example.edu",
				Scopes:             []string{"https://mail.google.com/"}},
		}},
		Delivery: Delivery{
			Connections:    2,
			MinBackoff:     Duration(time.Minute),
			MaxBackoff:     Duration(time.Hour),
			ConnectTimeout: Duration(30 * time.Second),
			CommandTimeout: Duration(5 * time.Minute),
			DataTimeout:    Duration(10 * time.Minute),
			IdleClose:      Duration(30 * time.Second),
			UpstreamHold:   Duration(time.Minute),
		},
		LED:     LED{Pin: "GPIO17"},
		Console: Console{Device: "/dev/serial0", Baud: 115200},
		Admin:   Admin{Listen: "127.0.0.1:8025", PasswordFile: filepath.Join(exampleDir, "admin.password")},
		Log:     Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(full.toml):\n got %+v\nwant %+v", got, want)
	}
}

func TestFullExampleSetsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(exampleDir, "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, l := range scanKeyLines(string(data)) {
		inFile[l.plain] = true
	}
	for k := range knownKeys() {
		if !inFile[k] {
			t.Errorf("full.toml does not show key %s; admins copy it as the reference", k)
		}
	}
}

func TestLoadMinimalExample(t *testing.T) {
	c, err := Load(filepath.Join(exampleDir, "minimal.toml"))
	if err != nil {
		t.Fatalf("Load(minimal.toml) = %v", err)
	}
	want := Default()
	want.Policy.RecipientDomains = []string{"example.edu"}
	want.Upstream = []Upstream{{Address: "smtp.example.edu:587", TLS: TLSStartTLS, ServerName: "smtp.example.edu"}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(e.Error(), "nope.toml") {
		t.Fatalf("Load(missing) = %v; want *Error naming the file, wrapping fs.ErrNotExist", err)
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "relaybox.toml")
	src := "data_dir = \"spool\"\n[[upstream]]\naddress = \"smtp.example.edu:587\"\nca_file = \"ca.pem\"\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if c.DataDir != filepath.Join(dir, "spool") || c.Upstream[0].CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("paths not resolved against %s: data_dir %q, ca_file %q", dir, c.DataDir, c.Upstream[0].CAFile)
	}
	// Parse has no file, so the same relative ca_file is looked up in the
	// working directory, where it does not exist.
	_, err = Parse([]byte(src), "relaybox.toml")
	if err == nil || !strings.Contains(err.Error(), `relaybox.toml:4: upstream[0].ca_file: file "ca.pem" does not exist`) {
		t.Errorf("Parse = %v; want ca.pem not found on line 4", err)
	}
	// Without data_dir in the file, the default stays relative to the
	// working directory, as `relaybox run` documents.
	if err := os.WriteFile(file, []byte("log.level = \"debug\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(file); err != nil || c.DataDir != Default().DataDir {
		t.Errorf("data_dir = %q, %v; want the default %q", c.DataDir, err, Default().DataDir)
	}
}

// TestParseErrors checks the full message, so file, line and key are proven
// together: that is what an admin reads.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the error text
	}{
		{"unknown key with line", "[listen]\nsmtp = [\"127.0.0.1:2525\"]\n\nsmpt = [\"0.0.0.0:25\"]\n",
			[]string{"relaybox.toml:4: listen.smpt: unknown key; did you mean smtp?"}},
		{"unknown key in second upstream", "[[upstream]]\naddress = \"a.example.edu:587\"\n\n[[upstream]]\nadress = \"b.example.edu:587\"\n",
			[]string{"relaybox.toml:5: upstream[1].adress: unknown key; did you mean address?"}},
		{"unknown key in every upstream", "[[upstream]]\naddress = \"a.example.edu:587\"\nport = 1\n[[upstream]]\naddress = \"b.example.edu:587\"\nport = 2\n",
			[]string{"relaybox.toml:3: upstream[0].port: unknown key", "relaybox.toml:6: upstream[1].port: unknown key"}},
		{"unknown user key", "[auth]\nmode = \"users\"\n[[auth.users]]\nname = \"a\"\npassword = \"x\"\n",
			[]string{"relaybox.toml:5: auth.users[0].password: unknown key"}},
		{"unknown table reported once", "[smtpd]\nport = 25\nhost = \"x\"\n",
			[]string{"relaybox.toml:1: smtpd: unknown key"}},
		{"unknown top-level typo", "hostnme = \"x\"\n", []string{"relaybox.toml:1: hostnme: unknown key; did you mean hostname?"}},
		{"key under the wrong header", "[console]\nbaud = 9600\nlevel = \"debug\"\n",
			[]string{"relaybox.toml:3: console.level: unknown key here; level belongs in [log]"}},
		{"wrong header for upstream key", "[admin]\ninsecure = true\n",
			[]string{"relaybox.toml:2: admin.insecure: unknown key here; insecure belongs in [[upstream]]"}},
		{"unknown key in dotted form", "listen.smpt = [\"x\"]\n", []string{"relaybox.toml:1: listen.smpt: unknown key"}},
		{"unknown key in inline table", "upstream = [{address = \"a.example.edu:587\"}, {adress = \"b\"}]\n",
			[]string{"relaybox.toml:1: upstream[1].adress: unknown key"}},
		{"size with a space", "[listen]\nmax_message_size = \"50 MB\"\n",
			[]string{`relaybox.toml:2: listen.max_message_size: cannot parse "50 MB": use a size like 50MiB`}},
		{"negative duration", "[queue]\nmax_age = \"-5d\"\n",
			[]string{`relaybox.toml:2: queue.max_age: cannot parse "-5d": a duration cannot be negative`}},
		{"bare number duration", "[listen]\n\nidle_timeout = 300\n",
			[]string{`relaybox.toml:3: listen.idle_timeout: cannot parse "300": use a duration like`}},
		{"string for a number", "[listen]\nmax_recipients = \"many\"\n",
			[]string{"relaybox.toml:2: listen.max_recipients: incompatible types", "check quotes"}},
		{"string for a bool in second upstream", "[[upstream]]\naddress = \"a:1\"\n[[upstream]]\naddress = \"b:1\"\ninsecure = \"yes\"\n",
			[]string{"relaybox.toml:5: upstream[1].insecure: incompatible types"}},
		{"syntax error", "hostname = \"a\"\n[listen\nsmtp = []\n",
			[]string{"relaybox.toml:2: TOML syntax:"}},
		{"unterminated string", "hostname = \"relaybox\n",
			[]string{"relaybox.toml:1:"}},
		{"duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n",
			[]string{"relaybox.toml:3:", "already been defined"}},
		{"validation error gets its line", "[log]\nformat = \"text\"\n\nlevel = \"loud\"\n",
			[]string{`relaybox.toml:4: log.level: "loud" is not a level`}},
		{"missing key points at its table", "\n[[upstream]]\ntls = \"tls\"\n",
			[]string{"relaybox.toml:2: upstream[0].address: is required"}},
		{"tls none points at its line", "[[upstream]]\naddress = \"a.example.edu:25\"\n[[upstream]]\naddress = \"b.example.edu:25\"\ntls = \"none\"\n",
			[]string{`relaybox.toml:5: upstream[1].tls: "none" sends mail in clear; set insecure = true to allow it`}},
		{"network element on its own line", "[listen]\nallowed_networks = [\n  \"10.0.0.0/8\",\n  \"10.0.0.5\",\n]\n",
			[]string{`relaybox.toml:4: listen.allowed_networks[1]: "10.0.0.5" is an address, not a network; write "10.0.0.5/32"`}},
		{"default value has no line", "[listen]\nmax_recipients = 0\n[queue]\nmax_size = \"0\"\n",
			[]string{"relaybox.toml:2: listen.max_recipients:", "relaybox.toml:4: queue.max_size:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "relaybox.toml")
			if err == nil {
				t.Fatalf("Parse succeeded; want %q", tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not an *Error: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestUnknownTableReportsOnlyTheTable(t *testing.T) {
	_, err := Parse([]byte("[smtpd]\nport = 25\nhost = \"x\"\n"), "relaybox.toml")
	if ps := problemsOf(err); len(ps) != 1 || ps[0].Key != "smtpd" || ps[0].Line != 1 {
		t.Fatalf("got %v; want one error for smtpd on line 1", ps)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "relaybox.toml", Line: 12, Key: "listen.max_message_size", Msg: "m"}, "relaybox.toml:12: listen.max_message_size: m"},
		{Error{File: "relaybox.toml", Key: "queue.max_age", Msg: "m"}, "relaybox.toml: queue.max_age: m"},
		{Error{File: "relaybox.toml", Line: 3, Msg: "m"}, "relaybox.toml:3: m"},
		{Error{Key: "log.level", Msg: "m"}, "config: log.level: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}

func TestRedactedWriteTOML(t *testing.T) {
	c, err := Load(filepath.Join(exampleDir, "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	hashes := []string{c.Auth.Users[0].PasswordHash, c.Auth.Users[1].PasswordHash}

	r := c.Redacted()
	for i, u := range r.Auth.Users {
		if u.PasswordHash != RedactedText {
			t.Errorf("Redacted().Auth.Users[%d].PasswordHash = %q", i, u.PasswordHash)
		}
	}
	if c.Auth.Users[0].PasswordHash != hashes[0] {
		t.Fatal("Redacted() changed the original config")
	}
	if r.Upstream[0].PasswordFile != c.Upstream[0].PasswordFile {
		t.Errorf("Redacted() hid the password file path %q; paths are not secrets", c.Upstream[0].PasswordFile)
	}

	var buf bytes.Buffer
	if err := c.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range append(hashes, "$2b$", "example-upstream-secret", "example-admin-secret") {
		if strings.Contains(out, secret) {
			t.Errorf("WriteTOML output contains secret %q:\n%s", secret, out)
		}
	}
	if !strings.HasPrefix(out, "#") || !strings.Contains(strings.SplitN(out, "\n\n", 2)[0], "redacted") {
		t.Errorf("WriteTOML output lacks the header saying secrets are redacted:\n%s", out)
	}
	if !strings.Contains(out, filepath.Join(exampleDir, "upstream.password")) {
		t.Errorf("WriteTOML output does not name the password file")
	}

	// The redacted hashes are not bcrypt, so a full Parse refuses them (on
	// purpose); decoding alone must give back exactly the redacted config.
	back, _, err := decode(buf.Bytes(), "check-config")
	if err != nil {
		t.Fatalf("re-decode: %v\n%s", err, out)
	}
	back.normalize()
	if !reflect.DeepEqual(back, r) {
		t.Errorf("WriteTOML did not round-trip:\n got %+v\nwant %+v", back, r)
	}
	if _, err := Parse(buf.Bytes(), "check-config"); err == nil || !strings.Contains(err.Error(), "copied from check-config") {
		t.Errorf("Parse(redacted output) = %v; want the redacted-hash hint", err)
	}
}

func TestWriteTOMLRoundTrip(t *testing.T) {
	for _, name := range []string{"default", "minimal", "full without users"} {
		t.Run(name, func(t *testing.T) {
			var c Config
			switch name {
			case "default":
				c = Default()
			case "minimal":
				var err error
				if c, err = Load(filepath.Join(exampleDir, "minimal.toml")); err != nil {
					t.Fatal(err)
				}
			default:
				var err error
				if c, err = Load(filepath.Join(exampleDir, "full.toml")); err != nil {
					t.Fatal(err)
				}
				c.Auth = Auth{Mode: AuthAny}
			}
			var buf bytes.Buffer
			if err := c.WriteTOML(&buf); err != nil {
				t.Fatal(err)
			}
			back, err := Parse(buf.Bytes(), "check-config")
			if err != nil {
				t.Fatalf("Parse(WriteTOML) = %v\n%s", err, buf.String())
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, c)
			}
		})
	}
}

func TestRedactedIsADeepCopy(t *testing.T) {
	c := validBase()
	r := c.Redacted()
	r.Listen.SMTP[0] = "changed"
	r.Upstream[0].Address = "changed"
	r.Policy.RecipientDomains[0] = "changed"
	if c.Listen.SMTP[0] == "changed" || c.Upstream[0].Address == "changed" || c.Policy.RecipientDomains[0] == "changed" {
		t.Fatal("editing Redacted() changed the original")
	}
}

func TestDecodeDoesNotShareDefaults(t *testing.T) {
	// The decoder writes into existing slices when they are large enough;
	// each Parse must start from fresh defaults.
	if _, err := Parse([]byte("[listen]\nallowed_networks = [\"192.168.9.0/24\"]\n"), "a.toml"); err != nil {
		t.Fatal(err)
	}
	if got := Default().Listen.AllowedNetworks[0]; got != "127.0.0.0/8" {
		t.Fatalf("Default() was changed by a Parse: %q", got)
	}
}

func TestLoadTLSKeys(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "relaybox.toml")
	data := "[listen]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_profile = \"legacy\"\nsmtps = [\"127.0.0.1:4650\"]\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	l := c.Listen
	if l.TLSCert != filepath.Join(dir, "cert.pem") || l.TLSKey != filepath.Join(dir, "key.pem") ||
		l.TLSProfile != TLSProfileLegacy || !reflect.DeepEqual(l.SMTPS, []string{"127.0.0.1:4650"}) {
		t.Errorf("listen = %+v; want the TLS keys, files relative to the config file", l)
	}

	// "auto" is a keyword, not a file next to the config.
	if err := os.WriteFile(file, []byte("data_dir = \"d\"\n[listen]\ntls_cert = \"auto\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(file); err != nil {
		t.Fatalf("Load(auto) = %v", err)
	}
	if c.Listen.TLSCert != TLSCertAuto || c.TLSDir() != filepath.Join(dir, "d", "tls") {
		t.Errorf("tls_cert = %q, TLSDir() = %q", c.Listen.TLSCert, c.TLSDir())
	}
	if d := Default(); d.Listen.TLSCert != "" || len(d.Listen.SMTPS) != 0 || d.Listen.TLSProfile != TLSProfileModern {
		t.Errorf("Default listen TLS = %q %v %q; want off, modern", d.Listen.TLSCert, d.Listen.SMTPS, d.Listen.TLSProfile)
	}
}
