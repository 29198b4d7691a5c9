package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"relaybox/internal/oauth/oauthtest"
	"relaybox/internal/sink"
)

const (
	e2eClientID = "e2e-client-0000"
	e2eSecret   = "Client-S3cret-xyzzy-oauth"
	e2eRefresh  = "RT-first-plugh"
)

// oauthFixture is a token endpoint and a relay like smtp.office365.com
// that accepts only the endpoint's live access tokens.
type oauthFixture struct {
	tokens *oauthtest.Server
	up     *upstreamFixture
	dir    string
}

func startOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	f := &oauthFixture{tokens: oauthtest.Start(), dir: t.TempDir()}
	t.Cleanup(f.tokens.Close)
	f.tokens.ClientID, f.tokens.ClientSecret = e2eClientID, e2eSecret
	f.up = startUpstream(t, f.dir, false, sink.Options{
		Bearer: func(user, tok string) bool { return user == "scanner@campus.test" && f.tokens.ValidAccess(tok) },
	})
	return f
}

// upstreamOAuth is the [[upstream]] tail for a refresh_token upstream.
func (f *oauthFixture) upstreamOAuth(t *testing.T, refreshFile string) string {
	return fmt.Sprintf(`username = "scanner@campus.test"
auth = "xoauth2"
[upstream.oauth]
flow = "refresh_token"
token_url = %q
device_auth_url = %q
client_id = %q
client_secret_file = %q
refresh_token_file = %q
scopes = ["https://outlook.office.com/SMTP.Send", "offline_access"]
`, f.tokens.TokenURL, f.tokens.DeviceAuthURL, e2eClientID,
		writeFile(t, filepath.Join(f.dir, "client.secret"), e2eSecret+"\n"), refreshFile)
}

type e2eStatus struct {
	State  string
	Reason string
}

func oauthStatus(t *testing.T, admin string) e2eStatus {
	t.Helper()
	var st e2eStatus
	if err := json.Unmarshal([]byte(adminGet(t, admin, "/api/status", "")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A mail goes out with a token; the grant is revoked mid-run: the next
// mail is deferred (not dead), the status says degraded and why; a new
// refresh token (as oauth-login writes) brings delivery back.
func TestE2EOAuthRevokedTokenDefersThenRecovers(t *testing.T) {
	f := startOAuthFixture(t)
	f.tokens.AddRefreshToken(e2eRefresh)
	f.tokens.SetRotate(true)
	refreshFile := writeFile(t, filepath.Join(f.dir, "refresh.token"), e2eRefresh+"\n")
	addr, admin := freeAddr(t), freeAddr(t)
	cfgText := forwardConfig(filepath.Join(f.dir, "data"), addr, f.up.sink.Addr(), "starttls", f.up.caFile, f.upstreamOAuth(t, refreshFile))
	cfgText = strings.Replace(cfgText, "[admin]\nlisten = \"\"\n", "", 1) + fmt.Sprintf("[admin]\nlisten = %q\n", admin)
	// A session opened before the revocation would carry on (as real
	// relays let it): the test wants the next mail on a new session.
	cfgText = strings.Replace(cfgText, "[delivery]\n", "[delivery]\nidle_close = \"200ms\"\n", 1)
	cfg := writeFile(t, filepath.Join(f.dir, "relaybox.toml"), cfgText)
	p := startRelay(t, cfg, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if ids := sendPython(t, ctx, addr, 1, 1, "alice@campus.test", 0); len(ids) != 1 {
		t.Fatalf("first message not accepted: %v", ids)
	}
	if _, err := f.up.sink.Wait(ctx, 1); err != nil {
		t.Fatalf("first message not delivered with the token: %v\n%s", err, p.Log())
	}
	// The endpoint rotated the refresh token; the relay saved it.
	if got := strings.TrimSpace(readFileT(t, refreshFile)); got == e2eRefresh || !strings.HasPrefix(got, "RT-") {
		t.Fatalf("refresh_token_file holds %q after rotation", got)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(refreshFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("refresh_token_file mode %v", fi.Mode().Perm())
		}
	}

	// Revoked: the cached access token is refused (535), the refresh
	// fails with invalid_grant.
	f.tokens.RevokeAll()
	ids := sendPython(t, ctx, addr, 1, 1, "bob@campus.test", 0)
	if len(ids) != 1 {
		t.Fatalf("second message not accepted: %v", ids)
	}
	waitLog(t, p, "event=deferred", 2)
	var st e2eStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		st = oauthStatus(t, admin)
		if st.State == "degraded" && strings.Contains(st.Reason, "token refresh failed: invalid_grant") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v; want degraded with the token refresh failure\n%s", st, p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustContain(t, st.Reason, f.up.sink.Addr(), "run relaybox oauth-login -upstream 0")
	if dead := adminGet(t, admin, "/api/dead", ""); strings.Contains(dead, ids[0]) {
		t.Fatalf("the message went to the dead letters: %s", dead)
	}
	if q := adminGet(t, admin, "/api/queue", ""); !strings.Contains(q, ids[0]) {
		t.Fatalf("the message is not queued: %s", q)
	}
	if n := len(f.up.sink.Messages()); n != 1 {
		t.Fatalf("%d messages upstream while revoked", n)
	}

	// Restored: a new refresh token in the file, as oauth-login writes.
	f.tokens.AddRefreshToken("RT-restored-frotz")
	writeFile(t, refreshFile, "RT-restored-frotz\n")
	if _, err := f.up.sink.Wait(ctx, 2); err != nil {
		t.Fatalf("not delivered after the token was restored: %v\n%s", err, p.Log())
	}
	deadline = time.Now().Add(30 * time.Second)
	for st = oauthStatus(t, admin); st.State != "ok"; st = oauthStatus(t, admin) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v after recovery; want ok", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.stop()
	log := p.Log()
	for _, secret := range append(f.tokens.Issued(), e2eSecret, e2eRefresh, "RT-restored-frotz") {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a token or secret (%.10s...)", secret)
		}
	}
}

// oauth-login gets the first refresh token by device code and writes it
// 0600; upstream-check then shows token, TLS and AUTH.
func TestE2EOAuthLoginAndUpstreamCheck(t *testing.T) {
	f := startOAuthFixture(t)
	f.tokens.SetDevicePending(1)
	refreshFile := filepath.Join(f.dir, "refresh.token") // not there yet
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(f.dir, "relaybox.toml"),
		forwardConfig(filepath.Join(f.dir, "data"), addr, f.up.sink.Addr(), "starttls", f.up.caFile, f.upstreamOAuth(t, refreshFile)))

	// Before the login, check-config and the check say what to do.
	if out, err := exec.Command(relayBinary, "check-config", "-config", cfg).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "warning: upstream[0] ("+f.up.sink.Addr()+") has no refresh token yet: run relaybox oauth-login -upstream 0") {
		t.Fatalf("check-config before login: %v\n%s", err, out)
	}
	out, err := exec.Command(relayBinary, "upstream-check", "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no refresh token in "+refreshFile+" (run relaybox oauth-login -upstream 0)") {
		t.Fatalf("upstream-check before login: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, relayBinary, "oauth-login", "-config", cfg, "-upstream", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("oauth-login: %v\n%s", err, out)
	}
	mustContain(t, string(out), f.tokens.URL+"/device", "ABCD-EFGH", "refresh token written to "+refreshFile)
	rt := strings.TrimSpace(readFileT(t, refreshFile))
	if rts := f.tokens.RefreshTokens(); len(rts) != 1 || rts[0] != rt {
		t.Fatalf("file holds %q; endpoint issued %v", rt, rts)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(refreshFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v; want 0600", fi.Mode().Perm())
		}
	}
	if strings.Contains(string(out), rt) {
		t.Error("oauth-login printed the refresh token")
	}

	out, err = exec.Command(relayBinary, "upstream-check", "-config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("upstream-check: %v\n%s", err, out)
	}
	mustContain(t, string(out), "(tls=starttls, auth=xoauth2, oauth flow=refresh_token)",
		"token      ok (access token fetched for scanner@campus.test (refresh_token flow at 127.0.0.1",
		"tls        ok", "verified against "+f.up.caFile, "auth       ok (XOAUTH2 as scanner@campus.test: accepted)", "nothing was sent")
	for _, secret := range append(f.tokens.Issued(), e2eSecret) {
		if strings.Contains(string(out), secret) {
			t.Errorf("upstream-check shows a token or secret")
		}
	}
}

func readFileT(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With no mail queued, a grant that cannot produce a token already shows
// in the status (the background refresh), naming the fix.
func TestE2EOAuthProblemShowsBeforeAnyMail(t *testing.T) {
	f := startOAuthFixture(t)
	refreshFile := filepath.Join(f.dir, "refresh.token") // oauth-login not run yet
	addr, admin := freeAddr(t), freeAddr(t)
	cfgText := forwardConfig(filepath.Join(f.dir, "data"), addr, f.up.sink.Addr(), "starttls", f.up.caFile, f.upstreamOAuth(t, refreshFile))
	cfgText = strings.Replace(cfgText, "[admin]\nlisten = \"\"\n", "", 1) + fmt.Sprintf("[admin]\nlisten = %q\n", admin)
	p := startRelay(t, writeFile(t, filepath.Join(f.dir, "relaybox.toml"), cfgText), addr)
	want := "token refresh failed: no refresh token in " + refreshFile + " (run relaybox oauth-login -upstream 0)"
	deadline := time.Now().Add(30 * time.Second)
	for st := oauthStatus(t, admin); st.State != "degraded" || !strings.Contains(st.Reason, want); st = oauthStatus(t, admin) {
		if time.Now().After(deadline) {
			t.Fatalf("status %+v; want degraded with %q\n%s", st, want, p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustContain(t, p.Log(), "upstream token refresh failed")
}
