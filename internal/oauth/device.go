package oauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DeviceCode is what the technician does with another device: open URL and
// type Code (or open Complete, which carries the code).
type DeviceCode struct {
	URL      string
	Code     string
	Complete string    // may be ""
	Expires  time.Time // the code is void after this
}

// DeviceLogin obtains the first refresh token with the device authorization
// grant (RFC 8628), so the box needs no browser, and writes it to
// opt.RefreshTokenFile (0600, atomically). show is called once with the
// code to enter; DeviceLogin then waits until the login is done, refused,
// expired or ctx ends. It returns how long the access token it got is
// valid, as a sign of life.
func DeviceLogin(ctx context.Context, opt Options, show func(DeviceCode)) (time.Duration, error) {
	if opt.Flow != FlowRefreshToken {
		return 0, fmt.Errorf("oauth: %s: oauth-login is for flow = \"refresh_token\" (this upstream uses %q, which needs no login)", opt.Name, opt.Flow)
	}
	if opt.DeviceAuthURL == "" {
		return 0, fmt.Errorf("oauth: %s: device_auth_url is required for oauth-login (or tenant, for Microsoft)", opt.Name)
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = DefaultHTTPClient()
	}
	// New checks the rest: client id, token URL, the secret file.
	s, err := New(opt)
	if err != nil {
		return 0, err
	}
	if err := s.checkTokenURL(opt.DeviceAuthURL); err != nil {
		return 0, errors.New(strings.ReplaceAll(err.Error(), "token_url", "device_auth_url"))
	}
	secret := ""
	if opt.ClientSecretFile != "" {
		if secret, err = readSecret(opt.Name, "client_secret_file", opt.ClientSecretFile); err != nil {
			return 0, err
		}
	}
	conf := &oauth2.Config{
		ClientID:     opt.ClientID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{TokenURL: opt.TokenURL, DeviceAuthURL: opt.DeviceAuthURL,
			AuthStyle: oauth2.AuthStyleInParams},
		Scopes: opt.Scopes,
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, opt.HTTPClient)
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return 0, fmt.Errorf("oauth: %s: asking for a device code: %w%s", opt.Name, s.describe(ctx, err), publicClientHint(err, secret))
	}
	show(DeviceCode{URL: da.VerificationURI, Code: da.UserCode, Complete: da.VerificationURIComplete, Expires: da.Expiry})
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			switch re.ErrorCode {
			case "expired_token":
				return 0, fmt.Errorf("oauth: %s: the code expired before the login was finished; run oauth-login again", opt.Name)
			case "access_denied":
				return 0, fmt.Errorf("oauth: %s: the login was refused (access_denied): consent was not given", opt.Name)
			}
		}
		return 0, fmt.Errorf("oauth: %s: waiting for the login: %w%s", opt.Name, s.describe(ctx, err), publicClientHint(err, secret))
	}
	if tok.RefreshToken == "" {
		return 0, fmt.Errorf("oauth: %s: the login worked but the provider issued no refresh token; add \"offline_access\" to scopes (Microsoft) and run oauth-login again", opt.Name)
	}
	if err := WriteSecretFile(opt.RefreshTokenFile, tok.RefreshToken); err != nil {
		return 0, err
	}
	life := defaultLifetime
	if !tok.Expiry.IsZero() {
		life = time.Until(tok.Expiry).Round(time.Second)
	}
	return life, nil
}

// publicClientHint: Entra ID answers a device login without a secret with
// invalid_client unless the app registration allows public client flows.
func publicClientHint(err error, secret string) string {
	var re *oauth2.RetrieveError
	if secret == "" && errors.As(err, &re) && (re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client") {
		return "; without client_secret_file the app registration must allow public client flows (Entra ID: Authentication, Allow public client flows = Yes)"
	}
	return ""
}
