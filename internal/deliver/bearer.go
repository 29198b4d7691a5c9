package deliver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"
)

// token fetches the session's bearer token: the "token" step of Check.
func (c *Client) token(ctx context.Context, k *conn) (string, *Error) {
	tok, err := k.up.tokens.Token(ctx)
	if err != nil {
		text := err.Error()
		if ctx.Err() != nil {
			text = "interrupted: " + ctx.Err().Error()
		}
		return "", &Error{Upstream: k.up.cfg.Address, Op: "token", Text: text, Err: err}
	}
	k.token = tok
	detail := "access token fetched for " + k.up.cfg.Username
	if d, ok := k.up.tokens.(interface{ Describe() string }); ok {
		detail += " (" + d.Describe() + ")"
	}
	if x, ok := k.up.tokens.(interface{ Expiry() time.Time }); ok && !x.Expiry().IsZero() {
		detail += fmt.Sprintf(", valid until %s", x.Expiry().UTC().Format("2006-01-02 15:04 UTC"))
	}
	return detail, nil
}

// bearerAuth logs in with XOAUTH2 or OAUTHBEARER. A refused token is
// dropped from the source, so the next attempt fetches a fresh one; the
// refusal itself is an ordinary AUTH failure, which the scheduler treats
// as temporary for the mail.
func (c *Client) bearerAuth(ctx context.Context, k *conn, nc net.Conn, offered string) (string, *Error) {
	up := k.up
	name := bearerMechName(up.mech)
	if _, isTLS := nc.(*tls.Conn); !isTLS || up.cfg.Insecure {
		return "", &Error{Upstream: up.cfg.Address, Op: "auth", Text: "refusing to send a bearer token without verified TLS"}
	}
	if !hasWord(offered, name) {
		return "", &Error{Upstream: up.cfg.Address, Op: "auth",
			Text: fmt.Sprintf("upstream offers AUTH %s, not %s (check %s.address: Microsoft 365 is smtp.office365.com:587, Google smtp.gmail.com:587; or set %s.auth)", offered, name, up.key, up.key)}
	}
	var client sasl.Client
	var refused func() *bearerError
	if up.mech == mechOAuthBearer {
		host, p, _ := net.SplitHostPort(up.cfg.Address)
		port, _ := strconv.Atoi(p)
		o := &oauthBearerClient{user: up.cfg.Username, host: host, port: port, token: k.token}
		client, refused = o, func() *bearerError { return o.refused }
	} else {
		x := &xoauth2Client{user: up.cfg.Username, token: k.token}
		client, refused = x, func() *bearerError { return x.refused }
	}
	if err := k.sc.Auth(client); err != nil {
		e := k.fail(ctx, "auth", err, c.command)
		if e.Code != 0 {
			up.tokens.Invalidate(k.token)
			said := ""
			if s := refused().describe(); s != "" {
				said = s + "; "
			}
			e.Text += fmt.Sprintf(" (the relay refused the OAuth token for %s: %scheck that SMTP AUTH is enabled for this mailbox and that the application may send as it; a new token is fetched for the next attempt)",
				up.cfg.Username, said)
		}
		return "", e
	}
	return fmt.Sprintf("%s as %s: accepted", name, up.cfg.Username), nil
}
