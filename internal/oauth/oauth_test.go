package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"relaybox/internal/clocktest"
	"relaybox/internal/oauth/oauthtest"
)

const (
	testClientID = "11111111-2222-3333-4444-555555555555"
	testSecret   = "client-S3cret-zorkmid"
	testRefresh  = "RT-initial-grue"
)

func writeSecret(t *testing.T, dir, name, v string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// refreshFixture: a token endpoint that knows testRefresh, and a Source on
// a settable clock.
func refreshFixture(t *testing.T) (*oauthtest.Server, *Source, *clocktest.Clock, Options) {
	t.Helper()
	srv := oauthtest.Start()
	t.Cleanup(srv.Close)
	srv.ClientID, srv.ClientSecret = testClientID, testSecret
	srv.AddRefreshToken(testRefresh)
	dir := t.TempDir()
	clk := clocktest.New(time.Now())
	opt := Options{
		Name: "upstream[0]", Flow: FlowRefreshToken, TokenURL: srv.TokenURL, ClientID: testClientID,
		ClientSecretFile: writeSecret(t, dir, "secret", testSecret),
		RefreshTokenFile: writeSecret(t, dir, "refresh", testRefresh),
		Scopes:           []string{"https://outlook.office.com/SMTP.Send", "offline_access"},
		Now:              clk.Now,
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return srv, s, clk, opt
}

func TestRefreshTokenFetchesOnceAndRefreshesAheadOfExpiry(t *testing.T) {
	srv, s, clk, _ := refreshFixture(t)
	ctx := context.Background()
	a, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.ValidAccess(a) {
		t.Fatalf("token %q not issued by the endpoint", a)
	}
	clk.Add(50 * time.Minute) // 10 minutes left: still good
	if b, err := s.Token(ctx); err != nil || b != a {
		t.Fatalf("second Token = %q, %v; want the cached %q", b, err, a)
	}
	if n := srv.Grants(oauthtest.GrantRefresh); n != 1 {
		t.Fatalf("%d refreshes; want 1 while the token is fresh", n)
	}
	clk.Add(6 * time.Minute) // 4 minutes left: inside RefreshBefore (5m)
	c, err := s.Token(ctx)
	if err != nil || c == a {
		t.Fatalf("Token near expiry = %q, %v; want a new token", c, err)
	}
	if n := srv.Grants(oauthtest.GrantRefresh); n != 2 {
		t.Fatalf("%d refreshes; want 2", n)
	}
}

func TestShortLivedTokensAreRenewedHalfWay(t *testing.T) {
	srv, s, clk, _ := refreshFixture(t)
	srv.SetLifetime(2 * time.Minute) // shorter than RefreshBefore (5m)
	ctx := context.Background()
	a, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Token(ctx); b != a || srv.Grants(oauthtest.GrantRefresh) != 1 {
		t.Fatal("a 2-minute token was replaced at once")
	}
	if wait, _ := s.nextWait(nil, minRetry); wait != time.Minute {
		t.Fatalf("Run would wait %s; want 1m (half the lifetime)", wait)
	}
	clk.Add(61 * time.Second)
	if b, _ := s.Token(ctx); b == a {
		t.Fatal("not renewed half-way")
	}
}

func TestRefreshTokenRotationIsWrittenBack(t *testing.T) {
	srv, s, clk, opt := refreshFixture(t)
	srv.SetRotate(true)
	ctx := context.Background()
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	rotated := readTrim(t, opt.RefreshTokenFile)
	if rotated == testRefresh || !strings.HasPrefix(rotated, "RT-") {
		t.Fatalf("refresh_token_file holds %q; want the rotated token", rotated)
	}
	if rts := srv.RefreshTokens(); len(rts) != 1 || rts[0] != rotated {
		t.Fatalf("endpoint knows %v; file holds %q", rts, rotated)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(opt.RefreshTokenFile)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v; want 0600", fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(opt.RefreshTokenFile))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// The old token is void now: only the saved one keeps working, also
	// for a fresh Source (a restart).
	clk.Add(time.Hour)
	if _, err := s.Token(ctx); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	s2, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Token(ctx); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

func TestRevokedRefreshTokenSaysRunOAuthLogin(t *testing.T) {
	srv, s, _, opt := refreshFixture(t)
	srv.RevokeAll()
	_, err := s.Token(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" {
		t.Fatalf("err = %v; want an *Error with invalid_grant", err)
	}
	msg := err.Error()
	for _, want := range []string{"token refresh failed: invalid_grant", "revoked", "run relaybox oauth-login -upstream 0", "AADSTS70000"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "Trace ID") {
		t.Errorf("error %q keeps Entra's trace IDs", msg)
	}
	for _, secret := range []string{testRefresh, testSecret} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q carries a secret", msg)
		}
	}
	// A new token written by oauth-login is used at the next attempt.
	srv.AddRefreshToken("RT-restored")
	if err := WriteSecretFile(opt.RefreshTokenFile, "RT-restored"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(context.Background()); err != nil {
		t.Fatalf("after the token file was replaced: %v", err)
	}
}

func TestEndpointDownKeepsTheCurrentTokenUntilItExpires(t *testing.T) {
	srv, s, clk, _ := refreshFixture(t)
	ctx := context.Background()
	a, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetFailure(500)
	clk.Add(57 * time.Minute) // inside the refresh window, not expired
	if b, err := s.Token(ctx); err != nil || b != a {
		t.Fatalf("Token with the endpoint down = %q, %v; want the current token", b, err)
	}
	clk.Add(3 * time.Minute) // expired now
	_, err = s.Token(ctx)
	var e *Error
	if !errors.As(err, &e) || e.Status != 500 || !strings.Contains(err.Error(), "is failing (HTTP 500)") {
		t.Fatalf("err = %v; want the endpoint's 500 described", err)
	}
	srv.SetFailure(0)
	if _, err := s.Token(ctx); err != nil {
		t.Fatalf("after the endpoint recovered: %v", err)
	}
}

func TestInvalidateFetchesANewToken(t *testing.T) {
	srv, s, _, _ := refreshFixture(t)
	ctx := context.Background()
	a, _ := s.Token(ctx)
	s.Invalidate("some other token")
	if b, _ := s.Token(ctx); b != a {
		t.Fatal("Invalidate of another token dropped the current one")
	}
	s.Invalidate(a)
	b, err := s.Token(ctx)
	if err != nil || b == a || srv.Grants(oauthtest.GrantRefresh) != 2 {
		t.Fatalf("after Invalidate: %q, %v, %d refreshes", b, err, srv.Grants(oauthtest.GrantRefresh))
	}
}

func TestMissingRefreshTokenFileNamesOAuthLogin(t *testing.T) {
	_, _, _, opt := refreshFixture(t)
	os.Remove(opt.RefreshTokenFile)
	s, err := New(opt) // starts: the status will say what to do
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no refresh token in "+opt.RefreshTokenFile+" (run relaybox oauth-login -upstream 0)") {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenURLMustBeHTTPSExceptLoopback(t *testing.T) {
	_, _, _, opt := refreshFixture(t)
	for url, ok := range map[string]bool{
		"https://login.microsoftonline.com/x/oauth2/v2.0/token": true,
		"http://127.0.0.1:9/token":                              true,
		"http://login.example.com/token":                        false,
		"":                                                      false,
	} {
		opt.TokenURL = url
		_, err := New(opt)
		if (err == nil) != ok {
			t.Errorf("token_url %q: err = %v", url, err)
		}
	}
}

func TestClientCredentialsWithSecret(t *testing.T) {
	srv := oauthtest.Start()
	defer srv.Close()
	srv.ClientID, srv.ClientSecret = testClientID, testSecret
	dir := t.TempDir()
	opt := Options{Flow: FlowClientCredentials, TokenURL: srv.TokenURL, ClientID: testClientID,
		ClientSecretFile: writeSecret(t, dir, "secret", testSecret), Scopes: []string{"https://outlook.office365.com/.default"}}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Token(context.Background())
	if err != nil || !srv.ValidAccess(a) {
		t.Fatalf("Token = %q, %v", a, err)
	}
	if got := srv.LastForm().Get("scope"); got != "https://outlook.office365.com/.default" {
		t.Errorf("scope sent %q", got)
	}
	// An expired client secret.
	opt.ClientSecretFile = writeSecret(t, dir, "old", "expired-secret")
	s, _ = New(opt)
	_, err = s.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_client (check client_id and the client secret") || strings.Contains(err.Error(), "expired-secret") {
		t.Fatalf("err = %v", err)
	}
}

// testKeys are made once: RSA key generation takes seconds under qemu
// on the ARMv6 test run.
var testKeys = sync.OnceValues(func() (*rsa.PrivateKey, *rsa.PrivateKey) {
	a, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	b, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return a, b
})

// rsaCert writes a self-signed certificate for key and the key as PEM files.
func rsaCert(t *testing.T, dir string, key *rsa.PrivateKey) (*rsa.PrivateKey, string, string, string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relaybox"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	certFile := filepath.Join(dir, "app.crt")
	keyFile := filepath.Join(dir, "app.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return key, certFile, keyFile, base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestClientCredentialsWithCertificateAssertion(t *testing.T) {
	srv := oauthtest.Start()
	defer srv.Close()
	dir := t.TempDir()
	mine, _ := testKeys()
	key, certFile, keyFile, thumb := rsaCert(t, dir, mine)
	srv.ClientID, srv.ClientSecret = testClientID, "not-used"
	srv.AssertionKey, srv.AssertionThumb = &key.PublicKey, thumb
	s, err := New(Options{Flow: FlowClientCredentials, TokenURL: srv.TokenURL, ClientID: testClientID,
		CertFile: certFile, KeyFile: keyFile, Scopes: []string{"https://outlook.office365.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Token(context.Background())
	if err != nil || !srv.ValidAccess(a) {
		t.Fatalf("Token = %q, %v", a, err)
	}
	if srv.LastForm().Get("client_secret") != "" {
		t.Error("a client secret was sent beside the assertion")
	}
	// Signed by another key: refused.
	_, other := testKeys()
	srv.AssertionKey = &other.PublicKey
	if _, err := New(Options{Flow: FlowClientCredentials, TokenURL: srv.TokenURL, ClientID: testClientID,
		CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Fatal(err)
	}
	s2, _ := New(Options{Flow: FlowClientCredentials, TokenURL: srv.TokenURL, ClientID: testClientID, CertFile: certFile, KeyFile: keyFile})
	if _, err := s2.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("assertion signed by the wrong key: err = %v", err)
	}
}

func TestJWTServiceAccountIsVerifiedAgainstTheKey(t *testing.T) {
	srv := oauthtest.Start()
	defer srv.Close()
	dir := t.TempDir()
	key, other := testKeys()
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": "relay@project.iam.gserviceaccount.com", "client_id": "1234567890",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})), "private_key_id": "k1",
		"token_uri": srv.TokenURL,
	})
	saFile := filepath.Join(dir, "sa.json")
	os.WriteFile(saFile, sa, 0o600)
	srv.ServiceAccount.Email = "relay@project.iam.gserviceaccount.com"
	srv.ServiceAccount.Key = &key.PublicKey
	srv.ServiceAccount.Subjects = []string{"scanner@example.edu"}

	opt := Options{Flow: FlowJWT, ServiceAccountFile: saFile, Subject: "scanner@example.edu", Scopes: []string{"https://mail.google.com/"}}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Token(context.Background())
	if err != nil || !srv.ValidAccess(a) {
		t.Fatalf("Token = %q, %v", a, err)
	}
	if got := srv.Scopes(); len(got) != 1 || got[0] != "https://mail.google.com/" {
		t.Errorf("scopes %v", got)
	}
	// A mailbox the delegation does not cover.
	opt.Subject = "dean@example.edu"
	s, _ = New(opt)
	_, err = s.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unauthorized_client (the service account may not act as dean@example.edu: check domain-wide delegation") {
		t.Fatalf("err = %v", err)
	}
	// A key that is not the one registered: signature refused.
	srv.ServiceAccount.Key = &other.PublicKey
	opt.Subject = "scanner@example.edu"
	s, _ = New(opt)
	if _, err := s.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_grant (Google refused the service account's signed request") ||
		!strings.Contains(err.Error(), "Invalid JWT Signature") {
		t.Fatalf("wrong key: err = %v", err)
	}
	// Not a service-account file: the error does not quote it.
	os.WriteFile(saFile, []byte(`{"private_key": "SECRET-PEM"}`), 0o600)
	if _, err := New(opt); err == nil || strings.Contains(err.Error(), "SECRET-PEM") {
		t.Fatalf("bad key file: err = %v", err)
	}
}

func TestDeviceLoginWritesTheRefreshToken(t *testing.T) {
	srv := oauthtest.Start()
	defer srv.Close()
	srv.ClientID = testClientID // a public client: no secret
	srv.SetDevicePending(1)
	dir := t.TempDir()
	opt := Options{Flow: FlowRefreshToken, TokenURL: srv.TokenURL, DeviceAuthURL: srv.DeviceAuthURL, ClientID: testClientID,
		RefreshTokenFile: filepath.Join(dir, "refresh"), Scopes: []string{"https://outlook.office.com/SMTP.Send", "offline_access"}}
	var shown DeviceCode
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	life, err := DeviceLogin(ctx, opt, func(c DeviceCode) { shown = c })
	if err != nil {
		t.Fatal(err)
	}
	if shown.Code != "ABCD-EFGH" || shown.URL != srv.URL+"/device" || life <= 0 {
		t.Errorf("shown %+v, life %s", shown, life)
	}
	rt := readTrim(t, opt.RefreshTokenFile)
	if rts := srv.RefreshTokens(); len(rts) != 1 || rts[0] != rt {
		t.Fatalf("file holds %q; endpoint issued %v", rt, rts)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(opt.RefreshTokenFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", fi.Mode().Perm())
		}
	}
	// The daemon's Source uses it.
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	// A confidential client without its secret: the hint names public client flows.
	srv.ClientSecret = "needed"
	if _, err := DeviceLogin(ctx, opt, func(DeviceCode) {}); err == nil || !strings.Contains(err.Error(), "Allow public client flows") {
		t.Fatalf("err = %v", err)
	}
	// Other flows need no login.
	opt.Flow = FlowClientCredentials
	if _, err := DeviceLogin(ctx, opt, func(DeviceCode) {}); err == nil {
		t.Fatal("DeviceLogin ran for client_credentials")
	}
}

func TestRunReportsFailureAndRecovery(t *testing.T) {
	srv, s, _, _ := refreshFixture(t)
	srv.SetFailure(503)
	s.firstRetry = 50 * time.Millisecond
	reports := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, func(err error) { reports <- err })
	select {
	case err := <-reports:
		if err == nil || !strings.Contains(err.Error(), "HTTP 503") {
			t.Fatalf("first report %v; want the 503", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run reported nothing")
	}
	srv.SetFailure(0)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-reports:
			if err == nil {
				return // recovered, and said so
			}
		case <-deadline:
			t.Fatal("Run did not report the recovery")
		}
	}
}

func TestRunBacksOffWhileARefreshFails(t *testing.T) {
	srv, s, clk, _ := refreshFixture(t)
	ctx := context.Background()
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if wait, _ := s.nextWait(nil, minRetry); wait != 55*time.Minute {
		t.Fatalf("wait after a fresh token = %s; want 55m (5m before expiry)", wait)
	}
	srv.SetFailure(500)
	clk.Add(56 * time.Minute) // refresh due, 4m left
	if _, err := s.Token(ctx); err != nil {
		t.Fatalf("Token = %v; want the current token", err)
	}
	wait, next := s.nextWait(nil, minRetry)
	if wait != minRetry || next != 2*minRetry {
		t.Fatalf("wait %s, next %s after a hidden refresh failure; want %s then %s", wait, next, minRetry, 2*minRetry)
	}
	wait, _ = s.nextWait(nil, maxRetry)
	if wait != 3*time.Minute+30*time.Second {
		t.Fatalf("wait %s; want the time until the token is nearly gone", wait)
	}
	clk.Add(5 * time.Minute)
	_, err := s.Token(ctx)
	if wait, next := s.nextWait(err, 4*time.Minute); err == nil || wait != 4*time.Minute || next != 8*time.Minute {
		t.Fatalf("after expiry: err %v wait %s next %s", err, wait, next)
	}
}

func TestWriteSecretFileReplacesAtomically(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(p, []byte("old\n"), 0o644)
	if err := WriteSecretFile(p, "new"); err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, p); got != "new" {
		t.Fatalf("file holds %q", got)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v; want 0600", fi.Mode().Perm())
		}
	}
	if err := WriteSecretFile(filepath.Join(t.TempDir(), "no", "such", "dir"), "x"); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}
