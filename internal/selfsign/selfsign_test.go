package selfsign

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestNewVerifiesForItsNamesOnly(t *testing.T) {
	now := time.Now()
	c, err := New([]string{"localhost", "127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CertPEM) {
		t.Fatal("PEM not accepted as a root")
	}
	leaf, err := x509.ParseCertificate(c.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Tests present the same kind of certificate as a TLS client.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("as a client certificate: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "smtp.example.edu", Roots: pool, CurrentTime: now}); err == nil {
		t.Error("verified for a name it does not carry")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool, CurrentTime: now.Add(2 * time.Hour)}); err == nil {
		t.Error("verified after expiry")
	}
}
