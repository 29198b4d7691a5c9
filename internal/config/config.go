// Package config turns relaybox.toml into a validated Config. Every error
// names the key (and the line, where the TOML library reports one) and says
// what to do.
package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
)

// Size is a byte count written in the file as "50MiB", "1GiB", "512KiB" or a
// plain number of bytes. The config helper implements encoding.TextUnmarshaler.
type Size int64

// Duration is a time.Duration written in the file as "120h", "5m", "30s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole validated configuration. Sizes are bytes, durations are
// time.Duration; the TOML file spells them "50MiB" and "120h".
type Config struct {
	Hostname string `toml:"hostname"` // greeting / EHLO name; default: OS hostname
	DataDir  string `toml:"data_dir"` // spool.db lives here

	Listen     Listen     `toml:"listen"`
	Auth       Auth       `toml:"auth"`
	Policy     Policy     `toml:"policy"`
	Devices    []Device   `toml:"device"`
	Duplicates Duplicates `toml:"duplicates"`
	Queue      Queue      `toml:"queue"`
	Upstream   []Upstream `toml:"upstream"`
	Delivery   Delivery   `toml:"delivery"`
	LED        LED        `toml:"led"`
	Console    Console    `toml:"console"`
	Admin      Admin      `toml:"admin"`
	Log        Log        `toml:"log"`
}

// Listen is the LAN listener that devices talk to.
type Listen struct {
	SMTP            []string `toml:"smtp"`             // host:port list
	AllowedNetworks []string `toml:"allowed_networks"` // CIDRs; others get 554 at greeting
	MaxMessageSize  Size     `toml:"max_message_size"` // SIZE advertised; 552 beyond
	MaxRecipients   int      `toml:"max_recipients"`   // 452 4.5.3 beyond
	MaxConnections  int      `toml:"max_connections"`  // all clients together; 421 beyond
	IdleTimeout     Duration `toml:"idle_timeout"`     // at least 5m: devices are slow
	// Limits on slow clients, so trickled bytes cannot hold a slot for ever.
	CommandTimeout Duration `toml:"command_timeout"` // one command line, from its first byte
	SessionTimeout Duration `toml:"session_timeout"` // a whole session, plus its bytes at min_data_rate
	MinDataRate    Size     `toml:"min_data_rate"`   // bytes a second a message must keep up
	StressTimeout  Duration `toml:"stress_timeout"`  // every limit while all connection slots are taken
	ShutdownGrace  Duration `toml:"shutdown_grace"`  // how long open sessions may finish on stop

	// Flood limits per client address, for stuck devices, not busy ones.
	PerClientConnections int     `toml:"per_client_connections"` // open at once; 421 beyond; 0 = no limit
	PerClientRate        float64 `toml:"per_client_rate"`        // messages per second, sustained; 451 beyond; 0 = no limit
	PerClientBurst       int     `toml:"per_client_burst"`       // messages at once before the rate applies

	// Inbound TLS, off unless TLSCert is set: STARTTLS on SMTP, and
	// implicit TLS on SMTPS.
	TLSCert    string   `toml:"tls_cert"`    // PEM file, or "auto": self-signed, kept in <data_dir>/tls
	TLSKey     string   `toml:"tls_key"`     // PEM file; empty with "auto"
	TLSProfile string   `toml:"tls_profile"` // modern (TLS 1.2+) | legacy (TLS 1.0+ for old devices)
	SMTPS      []string `toml:"smtps"`       // implicit-TLS host:port list, e.g. ["0.0.0.0:465"]
}

// Auth is device authentication on the LAN listener.
type Auth struct {
	Mode  string     `toml:"mode"` // off | any | users
	Users []AuthUser `toml:"users"`
	// Required: clients in these networks must AUTH before MAIL (530).
	Required []string `toml:"required"`
}

// AuthUser is one device account; the password is stored as a bcrypt hash.
type AuthUser struct {
	Name         string `toml:"name"`
	PasswordHash string `toml:"password_hash"` // secret: redacted in output
}

// Policy is the relay policy.
type Policy struct {
	RecipientDomains []string `toml:"recipient_domains"` // "example.edu" exact; "*.example.edu" any depth of subdomain
	Sender           string   `toml:"sender"`            // if set, the envelope sender is rewritten to this
	// RewriteFromHeader: when the envelope sender is rewritten, an
	// unqualified From: header address (root@localhost, scanner@printer)
	// is rewritten to the same address, keeping the display name.
	RewriteFromHeader bool `toml:"rewrite_from_header"`
}

// Device is one known device ([[device]]), matched by client network or
// by AUTH user; its name shows in logs and in the queue.
type Device struct {
	Name     string   `toml:"name"`
	Networks []string `toml:"networks"`  // CIDRs the device connects from
	AuthUser string   `toml:"auth_user"` // or the user it authenticates as
	Sender   string   `toml:"sender"`    // its envelope sender is rewritten to this (before policy.sender)
}

// Duplicates holds a device's repeats of one message (same sender,
// recipients and body) instead of queueing them for delivery.
type Duplicates struct {
	MaxRepeats int      `toml:"max_repeats"` // copies queued within window; later ones are held
	Window     Duration `toml:"window"`      // 0 disables duplicate detection
}

// Queue is the spool's limits.
type Queue struct {
	MaxSize Size     `toml:"max_size"` // spool quota; 452 beyond
	MaxAge  Duration `toml:"max_age"`  // then dead letter
	Notify  string   `toml:"notify"`   // failure notices go here when set
}

// Upstream is one campus relay, tried in order.
type Upstream struct {
	Address      string `toml:"address"`       // host:port
	TLS          string `toml:"tls"`           // starttls | tls | none
	Insecure     bool   `toml:"insecure"`      // skip verification / allow tls=none; loud everywhere
	CAFile       string `toml:"ca_file"`       // PEM roots; default system, then built-in
	ServerName   string `toml:"server_name"`   // default: host of Address
	Username     string `toml:"username"`      // AUTH when set
	PasswordFile string `toml:"password_file"` // the secret lives in this file
	CertFile     string `toml:"cert_file"`     // optional client certificate
	KeyFile      string `toml:"key_file"`
	// Auth is the SASL mechanism: "" (PLAIN, else LOGIN, when a password
	// is set), plain, login, xoauth2 or oauthbearer (with OAuth).
	Auth  string        `toml:"auth"`
	OAuth UpstreamOAuth `toml:"oauth,omitempty"`
}

// UpstreamOAuth is where the access token for XOAUTH2 / OAUTHBEARER comes
// from ([upstream.oauth]). Secrets are only in the files it names.
type UpstreamOAuth struct {
	Flow          string   `toml:"flow"`            // refresh_token | client_credentials | jwt
	Tenant        string   `toml:"tenant"`          // Microsoft: fills token_url and device_auth_url
	TokenURL      string   `toml:"token_url"`       // https; for jwt default: the key file's token_uri
	DeviceAuthURL string   `toml:"device_auth_url"` // for relaybox oauth-login
	ClientID      string   `toml:"client_id"`
	Scopes        []string `toml:"scopes"`

	ClientSecretFile   string `toml:"client_secret_file"`   // the application's secret
	RefreshTokenFile   string `toml:"refresh_token_file"`   // written by oauth-login; rotated tokens are written back
	CertificateFile    string `toml:"certificate_file"`     // client_credentials with a certificate instead of a secret
	CertificateKeyFile string `toml:"certificate_key_file"` //   ... and its RSA key
	ServiceAccountFile string `toml:"service_account_file"` // jwt: Google service-account key (JSON)
	Subject            string `toml:"subject"`              // jwt: the mailbox to act as
}

// Values of Upstream.Auth and UpstreamOAuth.Flow.
const (
	AuthPlain       = "plain"
	AuthLogin       = "login"
	AuthXOAuth2     = "xoauth2"
	AuthOAuthBearer = "oauthbearer"

	FlowRefreshToken      = "refresh_token"
	FlowClientCredentials = "client_credentials"
	FlowJWT               = "jwt"
)

// IsOAuth reports whether the upstream logs in with a bearer token.
func (u Upstream) IsOAuth() bool { return u.Auth == AuthXOAuth2 || u.Auth == AuthOAuthBearer }

// Delivery tunes the scheduler.
type Delivery struct {
	Connections    int      `toml:"connections"`     // concurrent upstream sessions, default 2
	MinBackoff     Duration `toml:"min_backoff"`     // default 1m
	MaxBackoff     Duration `toml:"max_backoff"`     // default 1h
	ConnectTimeout Duration `toml:"connect_timeout"` // dial + TLS + greeting, default 30s
	CommandTimeout Duration `toml:"command_timeout"` // each command, default 5m (RFC 5321 4.5.3.2)
	DataTimeout    Duration `toml:"data_timeout"`    // the final dot, default 10m
	IdleClose      Duration `toml:"idle_close"`      // close a reused session after this idle, default 30s
	UpstreamHold   Duration `toml:"upstream_hold"`   // skip a failing upstream this long, default 1m
}

// LED is the status LED.
type LED struct {
	Pin       string `toml:"pin"` // e.g. "GPIO17"; empty = none
	ActiveLow bool   `toml:"active_low"`
}

// Console is the serial console.
type Console struct {
	Device string `toml:"device"` // e.g. "/dev/serial0"; empty = none
	Baud   int    `toml:"baud"`
}

// Admin is the local HTTP API.
type Admin struct {
	Listen       string `toml:"listen"`        // default 127.0.0.1:8025; "" disables
	PasswordFile string `toml:"password_file"` // required for a non-loopback listen
}

// Log controls logging.
type Log struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // text | json
}

// Default returns the built-in configuration relaybox runs on without a
// config file: a loopback listener, private networks allowed, no upstream
// (mail is held), no recipient domains (every recipient is refused; cmd
// warns about that).
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relaybox"
	}
	return Config{
		Hostname: host,
		DataDir:  "./relaybox-data",
		Listen: Listen{
			SMTP: []string{"127.0.0.1:2525"},
			AllowedNetworks: []string{
				"127.0.0.0/8", "::1/128",
				"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
				"fc00::/7", "fe80::/10",
			},
			MaxMessageSize: 50 * MiB,
			MaxRecipients:  100,
			MaxConnections: 100,
			IdleTimeout:    Duration(5 * time.Minute),
			CommandTimeout: Duration(5 * time.Minute),
			SessionTimeout: Duration(30 * time.Minute),
			MinDataRate:    512,
			StressTimeout:  Duration(10 * time.Second),
			ShutdownGrace:  Duration(30 * time.Second),
			// DESIGN.md: one client may keep 50 connections open and send
			// 50 messages a second in bursts.
			PerClientConnections: 50,
			PerClientRate:        50,
			PerClientBurst:       50,
			TLSProfile:           TLSProfileModern,
		},
		Duplicates: Duplicates{MaxRepeats: 5, Window: Duration(10 * time.Minute)},
		Auth:       Auth{Mode: AuthOff},
		Policy:     Policy{RecipientDomains: []string{}},
		Queue: Queue{
			MaxSize: GiB,
			MaxAge:  Duration(120 * time.Hour),
		},
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
		Console: Console{Baud: 115200},
		Admin:   Admin{Listen: "127.0.0.1:8025"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// Values of Auth.Mode.
const (
	AuthOff   = "off"   // no AUTH offered
	AuthAny   = "any"   // any credentials accepted and logged
	AuthUsers = "users" // only the bcrypt users listed in the file
)

// Values of Upstream.TLS.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Values of Listen.TLSProfile and Listen.TLSCert.
const (
	TLSProfileModern = "modern" // TLS 1.2 and later
	TLSProfileLegacy = "legacy" // TLS 1.0 and later, for devices that know nothing newer
	TLSCertAuto      = "auto"   // a self-signed certificate generated once and kept in TLSDir
)

// TLSDir holds the certificate and key of listen.tls_cert = "auto".
func (c Config) TLSDir() string { return filepath.Join(c.DataDir, "tls") }

// RedactedText replaces secrets in Redacted() and WriteTOML output.
const RedactedText = "<redacted>"

// SpoolPath is the bbolt file inside DataDir.
func (c Config) SpoolPath() string { return filepath.Join(c.DataDir, "spool.db") }

// Redacted returns a deep copy with every secret replaced by "<redacted>".
// Password files are named, not read: a path is not a secret.
func (c Config) Redacted() Config {
	out := c.clone()
	for i := range out.Auth.Users {
		if out.Auth.Users[i].PasswordHash != "" {
			out.Auth.Users[i].PasswordHash = RedactedText
		}
	}
	return out
}

// clone copies every slice so a caller's edits never reach the original.
func (c Config) clone() Config {
	out := c
	out.Listen.SMTP = cloneSlice(c.Listen.SMTP)
	out.Listen.AllowedNetworks = cloneSlice(c.Listen.AllowedNetworks)
	out.Listen.SMTPS = cloneSlice(c.Listen.SMTPS)
	out.Auth.Users = cloneSlice(c.Auth.Users)
	out.Auth.Required = cloneSlice(c.Auth.Required)
	out.Policy.RecipientDomains = cloneSlice(c.Policy.RecipientDomains)
	out.Devices = cloneSlice(c.Devices)
	for i := range out.Devices {
		out.Devices[i].Networks = cloneSlice(c.Devices[i].Networks)
	}
	out.Upstream = cloneSlice(c.Upstream)
	for i := range out.Upstream {
		out.Upstream[i].OAuth.Scopes = cloneSlice(c.Upstream[i].OAuth.Scopes)
	}
	return out
}

// cloneSlice keeps nil as nil and empty as empty, so a clone compares equal.
func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

// WriteTOML writes the effective configuration, secrets redacted, as TOML
// that Parse reads back to the same values (except the redacted secrets).
func (c Config) WriteTOML(w io.Writer) error {
	const header = "# relaybox effective configuration (defaults filled in).\n" +
		"# Secrets are redacted: password hashes show as \"" + RedactedText + "\";\n" +
		"# password files are named here but never read or printed.\n\n"
	if _, err := io.WriteString(w, header); err != nil {
		return fmt.Errorf("config: write: %w", err)
	}
	if err := toml.NewEncoder(w).Encode(c.Redacted()); err != nil {
		return fmt.Errorf("config: write: %w", err)
	}
	return nil
}
