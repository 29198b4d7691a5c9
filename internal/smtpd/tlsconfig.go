package smtpd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"relaybox/internal/selfsign"
)

// TLS profiles (listen.tls_profile).
const (
	ProfileModern = "modern" // TLS 1.2 and later
	ProfileLegacy = "legacy" // TLS 1.0 and later, for copiers that know nothing newer
)

// CertAuto as TLSFiles.Cert asks for a self-signed certificate kept in
// TLSFiles.Dir.
const CertAuto = "auto"

// autoCertValidity: devices on the LAN verify nothing, and a certificate
// that outlives the box saves an admin a surprise; it is renewed on start
// when it comes within autoCertRenew of expiry.
const (
	autoCertValidity = 10 * 365 * 24 * time.Hour
	autoCertRenew    = 30 * 24 * time.Hour
)

// TLSFiles say where the listener's certificate comes from.
type TLSFiles struct {
	Cert     string // PEM file, or CertAuto
	Key      string // PEM file; unused with CertAuto
	Dir      string // CertAuto: cert.pem and key.pem live here (data_dir/tls)
	Hostname string // CertAuto: the name the certificate is made for
	Profile  string // ProfileModern (default) or ProfileLegacy
	Now      func() time.Time
}

// LoadTLS builds the tls.Config for Options.TLS. With CertAuto it reuses
// the certificate in Dir, or generates one there (mode 0600) on first use.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	if f.Now == nil {
		f.Now = time.Now
	}
	var cert tls.Certificate
	var err error
	if f.Cert == CertAuto {
		cert, err = autoCert(f)
	} else {
		cert, err = tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			err = fmt.Errorf("smtpd: listen.tls_cert %s / tls_key %s: %w (both must be PEM, the key matching the certificate)", f.Cert, f.Key, err)
		}
	}
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	switch f.Profile {
	case "", ProfileModern:
	case ProfileLegacy:
		// Old devices know TLS 1.0 with CBC suites and often only RSA key
		// exchange, which Go leaves out of its defaults since 1.22.
		cfg.MinVersion = tls.VersionTLS10
		for _, s := range tls.CipherSuites() {
			cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
		}
		for _, id := range []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA} {
			if !slices.Contains(cfg.CipherSuites, id) {
				cfg.CipherSuites = append(cfg.CipherSuites, id)
			}
		}
	default:
		return nil, fmt.Errorf("smtpd: TLS profile %q: use %s or %s", f.Profile, ProfileModern, ProfileLegacy)
	}
	return cfg, nil
}

// autoCert loads the kept self-signed certificate, or makes a new one when
// there is none, it does not load (a pair half written), or it is about to
// expire. Devices verify nothing, so a new one costs nobody anything.
func autoCert(f TLSFiles) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(f.Dir, "cert.pem"), filepath.Join(f.Dir, "key.pem")
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, perr := x509.ParseCertificate(cert.Certificate[0])
		if perr == nil && f.Now().Add(autoCertRenew).Before(leaf.NotAfter) {
			return cert, nil
		}
	}
	host := f.Hostname
	if host == "" {
		host = "relaybox"
	}
	c, err := selfsign.New([]string{host}, f.Now(), autoCertValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("smtpd: TLS certificate: %w", err)
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("smtpd: TLS certificate directory: %w", err)
	}
	// The key is written first: a crash between the two leaves no
	// certificate, so the next start generates a fresh pair.
	if err := writeFileAtomic(keyPath, c.KeyPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certPath, c.CertPEM); err != nil {
		return tls.Certificate{}, err
	}
	return c.TLS, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("smtpd: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("smtpd: write %s: %w", path, err)
	}
	return nil
}
