package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// rootSource builds the default trust roots once per Client and only when an
// upstream needs them: system roots, else the NSS bundle compiled into the
// binary (a Pi image without ca-certificates has no system roots at all).
type rootSource struct {
	pool *x509.CertPool
	desc string
}

func (r *rootSource) get() (*x509.CertPool, string) {
	if r.pool != nil {
		return r.pool, r.desc
	}
	pool, err := x509.SystemCertPool()
	// On Windows and macOS the pool defers to the platform verifier and lists
	// no subjects even when it works, so emptiness only means something on
	// the other systems.
	platform := runtime.GOOS == "windows" || runtime.GOOS == "darwin" || runtime.GOOS == "ios"
	//lint:ignore SA1019 Subjects is accurate for file-based pools, which is all we ask of it here.
	if err == nil && (platform || len(pool.Subjects()) > 0) {
		r.pool, r.desc = pool, "system roots"
		return r.pool, r.desc
	}
	r.pool, r.desc = builtinRoots(), "built-in roots"
	return r.pool, r.desc
}

// builtinRoots builds a pool from the embedded NSS bundle without calling
// x509.SetFallbackRoots, so importing this package changes nothing global.
func builtinRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	for root := range bundle.Roots() {
		cert, err := x509.ParseCertificate(root.Certificate)
		if err != nil {
			continue // a bundle entry Go cannot parse cannot anchor a chain either
		}
		if root.Constraint == nil {
			pool.AddCert(cert)
		} else {
			pool.AddCertWithConstraint(cert, root.Constraint)
		}
	}
	return pool
}

// tlsConfig builds the verified client configuration for one upstream. key
// is "upstream[0]", used to name the offending setting in errors.
func tlsConfig(key string, u Upstream, serverName string, roots *rootSource) (*tls.Config, string, error) {
	cfg := &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	}
	desc := ""
	switch {
	case u.Insecure:
		cfg.InsecureSkipVerify = true
		desc = "NOT verified (insecure = true)"
	case u.CAFile != "":
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("deliver: %s.ca_file: %w", key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("deliver: %s.ca_file %s: no certificates found", key, u.CAFile)
		}
		cfg.RootCAs = pool
		desc = "verified against " + u.CAFile
	default:
		pool, d := roots.get()
		cfg.RootCAs = pool
		desc = "verified against " + d
	}
	if u.CertFile != "" || u.KeyFile != "" {
		if u.CertFile == "" || u.KeyFile == "" {
			return nil, "", fmt.Errorf("deliver: %s.cert_file and %s.key_file must be set together", key, key)
		}
		cert, err := tls.LoadX509KeyPair(u.CertFile, u.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("deliver: %s.cert_file / key_file: %w", key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, desc, nil
}

// describeTLS turns a handshake failure into a sentence a field technician
// can act on. mode is the configured tls mode, timeout the budget that ran
// out if the handshake timed out.
func describeTLS(key, serverName string, mode TLSMode, timeout time.Duration, err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		s := fmt.Sprintf("certificate signed by unknown authority (set %s.ca_file to the relay's CA, or check the relay's certificate)", key)
		if unknown.Cert != nil {
			s += fmt.Sprintf("; the certificate is %q issued by %q", unknown.Cert.Subject.String(), unknown.Cert.Issuer.String())
		}
		return s
	case errors.As(err, &hostname):
		return fmt.Sprintf("the certificate is for %s, not for the expected server_name %q (set %s.server_name to one of the certificate's names, or fix the relay's certificate)",
			certNames(hostname.Certificate), hostname.Host, key)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("certificate expired or not yet valid: %v (check this box's clock first: boards without a battery-backed clock start in the past; then the relay's certificate)", invalid.Detail)
	case errors.As(err, &invalid):
		return fmt.Sprintf("certificate rejected: %v", invalid)
	case errors.As(err, &verify):
		return fmt.Sprintf("certificate verification failed: %v", verify.Err)
	case errors.As(err, &record):
		if mode == TLSImplicit {
			return "the upstream answered in plain text, not TLS (for port 587 or 25 set tls = \"starttls\")"
		}
		return "the upstream did not answer with TLS after STARTTLS"
	case isTimeout(err):
		return fmt.Sprintf("TLS handshake timed out after %s", timeout)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the upstream closed the connection during the TLS handshake (it may require a client certificate or a TLS version below 1.2, which relaybox refuses)"
	}
	return "TLS handshake failed: " + err.Error()
}

// certNames lists what a certificate is valid for, the way a technician
// would compare it with the config.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "an unknown name"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		if c.Subject.CommonName != "" {
			return fmt.Sprintf("no names at all (only the legacy common name %q, which is not accepted)", c.Subject.CommonName)
		}
		return "no names at all"
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// describeNet turns a network error into words; what names the step that
// was waiting ("no greeting"), timeout the budget that ran out.
func describeNet(addr, what string, timeout time.Duration, err error) string {
	var dns *net.DNSError
	switch {
	case isTimeout(err):
		return fmt.Sprintf("%s within %s (timeout)", what, timeout)
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot resolve %q: %v (check the address and this box's DNS settings)", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused by %s (nothing listens there, or a firewall rejects it)", addr)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "connection reset by the upstream"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return "connection closed by the upstream"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsDetail summarises an established session for Check.
func tlsDetail(st tls.ConnectionState, verified string) string {
	s := fmt.Sprintf("%s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if len(st.PeerCertificates) > 0 {
		c := st.PeerCertificates[0]
		s += fmt.Sprintf(", certificate for %s issued by %q, valid until %s", certNames(c), c.Issuer.String(), c.NotAfter.UTC().Format("2006-01-02"))
	}
	return s + ", " + verified
}
