// Package oauthtest is a fake OAuth 2.0 authorization server for tests: a
// token endpoint (refresh_token, client_credentials with a secret or a
// signed client assertion, the JWT bearer grant of a Google service
// account, the device code grant) and a device authorization endpoint.
// It checks every signature against the test keys, issues opaque access
// tokens, and can rotate refresh tokens, revoke grants and fail with 500.
package oauthtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Grant types (RFC 6749, 7523, 8628).
const (
	GrantRefresh    = "refresh_token"
	GrantClient     = "client_credentials"
	GrantJWT        = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantDevice     = "urn:ietf:params:oauth:grant-type:device_code"
	assertionTypeJW = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Server is a running fake. Configure it before use; the setters are safe
// while it serves.
type Server struct {
	URL           string // base
	TokenURL      string // URL + "/token"
	DeviceAuthURL string // URL + "/devicecode"

	ClientID     string
	ClientSecret string // "" accepts a public client (no secret)
	// AssertionKey verifies client assertions (client_credentials with a
	// certificate); AssertionThumb is the x5t header it must carry.
	AssertionKey   *rsa.PublicKey
	AssertionThumb string
	// ServiceAccount verifies JWT bearer assertions: issuer Email, signed
	// by Key, subject one of Subjects (domain-wide delegation).
	ServiceAccount struct {
		Email    string
		Key      *rsa.PublicKey
		Subjects []string
	}
	Lifetime time.Duration // access token lifetime (default 1h)

	srv *httptest.Server

	mu       sync.Mutex
	refresh  map[string]bool // valid refresh tokens
	access   map[string]bool // valid access tokens
	rotate   bool
	fail     int // HTTP status to fail every request with; 0 = serve
	pending  int // device polls answered authorization_pending before success
	devices  map[string]bool
	n        int
	grants   map[string]int
	scopes   []string // the scope parameter of the last token request
	lastForm url.Values
	issued   []string // every access and refresh token ever issued
}

// Start serves on 127.0.0.1 over plain HTTP (relaybox allows http only to
// loopback token endpoints). Close it when done.
func Start() *Server {
	s := &Server{refresh: map[string]bool{}, access: map[string]bool{}, devices: map[string]bool{}, grants: map[string]int{},
		Lifetime: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /devicecode", s.deviceCode)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.TokenURL = s.URL + "/token"
	s.DeviceAuthURL = s.URL + "/devicecode"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddRefreshToken makes rt a valid grant.
func (s *Server) AddRefreshToken(rt string) { s.mu.Lock(); s.refresh[rt] = true; s.mu.Unlock() }

// RevokeAll voids every refresh token and access token issued so far, as an
// administrator revoking the app's sessions would.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh, s.access = map[string]bool{}, map[string]bool{}
}

// SetLifetime sets the lifetime of the access tokens issued from now on.
func (s *Server) SetLifetime(d time.Duration) { s.mu.Lock(); s.Lifetime = d; s.mu.Unlock() }

// SetRotate makes every refresh return a new refresh token and void the old.
func (s *Server) SetRotate(on bool) { s.mu.Lock(); s.rotate = on; s.mu.Unlock() }

// SetFailure makes every request fail with HTTP status code (0: serve again).
func (s *Server) SetFailure(code int) { s.mu.Lock(); s.fail = code; s.mu.Unlock() }

// SetDevicePending makes the device grant answer authorization_pending n
// times before it succeeds.
func (s *Server) SetDevicePending(n int) { s.mu.Lock(); s.pending = n; s.mu.Unlock() }

// ValidAccess reports whether tok is an access token this server issued and
// has not revoked: what a relay asks before it accepts XOAUTH2.
func (s *Server) ValidAccess(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access[tok]
}

// Grants counts successful token requests by grant type.
func (s *Server) Grants(grant string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.grants[grant] }

// RefreshTokens lists the valid refresh tokens.
func (s *Server) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for rt := range s.refresh {
		out = append(out, rt)
	}
	return out
}

// LastForm is the last token request's form (with secrets: tests only).
func (s *Server) LastForm() url.Values { s.mu.Lock(); defer s.mu.Unlock(); return s.lastForm }

func (s *Server) newToken(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	s.n++
	tok := fmt.Sprintf("%s-%d-%s", prefix, s.n, hex.EncodeToString(b))
	s.issued = append(s.issued, tok)
	return tok
}

// Issued lists every access and refresh token issued so far, revoked or
// not: what a no-leak test looks for in the output.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		http.Error(w, "upstream connect error", s.fail)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, 400, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	s.lastForm = f
	grant := f.Get("grant_type")
	if grant != GrantJWT {
		if msg := s.checkClient(f, grant); msg != "" {
			oauthError(w, 401, "invalid_client", msg)
			return
		}
	}
	resp := map[string]any{"token_type": "Bearer", "expires_in": int(s.Lifetime / time.Second)}
	switch grant {
	case GrantRefresh:
		rt := f.Get("refresh_token")
		if !s.refresh[rt] {
			oauthError(w, 400, "invalid_grant", "AADSTS70000: The provided value for the refresh_token is not valid or was revoked. Trace ID: 0f1e2d3c Correlation ID: 4b5a6978 Timestamp: 2026-12-06 03:00:00Z")
			return
		}
		if s.rotate {
			delete(s.refresh, rt)
			rt = s.newToken("RT")
			s.refresh[rt] = true
		}
		resp["refresh_token"] = rt
	case GrantClient:
	case GrantJWT:
		if code, msg := s.checkServiceAccount(f.Get("assertion")); msg != "" {
			oauthError(w, 400, code, msg)
			return
		}
	case GrantDevice:
		dc := f.Get("device_code")
		if !s.devices[dc] {
			oauthError(w, 400, "expired_token", "unknown device code")
			return
		}
		if s.pending > 0 {
			s.pending--
			oauthError(w, 400, "authorization_pending", "waiting for the user")
			return
		}
		delete(s.devices, dc)
		rt := s.newToken("RT")
		s.refresh[rt] = true
		resp["refresh_token"] = rt
	default:
		oauthError(w, 400, "unsupported_grant_type", grant)
		return
	}
	at := s.newToken("AT")
	s.access[at] = true
	resp["access_token"] = at
	s.grants[grant]++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// checkClient authenticates the client by secret or signed assertion.
func (s *Server) checkClient(f url.Values, grant string) string {
	if f.Get("client_id") != s.ClientID {
		return "unknown client_id"
	}
	if a := f.Get("client_assertion"); a != "" || f.Get("client_assertion_type") != "" {
		if f.Get("client_assertion_type") != assertionTypeJW || s.AssertionKey == nil {
			return "client assertion not accepted"
		}
		hdr, claims, err := verifyJWT(a, s.AssertionKey)
		if err != nil {
			return "client assertion: " + err.Error()
		}
		if hdr["x5t"] != s.AssertionThumb {
			return "client assertion: unknown certificate thumbprint"
		}
		if claims["iss"] != s.ClientID || claims["sub"] != s.ClientID || claims["aud"] != s.TokenURL {
			return fmt.Sprintf("client assertion: wrong iss/sub/aud %v/%v/%v", claims["iss"], claims["sub"], claims["aud"])
		}
		return ""
	}
	if s.ClientSecret == "" && grant != GrantClient {
		return "" // a public client
	}
	if f.Get("client_secret") != s.ClientSecret {
		return "AADSTS7000215: Invalid client secret provided."
	}
	return ""
}

// checkServiceAccount answers like Google: invalid_grant for a bad
// signature or claims, unauthorized_client for a subject outside the
// domain-wide delegation.
func (s *Server) checkServiceAccount(assertion string) (code, msg string) {
	sa := s.ServiceAccount
	if sa.Key == nil {
		return "invalid_grant", "no service account configured"
	}
	_, claims, err := verifyJWT(assertion, sa.Key)
	if err != nil {
		return "invalid_grant", "Invalid JWT Signature."
	}
	if claims["iss"] != sa.Email || claims["aud"] != s.TokenURL || claims["scope"] == nil {
		return "invalid_grant", fmt.Sprintf("assertion: wrong iss/aud/scope %v/%v/%v", claims["iss"], claims["aud"], claims["scope"])
	}
	for _, sub := range sa.Subjects {
		if claims["sub"] == sub {
			s.scopes = strings.Fields(fmt.Sprint(claims["scope"]))
			return "", ""
		}
	}
	return "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
}

// Scopes is the scope list of the last JWT bearer grant.
func (s *Server) Scopes() []string { s.mu.Lock(); defer s.mu.Unlock(); return s.scopes }

// verifyJWT checks an RS256 JWT's signature and time window.
func verifyJWT(tok string, key *rsa.PublicKey) (header, claims map[string]any, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, nil, errors.New("bad signature encoding")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, h[:], sig); err != nil {
		return nil, nil, errors.New("signature does not verify")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, errors.New("bad encoding")
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, nil, errors.New("bad JSON")
		}
	}
	if header["alg"] != "RS256" {
		return nil, nil, fmt.Errorf("alg %v", header["alg"])
	}
	now := float64(time.Now().Unix())
	if exp, _ := claims["exp"].(float64); exp < now-60 {
		return nil, nil, errors.New("expired")
	}
	return header, claims, nil
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		http.Error(w, "down", s.fail)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != s.ClientID {
		oauthError(w, 400, "invalid_client", "unknown client_id")
		return
	}
	s.scopes = strings.Fields(r.PostForm.Get("scope"))
	dc := s.newToken("DC")
	s.devices[dc] = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"device_code": dc, "user_code": "ABCD-EFGH", "verification_uri": s.URL + "/device",
		"expires_in": 900, "interval": 1,
	})
}
