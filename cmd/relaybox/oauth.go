package main

// OAuth wiring: config's [upstream.oauth] becomes internal/oauth sources
// for the upstream client, and `relaybox oauth-login` gets the first
// refresh token by device code.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"time"

	"relaybox/internal/config"
	"relaybox/internal/deliver"
	"relaybox/internal/oauth"
)

// oauthOptions translates one upstream's [upstream.oauth].
func oauthOptions(i int, u config.Upstream, log *slog.Logger) oauth.Options {
	o := u.OAuth
	return oauth.Options{
		Name: fmt.Sprintf("upstream[%d]", i), Upstream: i, Flow: oauth.Flow(o.Flow),
		TokenURL: o.TokenURL, DeviceAuthURL: o.DeviceAuthURL, ClientID: o.ClientID, Scopes: o.Scopes,
		ClientSecretFile: o.ClientSecretFile, RefreshTokenFile: o.RefreshTokenFile,
		CertFile: o.CertificateFile, KeyFile: o.CertificateKeyFile,
		ServiceAccountFile: o.ServiceAccountFile, Subject: o.Subject,
		Logger: log,
	}
}

// tokenSources builds a token source for every upstream that logs in with
// a bearer token. The two slices are indexed like cfg.Upstream (nil where
// an upstream has no OAuth): one for the client, one for the refreshers.
func tokenSources(cfg config.Config, log *slog.Logger) ([]deliver.TokenSource, []*oauth.Source, error) {
	tokens := make([]deliver.TokenSource, len(cfg.Upstream))
	sources := make([]*oauth.Source, len(cfg.Upstream))
	for i, u := range cfg.Upstream {
		if !u.IsOAuth() {
			continue
		}
		s, err := oauth.New(oauthOptions(i, u, log))
		if err != nil {
			return nil, nil, upstreamError{i, err}
		}
		tokens[i], sources[i] = s, s
	}
	return tokens, sources, nil
}

// upstreamError is a problem with upstream i, so the config error can
// point at its [[upstream]] table.
type upstreamError struct {
	i   int
	err error
}

func (e upstreamError) Error() string { return e.err.Error() }
func (e upstreamError) Unwrap() error { return e.err }

// restartTokenRefresh stops refreshing the previous config's token sources
// and starts on b's; reloadMu or start-up serialises the calls.
func (d *daemon) restartTokenRefresh(b *built) {
	if d.tokenCancel != nil {
		d.tokenCancel()
	}
	ctx, cancel := context.WithCancel(d.ctx)
	d.tokenCancel = cancel
	d.startTokenRefresh(ctx, b.cfg, b.oauth)
}

// startTokenRefresh keeps every upstream's token fresh in the background.
// A failure shows in the status as that upstream failing, with the
// reason, before any mail needs the token; recovery clears it.
func (d *daemon) startTokenRefresh(ctx context.Context, cfg config.Config, sources []*oauth.Source) {
	for i, s := range sources {
		if s == nil {
			continue
		}
		name := cfg.Upstream[i].Address
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			s.Run(ctx, func(err error) {
				if err != nil {
					d.log.Warn("upstream token refresh failed", "upstream", name, "err", err.Error())
				}
				d.status.UpstreamResult(name, err)
			})
		}()
	}
}

// cmdOAuthLogin obtains the first refresh token of one upstream with the
// device code flow and writes it to its refresh_token_file.
func cmdOAuthLogin(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("oauth-login", stderr)
	path := fs.String("config", "", "config file (required)")
	n := fs.Int("upstream", -1, "index of the [[upstream]] to log in for (0 is the first; default: the only OAuth one)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{errors.New("-config FILE is required: the upstream's [upstream.oauth] says where to log in")}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	i, err := pickOAuthUpstream(cfg, *n)
	if err != nil {
		return usageError{err}
	}
	u := cfg.Upstream[i]
	if u.OAuth.Flow != config.FlowRefreshToken {
		return usageError{fmt.Errorf("upstream[%d] uses flow %q, which needs no login: its credentials are the files named in [upstream.oauth]", i, u.OAuth.Flow)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(stdout, "upstream[%d] %s: logging in as %s\n", i, u.Address, u.Username)
	life, err := oauth.DeviceLogin(ctx, oauthOptions(i, u, nil), func(c oauth.DeviceCode) {
		fmt.Fprintf(stdout, "\nOn any computer or phone, open\n\n    %s\n\nand enter the code\n\n    %s\n\n", c.URL, c.Code)
		fmt.Fprintf(stdout, "Sign in as %s (or an account allowed to send as it). The code is valid until %s.\nWaiting for the sign-in...\n",
			u.Username, c.Expires.Local().Format("15:04"))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed in: refresh token written to %s (mode 0600); an access token was issued, valid for %s\n",
		u.OAuth.RefreshTokenFile, life.Round(time.Minute))
	fmt.Fprintf(stdout, "next: relaybox upstream-check -config %s (a running daemon picks the token up at its next attempt)\n", *path)
	return nil
}

// pickOAuthUpstream resolves -upstream: a valid index of an OAuth
// upstream, or (for -1) the only one there is.
func pickOAuthUpstream(cfg config.Config, n int) (int, error) {
	var oauthUps []int
	for i, u := range cfg.Upstream {
		if u.IsOAuth() {
			oauthUps = append(oauthUps, i)
		}
	}
	switch {
	case n >= len(cfg.Upstream) || n < -1:
		return 0, fmt.Errorf("-upstream %d: the config has %d [[upstream]] entries (numbered from 0)", n, len(cfg.Upstream))
	case n >= 0 && !cfg.Upstream[n].IsOAuth():
		return 0, fmt.Errorf("upstream[%d] (%s) does not use OAuth; set auth = \"xoauth2\" and an [upstream.oauth] table", n, cfg.Upstream[n].Address)
	case n >= 0:
		return n, nil
	case len(oauthUps) == 1:
		return oauthUps[0], nil
	case len(oauthUps) == 0:
		return 0, errors.New("no [[upstream]] uses OAuth (auth = \"xoauth2\" with an [upstream.oauth] table)")
	}
	list := ""
	for _, i := range oauthUps {
		list += " " + strconv.Itoa(i)
	}
	return 0, fmt.Errorf("several upstreams use OAuth (%s); choose one with -upstream N", list[1:])
}
