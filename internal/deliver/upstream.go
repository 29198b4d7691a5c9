package deliver

// TLSMode is how a session with an upstream relay is encrypted. Its values
// are the words the configuration uses, so log lines and errors that quote
// the mode read the same as the setting the technician wrote.
type TLSMode string

const (
	// TLSStartTLS connects in plain text and requires STARTTLS before
	// anything else is sent (port 587). The zero value means this mode.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit TLSMode = "tls"
	// TLSNone sends everything in clear; it needs Insecure in so many words.
	TLSNone TLSMode = "none"
)

// Upstream is one relay the client delivers to and how to reach it.
type Upstream struct {
	Address    string  // host:port
	TLS        TLSMode // "" means TLSStartTLS
	Insecure   bool    // skip certificate verification; required for TLSNone
	CAFile     string  // PEM roots; "" = system roots, else the built-in bundle
	ServerName string  // name the certificate must carry; "" = host of Address
	Username   string  // AUTH when set
	// PasswordFile holds the password for PLAIN and LOGIN.
	PasswordFile string
	// CertFile and KeyFile are an optional client certificate; both or neither.
	CertFile, KeyFile string
	// Auth is the SASL mechanism, matched without regard to case; ""
	// means PLAIN if offered, else LOGIN.
	Auth AuthMech
}

// AuthMech is an upstream's SASL mechanism. Like TLSMode, its values are
// the configuration's words.
type AuthMech string

const (
	AuthPlain   AuthMech = "plain"
	AuthLogin   AuthMech = "login"
	AuthXOAuth2 AuthMech = "xoauth2" // needs a TokenSource in ClientOptions.Tokens
	// AuthOAuthBearer is RFC 7628's OAUTHBEARER; needs a TokenSource too.
	AuthOAuthBearer AuthMech = "oauthbearer"
)
