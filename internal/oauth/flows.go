package oauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

type fetchFunc = func(ctx context.Context) (*oauth2.Token, error)

// checkTokenURL allows https, and plain http only to this machine (a
// local test endpoint): the request carries the client secret.
func (s *Source) checkTokenURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("oauth: %s: token_url is required (or tenant, for Microsoft)", s.opt.Name)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("oauth: %s: token_url %q is not a URL; write e.g. \"https://login.microsoftonline.com/TENANT/oauth2/v2.0/token\"", s.opt.Name, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("oauth: %s: token_url %q must use https: the request carries the application's credentials", s.opt.Name, raw)
}

func (s *Source) refreshTokenFlow() (fetchFunc, error) {
	o := s.opt
	if o.ClientID == "" {
		return nil, fmt.Errorf("oauth: %s: client_id is required for flow refresh_token", o.Name)
	}
	if o.RefreshTokenFile == "" {
		return nil, fmt.Errorf("oauth: %s: refresh_token_file is required for flow refresh_token (relaybox oauth-login -upstream %d writes it)", o.Name, o.Upstream)
	}
	if err := s.checkTokenURL(o.TokenURL); err != nil {
		return nil, err
	}
	secret := ""
	if o.ClientSecretFile != "" { // public clients (device code) have none
		var err error
		if secret, err = readSecret(o.Name, "client_secret_file", o.ClientSecretFile); err != nil {
			return nil, err
		}
	}
	// A missing token file is not fatal: the daemon starts, and the
	// status says to run oauth-login. An unreadable one is a setup error.
	if _, err := os.Stat(o.RefreshTokenFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("oauth: %s: refresh_token_file: %w", o.Name, err)
	}
	s.refresh = &refreshFile{path: o.RefreshTokenFile}
	conf := &oauth2.Config{
		ClientID:     o.ClientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{TokenURL: o.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:       o.Scopes,
	}
	return func(ctx context.Context) (*oauth2.Token, error) {
		rt, err := s.refresh.current()
		if err != nil {
			return nil, err
		}
		// A source with no access token refreshes at once; a new one per
		// call keeps the choice of when to refresh here, on our clock.
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}, nil
}

func (s *Source) clientCredentialsFlow() (fetchFunc, error) {
	o := s.opt
	if o.ClientID == "" {
		return nil, fmt.Errorf("oauth: %s: client_id is required for flow client_credentials", o.Name)
	}
	if err := s.checkTokenURL(o.TokenURL); err != nil {
		return nil, err
	}
	base := func(params url.Values, secret string) *clientcredentials.Config {
		return &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: secret, TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: params, AuthStyle: oauth2.AuthStyleInParams}
	}
	switch {
	case o.ClientSecretFile != "" && o.CertFile != "":
		return nil, fmt.Errorf("oauth: %s: set client_secret_file or certificate_file, not both", o.Name)
	case o.ClientSecretFile != "":
		secret, err := readSecret(o.Name, "client_secret_file", o.ClientSecretFile)
		if err != nil {
			return nil, err
		}
		conf := base(nil, secret)
		return conf.Token, nil
	case o.CertFile != "":
		a, err := loadAssertionKey(o)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (*oauth2.Token, error) {
			jwt, err := a.sign(o.ClientID, o.TokenURL, time.Now())
			if err != nil {
				return nil, err
			}
			// RFC 7523 2.2: the signed assertion replaces the secret.
			return base(url.Values{
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {jwt},
			}, "").Token(ctx)
		}, nil
	}
	return nil, fmt.Errorf("oauth: %s: flow client_credentials needs client_secret_file or certificate_file and certificate_key_file", o.Name)
}

// serviceAccount is the part of a Google service-account key file we use.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

func (s *Source) jwtFlow() (fetchFunc, error) {
	o := s.opt
	if o.ServiceAccountFile == "" {
		return nil, fmt.Errorf("oauth: %s: service_account_file is required for flow jwt (the JSON key of the Google service account)", o.Name)
	}
	if o.Subject == "" {
		return nil, fmt.Errorf("oauth: %s: subject is required for flow jwt (the mailbox to send as, e.g. \"scanner@example.edu\")", o.Name)
	}
	b, err := os.ReadFile(o.ServiceAccountFile)
	if err != nil {
		return nil, fmt.Errorf("oauth: %s: service_account_file: %w", o.Name, err)
	}
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil || sa.Type != "service_account" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		// Never quote the file: it holds the private key.
		return nil, fmt.Errorf("oauth: %s: service_account_file %s is not a Google service-account key (want the JSON key with \"type\": \"service_account\", downloaded from the Cloud console)", o.Name, o.ServiceAccountFile)
	}
	if _, err := parseRSAKey([]byte(sa.PrivateKey)); err != nil {
		return nil, fmt.Errorf("oauth: %s: service_account_file %s: private_key: %w", o.Name, o.ServiceAccountFile, err)
	}
	tokenURL := o.TokenURL
	if tokenURL == "" {
		tokenURL = sa.TokenURI
	}
	if tokenURL == "" {
		tokenURL = "https://oauth2.googleapis.com/token"
	}
	if err := s.checkTokenURL(tokenURL); err != nil {
		return nil, err
	}
	s.opt.TokenURL = tokenURL
	conf := &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
		Subject: o.Subject, Scopes: o.Scopes, TokenURL: tokenURL}
	return func(ctx context.Context) (*oauth2.Token, error) { return conf.TokenSource(ctx).Token() }, nil
}

// readSecret reads a one-line secret file; the value never reaches an error.
func readSecret(name, key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("oauth: %s: %s: %w", name, key, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("oauth: %s: %s %s is empty", name, key, path)
	}
	return v, nil
}

func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM private key found")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("the private key is not an RSA key")
	}
	k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errors.New("the private key is neither PKCS#8 nor PKCS#1 RSA")
	}
	return k, nil
}

// assertionKey signs client assertions for the certificate variant of
// client_credentials (Entra ID "certificate credentials").
type assertionKey struct {
	key        *rsa.PrivateKey
	thumbprint string // base64url SHA-1 of the certificate: the x5t header
}

func loadAssertionKey(o Options) (*assertionKey, error) {
	if o.KeyFile == "" {
		return nil, fmt.Errorf("oauth: %s: certificate_key_file is required with certificate_file", o.Name)
	}
	pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("oauth: %s: certificate_file / certificate_key_file: %w", o.Name, err)
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("oauth: %s: certificate_key_file: Entra ID wants an RSA key", o.Name)
	}
	sum := sha1.Sum(pair.Certificate[0])
	return &assertionKey{key: key, thumbprint: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// sign makes the RS256 assertion: issuer and subject are the client,
// audience the token endpoint, valid for ten minutes.
func (a *assertionKey) sign(clientID, audience string, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": a.thumbprint})
	claims, _ := json.Marshal(map[string]any{
		"aud": audience, "iss": clientID, "sub": clientID,
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	h := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA256, h[:])
	if err != nil {
		return "", fmt.Errorf("oauth: signing the client assertion: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
