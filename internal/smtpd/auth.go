package smtpd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// Values of AuthOptions.Mode; the same words as auth.mode in the config.
const (
	AuthOff   = "off"   // AUTH refused with a reply that says how to enable it
	AuthAny   = "any"   // any credentials accepted; the user name is logged and recorded
	AuthUsers = "users" // only the listed users, passwords checked against bcrypt hashes
)

// AuthOptions configure device authentication on the LAN listener. The zero
// value is mode off. AUTH is never required: the network gate decides who
// may send; AUTH identifies the device (and, in mode users, proves it).
type AuthOptions struct {
	Mode  string
	Users map[string][]byte // mode users: name -> bcrypt hash
}

// maxAuthFailures failed AUTH attempts end the connection with 421, so a
// device with a wrong password cannot keep the CPU busy with bcrypt.
const maxAuthFailures = 3

const mechCRAMMD5 = "CRAM-MD5"

var (
	// Postfix answers the same code when AUTH is off ("503 5.5.1 Error:
	// authentication not enabled").
	errAuthOff = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: `AUTH not enabled on this relay; set auth.mode = "any" for devices that insist on authenticating`}
	// RFC 4954 section 6: 535 5.7.8 for bad credentials. Unknown user and
	// wrong password get the same words.
	errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	// RFC 4954 section 6: 504 5.5.4 for a mechanism the server lacks.
	errAuthMech = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4},
		Message: "Unrecognized authentication type; set the device to LOGIN or PLAIN"}
	errAuthMalformed = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Malformed AUTH response"}
	errDropped = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many failed AUTH attempts, closing connection"}
)

// errAuthCooling answers AUTH from an address that has spent its budget of
// password checks (throttle.Guard): temporary, and no password is checked.
func errAuthCooling(wait time.Duration) *smtp.SMTPError {
	secs := int(wait.Round(time.Second) / time.Second)
	return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: fmt.Sprintf("Too many failed AUTH attempts from your address, try again in %d seconds", max(secs, 1))}
}

// authenticator holds the checked auth configuration of one Server.
type authenticator struct {
	mode  string
	users map[string][]byte
	// dummy is compared against when the user is unknown, so that reply
	// takes as long as a wrong password and does not reveal which names
	// exist. Its cost is the highest of the configured hashes.
	dummy   []byte
	compare func(hash, password []byte) error // bcrypt.CompareHashAndPassword; tests count calls
	// checking bounds the bcrypt comparisons running at once to half the
	// CPUs (at least one), so guesses from many addresses cannot take every
	// core from the sessions that are storing mail.
	checking chan struct{}
}

func newAuthenticator(o AuthOptions) (*authenticator, error) {
	a := &authenticator{mode: o.Mode, compare: bcrypt.CompareHashAndPassword,
		checking: make(chan struct{}, max(1, runtime.NumCPU()/2))}
	switch o.Mode {
	case "", AuthOff:
		a.mode = AuthOff
	case AuthAny:
	case AuthUsers:
		if len(o.Users) == 0 {
			return nil, errors.New(`smtpd: auth mode "users" needs at least one user`)
		}
		cost := bcrypt.MinCost
		a.users = make(map[string][]byte, len(o.Users))
		for name, h := range o.Users {
			c, err := bcrypt.Cost(h)
			if err != nil {
				// Never echo the value: it may be a password typed by mistake.
				return nil, fmt.Errorf("smtpd: auth user %q: password hash is not a bcrypt hash: %w", name, err)
			}
			cost = max(cost, c)
			a.users[name] = bytes.Clone(h)
		}
		dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		if err != nil {
			return nil, fmt.Errorf("smtpd: auth: %w", err)
		}
		a.dummy = dummy
	default:
		return nil, fmt.Errorf("smtpd: auth mode %q is not off, any or users", o.Mode)
	}
	return a, nil
}

// verify checks a mode-users login and returns why it failed, or "". The
// reason is for the log only; the device sees the same reply for all.
func (a *authenticator) verify(user, password string) string {
	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	a.checking <- struct{}{}
	err := a.compare(hash, []byte(password))
	<-a.checking
	switch {
	case !known:
		return "unknown user"
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return "wrong password"
	case err != nil:
		return "password not checkable: " + err.Error()
	}
	return ""
}

// errAuthRequired answers MAIL from a client in auth.required that has not
// authenticated (RFC 4954 section 6).
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
	Message: "Authentication required; set the device's SMTP user name and password for this relay"}

// needsAuth reports whether MAIL must wait for AUTH, and logs it once per
// client a minute.
func (se *session) needsAuth() bool {
	if se.auth.ok || se.l.opt.AuthRequired == nil || !se.l.opt.AuthRequired.Allowed(se.client) {
		return false
	}
	if r := se.s.reports.Note("authreq", se.client); r.Log {
		se.s.log.Info("MAIL refused: this network must authenticate first", "client", se.client.String(),
			"helo", se.helo, "not_logged", r.Suppressed,
			"hint", "set the device's SMTP authentication, or remove its network from auth.required")
	}
	return true
}

// authState is one connection's AUTH progress. It lives as long as the
// session, so it survives RSET and a second EHLO, like go-smtp's own
// "already authenticated" flag.
type authState struct {
	ok    bool   // the session has authenticated
	user  string // recorded in each message's envelope; never sent upstream
	fails int
	// dropped: the connection was closed after too many failures. go-smtp
	// still runs the commands it had read ahead of the close; none of them
	// may start a message the device will never see a 250 for.
	dropped bool
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms implements smtp.AuthSession: what EHLO advertises. go-smtp
// omits the AUTH line when this is empty.
func (se *session) AuthMechanisms() []string {
	switch se.l.auth.mode {
	case AuthAny:
		return []string{sasl.Plain, sasl.Login, mechCRAMMD5}
	case AuthUsers:
		return []string{sasl.Plain, sasl.Login}
	}
	return nil
}

// Auth implements smtp.AuthSession. go-smtp calls it for any AUTH after
// HELO or EHLO, advertised or not, which is what old devices need.
func (se *session) Auth(mech string) (sasl.Server, error) {
	mode := se.l.auth.mode
	if mode == AuthOff {
		se.s.log.Info("device tried AUTH; refused because auth.mode is off", "client", se.client.String(),
			"helo", se.helo, "mech", escapeArg(mech),
			"hint", `set auth.mode = "any" if the device cannot be told to skip authentication`)
		return nil, errAuthOff
	}
	var inner sasl.Server
	switch mech {
	case sasl.Plain:
		inner = sasl.NewPlainServer(func(authz, user, pass string) error {
			return se.authenticate(sasl.Plain, authz, user, pass)
		})
	case sasl.Login:
		inner = newLoginServer(func(user, pass string) error {
			return se.authenticate(sasl.Login, "", user, pass)
		})
	case mechCRAMMD5:
		if mode == AuthAny {
			inner = &cramAnyServer{challenge: se.cramChallenge(), accept: func(user string) error {
				return se.authenticate(mechCRAMMD5, "", user, "")
			}}
		}
	}
	if inner == nil {
		hint := "set the device's SMTP authentication to LOGIN or PLAIN"
		if mech == mechCRAMMD5 {
			hint = `CRAM-MD5 needs plaintext passwords on the relay, which auth.mode "users" does not keep; ` + hint
		}
		se.s.log.Info("device asked for an AUTH mechanism the relay does not offer", "client", se.client.String(),
			"helo", se.helo, "mech", escapeArg(mech), "hint", hint)
		return nil, errAuthMech
	}
	return &guardedServer{se: se, mech: mech, inner: inner}, nil
}

// authenticate decides one complete set of credentials. It logs the user
// name, never the password.
func (se *session) authenticate(mech, authz, user, password string) error {
	a := se.l.auth
	if a.mode == AuthAny {
		se.auth.ok, se.auth.user = true, escapeArg(user)
		se.s.log.Info("device authenticated", "client", se.client.String(), "helo", se.helo,
			"mech", mech, "user", se.auth.user, "checked", false)
		return nil
	}
	// The guard counts checks per client address across connections: a
	// client that reconnects gets no fresh guesses.
	if v := se.s.guard.Allow(se.client); !v.OK {
		if v.Report {
			se.s.log.Warn("AUTH refused: too many failed attempts from this client", "client", se.client.String(),
				"helo", se.helo, "failures", v.Failures, "refused", v.Refused, "total_limit", v.Total,
				"for", v.RetryAfter.String(),
				"hint", "password guessing, or a device with a wrong password retrying; check the device's credentials")
		}
		return errAuthCooling(v.RetryAfter)
	}
	var reason string
	if authz != "" && authz != user {
		// RFC 4616: acting for another identity needs a rule we do not have.
		// Neither name is logged: either may be a password in the wrong field.
		reason = "authorization identity differs from the user"
	} else {
		reason = a.verify(user, password)
	}
	if reason != "" {
		delay := se.s.guard.Failed(se.client)
		// A name that is not an account may be a password typed into the
		// user field, so only configured names are logged.
		logUser := "(not an account; not logged)"
		if _, known := a.users[user]; known {
			logUser = user
		}
		se.s.log.Warn("device authentication failed", "client", se.client.String(), "helo", se.helo,
			"mech", mech, "user", logUser, "reason", reason, "failures", se.auth.fails+1)
		if delay > 0 {
			time.Sleep(delay) // holds this connection, not a CPU
		}
		return errAuthFailed
	}
	se.s.guard.Succeeded(se.client)
	se.auth.ok, se.auth.user = true, user
	se.s.log.Info("device authenticated", "client", se.client.String(), "helo", se.helo,
		"mech", mech, "user", user, "checked", true)
	return nil
}

// cramChallenge makes an RFC 2195 challenge: unique, in msg-id form.
func (se *session) cramChallenge() []byte {
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Appendf(nil, "<%s.%d@%s>", hex.EncodeToString(r[:]), se.s.opt.Now().Unix(), se.s.opt.Hostname)
}

// guardedServer wraps each mechanism: it turns a malformed exchange into a
// 501 and counts every failure of the connection, closing it with 421
// once there have been maxAuthFailures.
type guardedServer struct {
	se    *session
	mech  string
	inner sasl.Server
}

// Next implements sasl.Server.
func (g *guardedServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := g.inner.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	if _, ok := err.(*smtp.SMTPError); !ok {
		// go-smtp writes a plain error's text as a 454; this is the
		// device's mistake and not temporary.
		g.se.s.log.Info("malformed AUTH exchange", "client", g.se.client.String(), "helo", g.se.helo,
			"mech", g.mech, "err", err.Error())
		err = errAuthMalformed
	}
	g.se.auth.fails++
	if g.se.auth.fails >= maxAuthFailures {
		g.se.dropAfterAuthFailures()
	}
	return nil, false, err
}

// dropAfterAuthFailures writes 421 and closes the connection. go-smtp has
// no hook to close after its own reply, so the reply is written here; the
// one go-smtp then writes goes to a closed connection and is lost.
func (se *session) dropAfterAuthFailures() {
	se.auth.dropped = true
	if r := se.s.reports.Note("authdrop", se.client); r.Log {
		se.s.log.Warn("closing connection after repeated AUTH failures", "client", se.client.String(),
			"helo", se.helo, "failures", se.auth.fails, "not_logged", r.Suppressed,
			"hint", "check the user name and password set in the device")
	}
	nc := se.conn.Conn()
	_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(nc, "421 4.7.0 %s %s\r\n", se.s.opt.Hostname, errDropped.Message)
	_ = nc.Close()
}
