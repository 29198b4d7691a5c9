package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TokenSource supplies the bearer token for XOAUTH2 and OAUTHBEARER
// (internal/oauth implements it; tests use a fake).
type TokenSource interface {
	// Token returns a valid access token, fetching one if needed.
	Token(ctx context.Context) (string, error)
	// Invalidate drops token after the relay refused it, so the next
	// Token fetches a fresh one.
	Invalidate(token string)
}

// Upstream auth mechanisms (config upstream.auth). "" is PLAIN, else LOGIN.
const (
	mechPlain       = "plain"
	mechLogin       = "login"
	mechXOAuth2     = "xoauth2"
	mechOAuthBearer = "oauthbearer"
)

func isBearerMech(m string) bool { return m == mechXOAuth2 || m == mechOAuthBearer }

// bearerError is the JSON a relay sends in the 334 challenge when it
// refuses a token (Google and Microsoft for XOAUTH2; RFC 7628 3.2.2).
type bearerError struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
}

func (b *bearerError) describe() string {
	if b == nil || b.Status == "" {
		return ""
	}
	s := "the relay said status " + b.Status
	if b.Scope != "" {
		s += ", scope " + b.Scope
	}
	return s
}

// xoauth2Client is XOAUTH2 as Google and Microsoft document it: the
// initial response "user=U^Aauth=Bearer T^A^A"; a refusal comes as a 334
// with base64 JSON, which is answered with an empty line so the server
// can send its final 535.
type xoauth2Client struct {
	user, token string
	refused     *bearerError
}

func (x *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if x.refused != nil {
		return nil, errors.New("deliver: XOAUTH2: a second challenge after the error")
	}
	x.refused = &bearerError{}
	_ = json.Unmarshal(challenge, x.refused) // the text is only for the message
	return []byte{}, nil                     // non-nil: go-smtp sends an empty line
}

// oauthBearerClient is OAUTHBEARER (RFC 7628 3.1): a GS2 header naming the
// user, host and port, the token; an error challenge is answered with a
// single ^A (3.2.3).
type oauthBearerClient struct {
	user, host string
	port       int
	token      string
	refused    *bearerError
}

func (o *oauthBearerClient) Start() (string, []byte, error) {
	var b strings.Builder
	b.WriteString("n,a=" + gs2Escape(o.user) + ",")
	if o.host != "" {
		b.WriteString("\x01host=" + o.host)
	}
	if o.port != 0 {
		b.WriteString("\x01port=" + strconv.Itoa(o.port))
	}
	b.WriteString("\x01auth=Bearer " + o.token + "\x01\x01")
	return "OAUTHBEARER", []byte(b.String()), nil
}

func (o *oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	if o.refused != nil {
		return nil, errors.New("deliver: OAUTHBEARER: a second challenge after the error")
	}
	o.refused = &bearerError{}
	_ = json.Unmarshal(challenge, o.refused)
	return []byte{0x01}, nil
}

// gs2Escape encodes ',' and '=' in the authzid (RFC 5801 5.1).
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// bearerMechName is the SASL name of an upstream.auth bearer value.
func bearerMechName(m string) string {
	if m == mechOAuthBearer {
		return "OAUTHBEARER"
	}
	return "XOAUTH2"
}

// checkAuthMode validates upstream.auth against what is loaded.
func checkAuthMode(key, mode string, hasUser, hasToken bool) error {
	switch mode {
	case "", mechPlain, mechLogin:
		if mode != "" && !hasUser {
			return fmt.Errorf("deliver: %s.auth = %q needs username and password_file", key, mode)
		}
	case mechXOAuth2, mechOAuthBearer:
		if !hasUser {
			return fmt.Errorf("deliver: %s.auth = %q needs username (the mailbox)", key, mode)
		}
		if !hasToken {
			return fmt.Errorf("deliver: %s.auth = %q needs a token source ([upstream.oauth])", key, mode)
		}
	default:
		return fmt.Errorf("deliver: %s.auth = %q: want plain, login, xoauth2 or oauthbearer", key, mode)
	}
	return nil
}
