// Package oauth keeps an OAuth 2.0 access token for an upstream relay that
// wants XOAUTH2 or OAUTHBEARER (Microsoft 365, Google Workspace): it fetches
// the token before it is needed, refreshes it ahead of expiry, writes a
// rotated refresh token back to its file, and turns the token endpoint's
// refusals into sentences a technician can act on. The protocol work is
// golang.org/x/oauth2's (and its clientcredentials and jwt packages); the
// google package is deliberately not used, since it pulls the cloud
// metadata clients into the binary.
//
// Secrets live only in files named by Options and in this package's memory;
// no error, log line or method result other than Token carries one.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Flow is how the access token is obtained.
type Flow string

const (
	// FlowRefreshToken trades a refresh token (from `relaybox oauth-login`
	// or the provider's tools) for access tokens: delegated access to one
	// mailbox (Microsoft) or a user account (Google).
	FlowRefreshToken Flow = "refresh_token"
	// FlowClientCredentials is app-only access (Microsoft 365): the
	// application's own secret or certificate, no user involved.
	FlowClientCredentials Flow = "client_credentials"
	// FlowJWT is a Google service account with domain-wide delegation
	// acting as the mailbox Subject (RFC 7523 JWT bearer grant).
	FlowJWT Flow = "jwt"
)

// Options configure New. Paths name files; the files hold the secrets.
type Options struct {
	// Name says whose token this is in messages, e.g. "upstream[0]";
	// Upstream is its index, for the `relaybox oauth-login -upstream N` hint.
	Name     string
	Upstream int
	Flow     Flow

	TokenURL      string // required but for jwt (cmd derives it from a tenant)
	DeviceAuthURL string // DeviceLogin only
	ClientID      string // refresh_token, client_credentials
	Scopes        []string

	ClientSecretFile string // refresh_token (optional), client_credentials (or the certificate)
	RefreshTokenFile string // refresh_token: read at every refresh; rotated tokens are written back

	// CertFile and KeyFile: client_credentials with a certificate instead
	// of a secret (Entra ID), sent as a signed client assertion.
	CertFile, KeyFile string

	ServiceAccountFile string // jwt: the Google service-account key (JSON)
	Subject            string // jwt: the mailbox to act as

	// HTTPClient reaches the token endpoint; default: a client with a
	// 30s timeout that trusts the system roots, else the built-in ones.
	HTTPClient *http.Client
	// RefreshBefore is how long before expiry a token is replaced
	// (default 5m): a session opened just before expiry must not carry a
	// token that dies on the way.
	RefreshBefore time.Duration
	Now           func() time.Time // default time.Now
	Logger        *slog.Logger
}

// Source hands out a valid access token for one upstream. Its methods are
// safe for concurrent use.
type Source struct {
	opt   Options
	fetch func(ctx context.Context) (*oauth2.Token, error)
	log   *slog.Logger

	refresh *refreshFile // FlowRefreshToken only

	firstRetry time.Duration // Run's first retry delay: minRetry (tests shorten it)

	mu        sync.Mutex // held across a fetch, so concurrent callers share one
	access    string
	expiry    time.Time // on the injected clock; zero: no token
	refreshAt time.Time // RefreshBefore ahead of expiry, or half-way for short-lived tokens
	lastErr   error
}

// Default timings.
const (
	defaultRefreshBefore = 5 * time.Minute
	// minUseful: a token with less left than this is not handed out.
	minUseful = 30 * time.Second
	// defaultLifetime stands in when the endpoint names no expiry.
	defaultLifetime = time.Hour
	httpTimeout     = 30 * time.Second
)

// New checks opt and reads the files every flow needs now, so a missing
// secret fails at start-up; it fetches nothing (see Token and Run).
func New(opt Options) (*Source, error) {
	if opt.Name == "" {
		opt.Name = fmt.Sprintf("upstream[%d]", opt.Upstream)
	}
	if opt.RefreshBefore <= 0 {
		opt.RefreshBefore = defaultRefreshBefore
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = DefaultHTTPClient()
	}
	s := &Source{opt: opt, log: opt.Logger, firstRetry: minRetry}
	var err error
	switch opt.Flow {
	case FlowRefreshToken:
		s.fetch, err = s.refreshTokenFlow()
	case FlowClientCredentials:
		s.fetch, err = s.clientCredentialsFlow()
	case FlowJWT:
		s.fetch, err = s.jwtFlow()
	default:
		err = fmt.Errorf("oauth: %s: flow %q: want refresh_token, client_credentials or jwt", opt.Name, opt.Flow)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns an access token with at least RefreshBefore left, fetching
// a new one when needed. When a refresh ahead of expiry fails but the
// current token still has time left, that token is returned and the
// failure logged: the mail goes out and the next call tries again.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Now()
	if s.access != "" && now.Before(s.refreshAt) {
		return s.access, nil
	}
	err := s.renew(ctx)
	if err == nil {
		return s.access, nil
	}
	if s.access != "" && now.Before(s.expiry.Add(-minUseful)) {
		s.log.Warn("oauth: refreshing the access token ahead of expiry failed; using the current one meanwhile",
			"upstream", s.opt.Name, "expires_in", s.expiry.Sub(now).Round(time.Second).String(), "err", err.Error())
		return s.access, nil
	}
	return "", err
}

// renew fetches a token; s.mu is held.
func (s *Source) renew(ctx context.Context) error {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.opt.HTTPClient)
	tok, err := s.fetch(ctx)
	if err != nil {
		s.lastErr = s.describe(ctx, err)
		return s.lastErr
	}
	if tok.AccessToken == "" {
		s.lastErr = &Error{Upstream: s.opt.Name, Text: "the token endpoint answered without an access token"}
		return s.lastErr
	}
	// x/oauth2 dates the expiry on the wall clock; carry the lifetime
	// over to the injected one.
	life := defaultLifetime
	if !tok.Expiry.IsZero() {
		life = time.Until(tok.Expiry).Round(time.Second)
	}
	now := s.opt.Now()
	// A token that lives less than twice RefreshBefore is renewed half-way,
	// not at once and over and over.
	s.access, s.expiry, s.lastErr = tok.AccessToken, now.Add(life), nil
	s.refreshAt = now.Add(life - min(s.opt.RefreshBefore, life/2))
	s.log.Info("oauth: access token fetched", "upstream", s.opt.Name, "flow", string(s.opt.Flow),
		"valid_for", life.Round(time.Second).String())
	if s.refresh != nil {
		s.refresh.rotated(tok.RefreshToken, s.log, s.opt.Name)
	}
	return nil
}

// Invalidate forgets token after the relay refused it (535), so the next
// Token fetches a new one instead of offering the refused one again.
func (s *Source) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != "" && token == s.access {
		s.access, s.expiry = "", time.Time{}
	}
}

// Expiry is when the current token expires (zero: none held), for the
// upstream check's report.
func (s *Source) Expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiry
}

// Describe names the flow and the endpoint for the upstream check, e.g.
// "refresh_token flow at login.microsoftonline.com".
func (s *Source) Describe() string {
	return fmt.Sprintf("%s flow at %s", s.opt.Flow, hostOf(s.opt.TokenURL))
}

// Run keeps the token fresh until ctx ends: it fetches one at once (so a
// revoked grant shows in the status before any mail needs it), then again
// RefreshBefore ahead of each expiry, retrying failures with backoff.
// report, if set, is called with every failed fetch (retried after 30s,
// doubling up to 10m) and with nil once fetching works again; while all
// is well it is not called.
func (s *Source) Run(ctx context.Context, report func(error)) {
	failing := false
	retry := s.firstRetry
	for {
		_, err := s.Token(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && report != nil:
			report(err)
		case err == nil && failing && report != nil:
			report(nil)
		}
		failing = err != nil
		var wait time.Duration
		wait, retry = s.nextWait(err, retry)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// nextWait is how long Run sleeps after a Token call that returned err,
// and the retry delay after that. A failed refresh backs off even when
// the current token still works (Token hid the failure), rather than
// asking the endpoint again every second until the token runs out.
func (s *Source) nextWait(err error, retry time.Duration) (wait, nextRetry time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.lastErr == nil {
		return max(s.refreshAt.Sub(s.opt.Now()), time.Second), s.firstRetry
	}
	wait = retry
	if err == nil { // still holding a usable token: retry before it is gone
		wait = min(wait, max(s.expiry.Add(-minUseful).Sub(s.opt.Now()), time.Second))
	}
	return wait, min(2*retry, maxRetry)
}

// Retry bounds of Run after a failed fetch.
const (
	minRetry = 30 * time.Second
	maxRetry = 10 * time.Minute
)

// errNoToken marks the refresh-token file as missing or empty.
var errNoToken = errors.New("no refresh token")
