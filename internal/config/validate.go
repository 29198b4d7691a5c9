package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"relaybox/internal/policy"
)

// maxMessageSizeLimit caps listen.max_message_size: larger messages are not
// device mail, and the spool's chunking is sized for tens of MiB.
const maxMessageSizeLimit = GiB

// maxQueueSize32 is the spool quota ceiling on 32-bit platforms, where bbolt
// maps the whole file into an address space of which about 2 GiB is usable.
const maxQueueSize32 = GiB

// Validate reports every problem in c, joined with errors.Join; each is an
// *Error naming the key and saying what to fix. A nil result means relaybox
// can start on c. An empty policy.recipient_domains is valid (every recipient
// is refused); the caller warns about it.
func (c Config) Validate() error { return joinErrors(c.problems(strconv.IntSize)) }

// joinErrors keeps nil for no problems, and the plain *Error for one, so
// errors.As and a type switch both work for the common case.
func joinErrors(ps []*Error) error {
	switch len(ps) {
	case 0:
		return nil
	case 1:
		return ps[0]
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

type problems []*Error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// problems is Validate with the platform's int size as a parameter, so the
// 32-bit quota rule can be tested on a 64-bit machine.
func (c Config) problems(intSize int) []*Error {
	var p problems
	if c.Hostname == "" || strings.IndexFunc(c.Hostname, unicode.IsSpace) >= 0 {
		p.add("hostname", "%q is not a host name; set the name the relay greets with, e.g. \"relaybox.lab.example.edu\"", c.Hostname)
	}
	if c.DataDir == "" {
		p.add("data_dir", "is empty; set the directory that holds spool.db, e.g. \"/var/lib/relaybox\"")
	}
	c.Listen.check(&p)
	c.Auth.check(&p)
	c.Policy.check(&p)
	checkDevices(&p, c.Devices)
	c.Duplicates.check(&p)
	c.Queue.check(&p, intSize)
	for i, u := range c.Upstream {
		u.check(&p, fmt.Sprintf("upstream[%d]", i))
	}
	c.Delivery.check(&p)
	if c.Console.Baud <= 0 {
		p.add("console.baud", "must be a positive number such as 115200")
	}
	c.Admin.check(&p)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not a level; use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "%q is not a format; use text or json", c.Log.Format)
	}
	return p
}

// checkHostPort requires "host:port" with a numeric port 1-65535; an empty
// host (":25", all interfaces) is allowed only when emptyHost is set.
func checkHostPort(p *problems, key, addr string, emptyHost bool, example string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(key, "%q is not host:port; write e.g. %q", addr, example)
		return
	}
	if host == "" && !emptyHost {
		p.add(key, "%q has no host; write e.g. %q", addr, example)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.add(key, "%q: port %q must be a number from 1 to 65535", addr, port)
	}
}

func (l Listen) check(p *problems) {
	if len(l.SMTP) == 0 {
		p.add("listen.smtp", "is empty; list at least one address to listen on, e.g. [\"0.0.0.0:25\"]")
	}
	for i, a := range l.SMTP {
		checkHostPort(p, fmt.Sprintf("listen.smtp[%d]", i), a, true, "0.0.0.0:25")
	}
	if len(l.AllowedNetworks) == 0 {
		p.add("listen.allowed_networks", "is empty, so every client would be refused; list your devices' networks, e.g. [\"192.168.1.0/24\"]")
	}
	checkNetworks(p, "listen.allowed_networks", l.AllowedNetworks)
	if l.MaxMessageSize <= 0 || l.MaxMessageSize > maxMessageSizeLimit {
		p.add("listen.max_message_size", "%s is out of range; use a size above 0 and at most %s, e.g. \"50MiB\"", l.MaxMessageSize, maxMessageSizeLimit)
	}
	if l.MaxRecipients < 1 || l.MaxRecipients > 1000 {
		p.add("listen.max_recipients", "%d is out of range; use 1 to 1000 (default 100)", l.MaxRecipients)
	}
	if l.MaxConnections < 1 {
		p.add("listen.max_connections", "%d is out of range; use at least 1 (default 100)", l.MaxConnections)
	}
	if l.IdleTimeout <= 0 {
		p.add("listen.idle_timeout", "must be above 0; slow devices need minutes, e.g. \"5m\"")
	}
	if l.CommandTimeout <= 0 {
		p.add("listen.command_timeout", "must be above 0; RFC 5321 gives a command 5 minutes, e.g. \"5m\"")
	}
	if l.SessionTimeout < l.CommandTimeout {
		p.add("listen.session_timeout", "%s is shorter than command_timeout %s; use e.g. \"30m\"", l.SessionTimeout.D(), l.CommandTimeout.D())
	}
	if l.MinDataRate < 1 || l.MinDataRate > 10*MiB {
		p.add("listen.min_data_rate", "%s is out of range; use bytes a second the slowest device still sends, e.g. \"512B\" (at most 10MiB)", l.MinDataRate)
	}
	if l.StressTimeout <= 0 || l.StressTimeout > l.CommandTimeout {
		p.add("listen.stress_timeout", "%s is out of range; use above 0 and at most command_timeout, e.g. \"10s\"", l.StressTimeout.D())
	}
	if l.PerClientConnections >= l.MaxConnections && l.MaxConnections > 1 {
		p.add("listen.per_client_connections", "%d is not below max_connections %d, so one address could take every slot; use fewer (default 50 of 100), or 0 for no limit of its own",
			l.PerClientConnections, l.MaxConnections)
	}
	if l.ShutdownGrace < 0 {
		p.add("listen.shutdown_grace", "must not be negative; e.g. \"30s\"")
	}
	if l.PerClientConnections < 0 {
		p.add("listen.per_client_connections", "%d is out of range; use 0 (no limit) or more (default 50)", l.PerClientConnections)
	}
	if l.PerClientRate < 0 || math.IsNaN(l.PerClientRate) || math.IsInf(l.PerClientRate, 0) {
		p.add("listen.per_client_rate", "%v is out of range; use messages per second, e.g. 50, or 0 for no limit", l.PerClientRate)
	}
	if l.PerClientRate > 0 && l.PerClientBurst < 1 {
		p.add("listen.per_client_burst", "%d is out of range; use at least 1 (default 50) while per_client_rate is set", l.PerClientBurst)
	}
	l.checkTLS(p)
}

func (l Listen) checkTLS(p *problems) {
	switch {
	case l.TLSCert == TLSCertAuto:
		if l.TLSKey != "" {
			p.add("listen.tls_key", "must be empty with tls_cert = \"auto\" (the key is generated and kept in the data directory); remove it or name your own certificate in tls_cert")
		}
	case l.TLSCert != "":
		if l.TLSKey == "" {
			p.add("listen.tls_key", "is empty; name the PEM private key file that belongs to tls_cert %q", l.TLSCert)
		}
		checkFile(p, "listen.tls_cert", l.TLSCert)
		checkFile(p, "listen.tls_key", l.TLSKey)
	case l.TLSKey != "":
		p.add("listen.tls_key", "is set but listen.tls_cert is empty; name the certificate file too, or use tls_cert = \"auto\"")
	}
	switch l.TLSProfile {
	case TLSProfileModern, TLSProfileLegacy:
	default:
		p.add("listen.tls_profile", "%q is not a profile; use modern (TLS 1.2 and later) or legacy (also TLS 1.0 for old devices)", l.TLSProfile)
	}
	if len(l.SMTPS) > 0 && l.TLSCert == "" {
		p.add("listen.smtps", "needs a certificate; set listen.tls_cert (a PEM file, or \"auto\" for a self-signed one)")
	}
	for i, a := range l.SMTPS {
		checkHostPort(p, fmt.Sprintf("listen.smtps[%d]", i), a, true, "0.0.0.0:465")
	}
}

// checkNetworks checks a list of CIDR prefixes under key.
func checkNetworks(p *problems, key string, nets []string) {
	for i, n := range nets {
		key := fmt.Sprintf("%s[%d]", key, i)
		if _, err := netip.ParsePrefix(n); err == nil {
			continue
		}
		if a, err := netip.ParseAddr(n); err == nil {
			p.add(key, "%q is an address, not a network; write \"%s/%d\"", n, n, a.BitLen())
		} else {
			p.add(key, "%q is not a network in CIDR form; write e.g. \"192.168.1.0/24\"", n)
		}
	}
}

// uniqueName checks entry i of list (key is "list[i]"): its name is set
// and not used by an earlier entry. seen maps names to index+1.
func uniqueName(p *problems, key, list, name string, i int, seen map[string]int, emptyHint string) {
	switch {
	case name == "":
		p.add(key+".name", "%s", emptyHint)
	case seen[name] > 0:
		p.add(key+".name", "%q is already %s[%d]; names must be unique", name, list, seen[name]-1)
	default:
		seen[name] = i + 1
	}
}

func checkDevices(p *problems, ds []Device) {
	seen := map[string]int{}
	for i, d := range ds {
		key := fmt.Sprintf("device[%d]", i)
		uniqueName(p, key, "device", d.Name, i, seen,
			"is empty; give the device a name for logs and the queue, e.g. \"copier-2nd-floor\"")
		if len(d.Networks) == 0 && d.AuthUser == "" {
			p.add(key, "matches nothing; set networks (e.g. [\"10.0.5.20/32\"]) or auth_user")
		}
		checkNetworks(p, key+".networks", d.Networks)
		if d.Sender != "" {
			if msg := addressProblem(d.Sender); msg != "" {
				p.add(key+".sender", "%q %s; write one address like \"copier@example.edu\", or leave it empty", d.Sender, msg)
			}
		}
	}
}

func (d Duplicates) check(p *problems) {
	if d.Window < 0 {
		p.add("duplicates.window", "must not be negative; e.g. \"10m\", or 0 to switch duplicate detection off")
	}
	if d.Window > 0 && d.MaxRepeats < 1 {
		p.add("duplicates.max_repeats", "%d is out of range; use at least 1 (default 5), or set window = \"0\" to switch detection off", d.MaxRepeats)
	}
}

func (a Auth) check(p *problems) {
	switch a.Mode {
	case AuthOff, AuthAny:
	case AuthUsers:
		if len(a.Users) == 0 {
			p.add("auth.users", "mode \"users\" needs at least one [[auth.users]] entry with name and password_hash")
		}
	default:
		p.add("auth.mode", "%q is not a mode; use off, any or users", a.Mode)
	}
	checkNetworks(p, "auth.required", a.Required)
	if len(a.Required) > 0 && a.Mode == AuthOff {
		p.add("auth.required", "is set but auth.mode is off, so those clients could never send; set auth.mode = \"users\" (or \"any\")")
	}
	seen := map[string]int{}
	for i, u := range a.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		uniqueName(p, key, "auth.users", u.Name, i, seen, "is empty; give the device account a name")
		switch {
		case u.PasswordHash == RedactedText:
			p.add(key+".password_hash", "is %q (copied from check-config output?); paste the real bcrypt hash", RedactedText)
		case !looksLikeBcrypt(u.PasswordHash) || !bcryptCostOK(u.PasswordHash):
			// Never echo the value: it may be a plain password typed by mistake.
			p.add(key+".password_hash", "is not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters); generate one with: relaybox hash-password")
		}
	}
}

// bcryptCostOK asks the bcrypt library itself, which the listener uses to
// load the hash, so a hash this check passes always loads.
func bcryptCostOK(h string) bool {
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}

// looksLikeBcrypt checks the shape "$2b$10$" + 53 characters of bcrypt's
// base64 alphabet; verifying belongs to the listener, not here.
func looksLikeBcrypt(h string) bool {
	if len(h) != 60 || h[0] != '$' || h[1] != '2' || !strings.ContainsRune("aby", rune(h[2])) || h[3] != '$' || h[6] != '$' {
		return false
	}
	cost, err := strconv.Atoi(h[4:6])
	if err != nil || cost < 4 || cost > 31 {
		return false
	}
	for _, r := range h[7:] {
		if !(r == '.' || r == '/' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (pol Policy) check(p *problems) {
	for i, d := range pol.RecipientDomains {
		key := fmt.Sprintf("policy.recipient_domains[%d]", i)
		if msg := domainProblem(d); msg != "" {
			p.add(key, "%q %s", d, msg)
		} else if _, err := policy.NewRules([]string{d}); err != nil {
			// The listener's own parser has the last word, so the
			// daemon never refuses what this check let through.
			p.add(key, "%s; write a campus domain like \"example.edu\" or \"*.example.edu\"", strings.TrimPrefix(err.Error(), "policy: "))
		}
	}
	if pol.Sender != "" {
		if msg := addressProblem(pol.Sender); msg != "" {
			p.add("policy.sender", "%q %s; write one address like \"scanner@example.edu\", or leave it empty to keep the devices' senders", pol.Sender, msg)
		}
	}
}

// domainProblem says what is wrong with a recipient domain pattern, or "".
func domainProblem(d string) string {
	name := strings.TrimPrefix(d, "*.")
	switch {
	case d == "":
		return "is empty; remove it or write a domain like \"example.edu\""
	case strings.IndexFunc(d, unicode.IsSpace) >= 0:
		return "contains a space; write one domain per entry"
	case strings.Contains(d, "@"):
		return "contains '@'; write only the domain part, e.g. \"example.edu\""
	case strings.Contains(name, "*"):
		return "may use \"*.\" only once, at the start, e.g. \"*.example.edu\""
	case name == "":
		return "has no domain after \"*.\"; write e.g. \"*.example.edu\""
	case strings.HasSuffix(name, "."):
		return "ends with a dot; write it without the trailing dot"
	case strings.HasPrefix(name, ".") || strings.Contains(name, ".."):
		return "has an empty label; check the dots"
	}
	return ""
}

// addressProblem says what is wrong with a notification or sender address:
// the shape first, in words a technician can act on, then whatever the
// listener's own parser refuses, so the daemon never refuses it later.
func addressProblem(a string) string {
	if msg := addressShape(a); msg != "" {
		return msg
	}
	if _, err := policy.ParseAddress(a); err != nil {
		var re *policy.RejectError
		if errors.As(err, &re) {
			return "is refused: " + re.Reason
		}
		return "is refused: " + err.Error()
	}
	return ""
}

func addressShape(a string) string {
	at := strings.Count(a, "@")
	switch {
	case at != 1:
		return fmt.Sprintf("has %d '@' signs, not one", at)
	case strings.HasPrefix(a, "@") || strings.HasSuffix(a, "@"):
		return "needs text on both sides of '@'"
	case strings.IndexFunc(a, unicode.IsSpace) >= 0 || strings.ContainsAny(a, "<>"):
		return "must be a bare address without spaces or <>"
	}
	return ""
}

func (q Queue) check(p *problems, intSize int) {
	if q.MaxSize <= 0 {
		p.add("queue.max_size", "must be above 0; e.g. \"1GiB\"")
	} else if intSize == 32 && q.MaxSize > maxQueueSize32 {
		p.add("queue.max_size", "%s is too large for a 32-bit system: the spool database is memory-mapped and the map is capped near 2 GiB there; use at most %s", q.MaxSize, maxQueueSize32)
	}
	if q.MaxAge <= 0 {
		p.add("queue.max_age", "must be above 0; e.g. \"120h\" or \"5d\"")
	}
	if q.Notify != "" {
		if msg := addressProblem(q.Notify); msg != "" {
			p.add("queue.notify", "%q %s; write one address like \"postmaster@example.edu\", or leave it empty", q.Notify, msg)
		}
	}
}

func (u Upstream) check(p *problems, key string) {
	if u.Address == "" {
		p.add(key+".address", "is required; write the campus relay as host:port, e.g. \"smtp.example.edu:587\"")
	} else {
		checkHostPort(p, key+".address", u.Address, false, "smtp.example.edu:587")
	}
	switch u.TLS {
	case "", TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !u.Insecure {
			p.add(key+".tls", "\"none\" sends mail in clear; set insecure = true to allow it")
		}
	default:
		p.add(key+".tls", "%q is not a TLS mode; use starttls (port 587), tls (port 465) or none", u.TLS)
	}
	switch u.Auth {
	case "", AuthPlain, AuthLogin:
		if (u.Username == "") != (u.PasswordFile == "") {
			p.add(key+".password_file", "username and password_file go together; set both or neither")
		}
		if u.Auth != "" && u.Username == "" {
			p.add(key+".username", "auth = %q needs username and password_file", u.Auth)
		}
		if u.OAuth.Flow != "" {
			p.add(key+".auth", "%q does not use [upstream.oauth]; set auth = \"xoauth2\" (or \"oauthbearer\") or remove the oauth table", u.Auth)
		}
	case AuthXOAuth2, AuthOAuthBearer:
		if u.Username == "" {
			p.add(key+".username", "is required with auth = %q: the mailbox to send as, e.g. \"scanner@example.edu\"", u.Auth)
		}
		if u.PasswordFile != "" {
			p.add(key+".password_file", "is not used with auth = %q (the token replaces the password); remove it", u.Auth)
		}
		if u.Insecure || u.TLS == TLSNone {
			p.add(key+".insecure", "auth = %q sends a bearer token and needs verified TLS; remove insecure = true and tls = \"none\"", u.Auth)
		}
		u.OAuth.check(p, key+".oauth")
	default:
		p.add(key+".auth", "%q is not a mechanism; use plain, login, xoauth2 or oauthbearer (or leave it out: PLAIN, else LOGIN)", u.Auth)
	}
	if (u.CertFile == "") != (u.KeyFile == "") {
		p.add(key+".key_file", "cert_file and key_file go together; set both or neither")
	}
	checkFile(p, key+".ca_file", u.CAFile)
	checkFile(p, key+".password_file", u.PasswordFile)
	checkFile(p, key+".cert_file", u.CertFile)
	checkFile(p, key+".key_file", u.KeyFile)
}

func (o UpstreamOAuth) check(p *problems, key string) {
	need := func(k, v, what string) {
		if v == "" {
			p.add(key+"."+k, "is required with flow = %q: %s", o.Flow, what)
		}
	}
	switch o.Flow {
	case FlowRefreshToken:
		need("client_id", o.ClientID, "the application (client) ID of the app registration")
		need("refresh_token_file", o.RefreshTokenFile, "the file relaybox oauth-login writes the refresh token to")
		need("token_url", o.TokenURL, "the token endpoint, or set tenant (Microsoft)")
		if o.RefreshTokenFile != "" {
			checkDir(p, key+".refresh_token_file", o.RefreshTokenFile)
		}
	case FlowClientCredentials:
		need("client_id", o.ClientID, "the application (client) ID of the app registration")
		need("token_url", o.TokenURL, "the token endpoint, or set tenant (Microsoft)")
		switch {
		case o.ClientSecretFile == "" && o.CertificateFile == "":
			p.add(key+".client_secret_file", "flow = \"client_credentials\" needs client_secret_file, or certificate_file and certificate_key_file")
		case o.ClientSecretFile != "" && o.CertificateFile != "":
			p.add(key+".certificate_file", "set client_secret_file or certificate_file, not both")
		case (o.CertificateFile == "") != (o.CertificateKeyFile == ""):
			p.add(key+".certificate_key_file", "certificate_file and certificate_key_file go together")
		}
	case FlowJWT:
		need("service_account_file", o.ServiceAccountFile, "the JSON key of the Google service account")
		need("subject", o.Subject, "the mailbox the service account acts as (domain-wide delegation)")
	case "":
		p.add(key+".flow", "is required with auth = xoauth2 / oauthbearer: refresh_token, client_credentials or jwt")
	default:
		p.add(key+".flow", "%q is not a flow; use refresh_token, client_credentials or jwt", o.Flow)
	}
	for k, v := range map[string]string{"token_url": o.TokenURL, "device_auth_url": o.DeviceAuthURL} {
		if msg := endpointProblem(v); msg != "" {
			p.add(key+"."+k, "%q %s", v, msg)
		}
	}
	checkFile(p, key+".client_secret_file", o.ClientSecretFile)
	checkFile(p, key+".certificate_file", o.CertificateFile)
	checkFile(p, key+".certificate_key_file", o.CertificateKeyFile)
	checkFile(p, key+".service_account_file", o.ServiceAccountFile)
}

// endpointProblem requires https, or http to this machine (a test
// endpoint): token requests carry the application's credentials.
func endpointProblem(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return "is not a URL; write e.g. \"https://login.microsoftonline.com/TENANT/oauth2/v2.0/token\""
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && IsLoopback(net.JoinHostPort(u.Hostname(), "0")):
		return ""
	}
	return "must use https: the request carries the application's credentials"
}

// checkDir checks that the directory of a file relaybox writes exists.
func checkDir(p *problems, key, path string) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		p.add(key, "directory %q does not exist; create it (the file itself is written by relaybox oauth-login)", dir)
	}
}

// checkFile only stats the file: secrets are read by whoever uses them, so
// they never pass through config (or its errors).
func checkFile(p *problems, key, path string) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.add(key, "file %q does not exist; create it or fix the path", path)
	case errors.Is(err, fs.ErrPermission):
		p.add(key, "file %q cannot be reached (permission denied); let the relaybox user read it", path)
	case err != nil:
		p.add(key, "file %q: %v", path, err)
	case fi.IsDir():
		p.add(key, "%q is a directory; name the file inside it", path)
	}
}

func (d Delivery) check(p *problems) {
	for _, f := range []struct {
		key string
		v   int64
	}{
		{"delivery.connections", int64(d.Connections)},
		{"delivery.min_backoff", int64(d.MinBackoff)},
		{"delivery.max_backoff", int64(d.MaxBackoff)},
		{"delivery.connect_timeout", int64(d.ConnectTimeout)},
		{"delivery.command_timeout", int64(d.CommandTimeout)},
		{"delivery.data_timeout", int64(d.DataTimeout)},
		{"delivery.idle_close", int64(d.IdleClose)},
		{"delivery.upstream_hold", int64(d.UpstreamHold)},
	} {
		if f.v <= 0 {
			p.add(f.key, "must be above 0; remove the line to use the default")
		}
	}
	if d.MinBackoff > 0 && d.MaxBackoff > 0 && d.MinBackoff > d.MaxBackoff {
		p.add("delivery.min_backoff", "%s is more than delivery.max_backoff %s; lower min_backoff or raise max_backoff", d.MinBackoff, d.MaxBackoff)
	}
}

func (a Admin) check(p *problems) {
	if a.Listen != "" {
		before := len(*p)
		checkHostPort(p, "admin.listen", a.Listen, true, "127.0.0.1:8025")
		if len(*p) == before && a.PasswordFile == "" && !IsLoopback(a.Listen) {
			p.add("admin.password_file", "admin.listen %s is reachable from the LAN; set admin.password_file (or listen on 127.0.0.1)", a.Listen)
		}
	}
	checkFile(p, "admin.password_file", a.PasswordFile)
}

// IsLoopback reports whether a host:port can only be reached from the box
// itself. An empty host means every interface, so it is not loopback.
// admin.Listen asks it too, so the check at bind time and this one agree.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
