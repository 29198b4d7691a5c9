package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"golang.org/x/oauth2"

	"relaybox/internal/text"
)

// Error is a failure to get an access token. Its text never carries a
// secret: x/oauth2's own error text includes the endpoint's response body,
// so only the parsed fields are used here.
type Error struct {
	Upstream string // "upstream[0]"
	Code     string // the OAuth error code ("invalid_grant"), "" for network trouble
	Status   int    // HTTP status of the token endpoint, 0 if none
	Text     string // what happened and what to do
	Err      error
}

// Error reads "token refresh failed: invalid_grant (the refresh token ...)".
func (e *Error) Error() string { return "token refresh failed: " + e.Text }

func (e *Error) Unwrap() error { return e.Err }

// describe turns a fetch error into an *Error a technician can act on.
func (s *Source) describe(ctx context.Context, err error) *Error {
	e := &Error{Upstream: s.opt.Name, Err: err}
	var (
		re  *oauth2.RetrieveError
		ue  *url.Error
		ne  net.Error
		own *Error
	)
	host := hostOf(s.opt.TokenURL)
	switch {
	case errors.As(err, &own):
		return own
	case ctx.Err() != nil:
		e.Text = "interrupted: " + ctx.Err().Error()
	case errors.As(err, &re):
		if re.Response != nil {
			e.Status = re.Response.StatusCode
		}
		code, desc := re.ErrorCode, re.ErrorDescription
		if code == "" {
			// The jwt package leaves the RFC 6749 5.2 body unparsed.
			var body struct {
				Error string `json:"error"`
				Desc  string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &body) == nil {
				code, desc = body.Error, body.Desc
			}
		}
		e.Code = code
		e.Text = s.explain(code, e.Status)
		// Entra ID appends trace and correlation IDs: noise on an LED
		// console, and in the endpoint's own logs anyway.
		desc, _, _ = strings.Cut(desc, " Trace ID:")
		desc, _, _ = strings.Cut(desc, "\r\nTrace ID:")
		if d := text.Clip(text.OneLine(desc), 200); d != "" {
			e.Text += fmt.Sprintf("; %s said: %q", host, d)
		}
	case errors.Is(err, errNoToken):
		e.Text = fmt.Sprintf("no refresh token in %s (run relaybox oauth-login -upstream %d)", s.opt.RefreshTokenFile, s.opt.Upstream)
	case errors.As(err, &ne) && ne.Timeout():
		e.Text = fmt.Sprintf("the token endpoint %s did not answer within %s; retrying later", host, s.opt.HTTPClient.Timeout)
	case errors.As(err, &ue):
		e.Text = fmt.Sprintf("cannot reach the token endpoint %s: %v (check this box's DNS, proxy and firewall; retrying later)", host, ue.Err)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		e.Text = err.Error()
	default:
		e.Text = text.Clip(text.OneLine(err.Error()), 300)
	}
	return e
}

// explain gives the meaning of an OAuth error code (RFC 6749 5.2) for this
// flow, and the fix.
func (s *Source) explain(code string, status int) string {
	switch code {
	case "":
		if status >= 500 {
			return fmt.Sprintf("the token endpoint %s is failing (HTTP %d); retrying later", hostOf(s.opt.TokenURL), status)
		}
		return fmt.Sprintf("the token endpoint %s answered HTTP %d without an OAuth error (check token_url)", hostOf(s.opt.TokenURL), status)
	case "invalid_grant":
		switch s.opt.Flow {
		case FlowRefreshToken:
			return fmt.Sprintf("invalid_grant (the refresh token was revoked or has expired: run relaybox oauth-login -upstream %d)", s.opt.Upstream)
		case FlowJWT:
			return fmt.Sprintf("invalid_grant (Google refused the service account's signed request: the key in service_account_file may have been deleted in the Cloud console, or %s is not a mailbox of the domain)", s.opt.Subject)
		}
		return "invalid_grant (the token endpoint refused the application's credentials: check the tenant, client_id and the secret or certificate)"
	case "invalid_client":
		return "invalid_client (check client_id and the client secret or certificate; client secrets expire and must be renewed in the app registration)"
	case "unauthorized_client":
		if s.opt.Flow == FlowJWT {
			return fmt.Sprintf("unauthorized_client (the service account may not act as %s: check domain-wide delegation in the Google Admin console for this service account's client ID and scope %s; a new delegation can take a while to apply)",
				s.opt.Subject, strings.Join(s.opt.Scopes, " "))
		}
		return fmt.Sprintf("unauthorized_client (the application is not allowed the %s flow: check its registration)", s.opt.Flow)
	case "invalid_scope":
		return fmt.Sprintf("invalid_scope (the application may not request %q: check scopes and the API permissions granted to it)", strings.Join(s.opt.Scopes, " "))
	case "access_denied":
		return "access_denied (consent was refused or withdrawn: an administrator must grant the application's permissions)"
	case "temporarily_unavailable", "server_error":
		return code + " (the provider has trouble; retrying later)"
	}
	return text.Clip(text.OneLine(code), 60)
}

// hostOf is the host of a URL, for messages (a token URL is not a secret,
// but the host is what a technician compares with the firewall rules).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return u.Host
}
