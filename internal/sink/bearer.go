package sink

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SASL names of the bearer-token mechanisms.
const (
	XOAuth2     = "XOAUTH2"
	OAuthBearer = "OAUTHBEARER"
)

// BearerLogin is one login attempt a BearerServer saw.
type BearerLogin struct {
	Mech     string
	User     string
	Token    string
	Host     string // OAUTHBEARER only
	Port     string
	Accepted bool
	// ErrorAnswered: the token was refused, the JSON error challenge was
	// sent, and the client answered it as the mechanism requires (an
	// empty line for XOAUTH2, ^A for OAUTHBEARER) before the 535.
	ErrorAnswered bool
}

// errAuthRefused is what Google sends after the error challenge.
var errAuthRefused = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
	Message: "Username and Password not accepted"}

// NewBearerServer is the relay side of XOAUTH2 (as Google and Microsoft
// run it) or OAUTHBEARER (RFC 7628): valid decides on the user and token;
// a refusal sends the JSON error challenge, insists on the client's
// proper answer, then fails with 535. done sees each attempt (may be nil).
func NewBearerServer(mech string, valid func(user, token string) bool, done func(BearerLogin)) sasl.Server {
	return &bearerServer{mech: mech, valid: valid, done: done}
}

type bearerServer struct {
	mech  string
	valid func(user, token string) bool
	done  func(BearerLogin)
	login BearerLogin
	step  int
}

func (b *bearerServer) Next(resp []byte) ([]byte, bool, error) {
	b.step++
	switch b.step {
	case 1:
		if resp == nil {
			return []byte{}, false, nil // ask for the initial response
		}
		return b.first(resp)
	case 2:
		if b.login.Mech == "" { // the initial response came as a reply to 334
			b.step = 1
			return b.first(resp)
		}
		// The answer to the error challenge.
		want := ""
		if b.mech == OAuthBearer {
			want = "\x01"
		}
		b.login.ErrorAnswered = string(resp) == want
		b.finish()
		if !b.login.ErrorAnswered {
			return nil, true, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Protocol violation: bad answer to the error challenge"}
		}
		return nil, true, errAuthRefused
	}
	return nil, true, errors.New("sink: unexpected SASL step")
}

func (b *bearerServer) first(resp []byte) ([]byte, bool, error) {
	b.login.Mech = b.mech
	var ok bool
	if b.mech == OAuthBearer {
		ok = b.parseOAuthBearer(string(resp))
	} else {
		ok = b.parseXOAuth2(string(resp))
	}
	if !ok {
		b.finish()
		return nil, true, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed " + b.mech + " response"}
	}
	if b.valid(b.login.User, b.login.Token) {
		b.login.Accepted = true
		b.finish()
		return nil, true, nil
	}
	challenge := `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`
	return []byte(challenge), false, nil
}

func (b *bearerServer) finish() {
	if b.done != nil {
		b.done(b.login)
	}
}

// parseXOAuth2 reads "user=U^Aauth=Bearer T^A^A".
func (b *bearerServer) parseXOAuth2(s string) bool {
	rest, ok := strings.CutSuffix(s, "\x01\x01")
	if !ok {
		return false
	}
	user, auth, ok := strings.Cut(rest, "\x01")
	if !ok || !strings.HasPrefix(user, "user=") || !strings.HasPrefix(auth, "auth=Bearer ") {
		return false
	}
	b.login.User = strings.TrimPrefix(user, "user=")
	b.login.Token = strings.TrimPrefix(auth, "auth=Bearer ")
	return b.login.User != "" && b.login.Token != ""
}

// parseOAuthBearer reads the RFC 7628 3.1 client response:
// "n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A".
func (b *bearerServer) parseOAuthBearer(s string) bool {
	gs2, kvs, ok := strings.Cut(s, "\x01")
	if !ok || !strings.HasPrefix(gs2, "n,") || !strings.HasSuffix(gs2, ",") {
		return false
	}
	authz := strings.TrimSuffix(strings.TrimPrefix(gs2, "n,"), ",")
	if a, ok := strings.CutPrefix(authz, "a="); ok {
		b.login.User = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(a)
	}
	rest, ok := strings.CutSuffix(kvs, "\x01\x01")
	if !ok {
		return false
	}
	for _, kv := range strings.Split(rest, "\x01") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "host":
			b.login.Host = v
		case "port":
			b.login.Port = v
		case "auth":
			tok, ok := strings.CutPrefix(v, "Bearer ")
			if !ok {
				return false
			}
			b.login.Token = tok
		}
	}
	return b.login.Token != ""
}
