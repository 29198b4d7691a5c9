package oauth

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"runtime"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// DefaultHTTPClient reaches token endpoints: TLS 1.2 or later, the system
// roots or, on a board without a CA bundle, the roots built into the
// binary; proxies from the environment; 30s per request.
func DefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots()}
	return &http.Client{Transport: tr, Timeout: httpTimeout}
}

func roots() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	//lint:ignore SA1019 Subjects is accurate for file-based pools, which is all we ask of it here.
	if err == nil && (isPlatformVerifier() || len(pool.Subjects()) > 0) {
		return pool
	}
	pool = x509.NewCertPool()
	for root := range bundle.Roots() {
		cert, err := x509.ParseCertificate(root.Certificate)
		if err != nil {
			continue
		}
		if root.Constraint == nil {
			pool.AddCert(cert)
		} else {
			pool.AddCertWithConstraint(cert, root.Constraint)
		}
	}
	return pool
}

// isPlatformVerifier: on Windows and macOS the system pool lists no
// subjects even when it works.
func isPlatformVerifier() bool {
	return runtime.GOOS == "windows" || runtime.GOOS == "darwin" || runtime.GOOS == "ios"
}

func isWindows() bool { return runtime.GOOS == "windows" }
