package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// The real binary with tls_cert = "auto" and an implicit-TLS listener:
// curl sends one message with STARTTLS and one over smtps, both are
// stored as ESMTPS, and the generated certificate is kept across a restart.
func TestE2EInboundTLS(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	addr, tlsAddr := freeAddr(t), freeAddr(t)
	conf := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), "[policy]",
		"tls_cert = \"auto\"\nsmtps = [\""+tlsAddr+"\"]\n[policy]", 1)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), conf)
	p := startRelay(t, cfg, addr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(url, name string, extra ...string) string {
		t.Helper()
		msg := writeFile(t, filepath.Join(dir, name+".eml"),
			"Subject: "+name+"\r\nMessage-ID: <"+name+"@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nsent by curl\r\n")
		args := append([]string{"-sS", "-v", "--insecure", "--url", url,
			"--mail-from", "dev@campus.test", "--mail-rcpt", "bob@campus.test", "--upload-file", msg}, extra...)
		out, err := exec.CommandContext(ctx, "curl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
		i := strings.Index(string(out), "queued as ")
		if i < 0 {
			t.Fatalf("curl %s: no queue id:\n%s", url, out)
		}
		return strings.Fields(string(out)[i+len("queued as "):])[0]
	}
	startTLSID := send("smtp://"+addr, "starttls", "--ssl-reqd")
	implicitID := send("smtps://"+tlsAddr, "implicit")
	p.stop()

	certPath := filepath.Join(dir, "data", "tls", "cert.pem")
	cert1, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatalf("auto certificate not kept: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "data", "tls", "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, %v; want mode 0600", fi, err)
	}
	p2 := startRelay(t, cfg, addr)
	p2.stop()
	if cert2, err := os.ReadFile(certPath); err != nil || !bytes.Equal(cert1, cert2) {
		t.Errorf("certificate changed across a restart (%v); want it reused", err)
	}

	sp, err := spool.Open(filepath.Join(dir, "data", "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for _, id := range []string{startTLSID, implicitID} {
		mustContain(t, spoolBody(t, sp, id), "with ESMTPS", "sent by curl\r\n")
	}
}
