package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"relaybox/internal/oauth/oauthtest"
	"relaybox/internal/sink"
)

// No secret (upstream password, device password or its hash, admin
// password, OAuth client secret, refresh and access tokens) appears in any
// log line, API response, console screen or check-config output, while all
// of them are in use.
func TestE2ENoSecretLeaks(t *testing.T) {
	const (
		upstreamPass = "Upstream-S3cret-xyzzy"
		devicePass   = "Device-S3cret-plugh"
		adminPass    = "Admin-S3cret-frotz"
	)
	hash, err := bcrypt.GenerateFromPassword([]byte(devicePass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	up := startUpstream(t, dir, false, sink.Options{})
	writeFile(t, filepath.Join(dir, "upstream.pass"), upstreamPass+"\n")
	writeFile(t, filepath.Join(dir, "admin.pass"), adminPass+"\n")
	// The second upstream logs in with OAuth and defers at RCPT, so the
	// message stays queued while its tokens are in use.
	tokens := oauthtest.Start()
	defer tokens.Close()
	tokens.ClientID, tokens.ClientSecret = e2eClientID, e2eSecret
	tokens.AddRefreshToken(e2eRefresh)
	tokens.SetRotate(true)
	oauthUp := startUpstream(t, dir, false, sink.Options{
		Bearer: func(_, tok string) bool { return tokens.ValidAccess(tok) },
		Reject: func(stage string) error {
			if strings.HasPrefix(stage, "rcpt:") {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			}
			return nil
		},
	})
	oauthTail := fmt.Sprintf("[[upstream]]\naddress = %q\ntls = \"starttls\"\nca_file = %q\n", oauthUp.sink.Addr(), oauthUp.caFile) +
		(&oauthFixture{tokens: tokens, dir: dir}).upstreamOAuth(t, writeFile(t, filepath.Join(dir, "refresh.token"), e2eRefresh+"\n"))

	// The console runs on a pseudo-terminal, as on a USB-serial cable.
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer master.Close()
	defer slave.Close()

	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfgText := acceptConfig(filepath.Join(dir, "data"), addr)
	cfgText = strings.Replace(cfgText, "[admin]\nlisten = \"\"\n", "", 1) + fmt.Sprintf(`[auth]
mode = "users"
[[auth.users]]
name = "scanner"
password_hash = %q
[admin]
listen = %q
password_file = %q
[console]
device = %q
baud = 115200
[delivery]
min_backoff = "1s"
max_backoff = "2s"
[[upstream]]
address = %q
tls = "starttls"
ca_file = %q
username = "relay-user"
password_file = %q
`, hash, adminAddr, filepath.Join(dir, "admin.pass"), slave.Name(), up.sink.Addr(), up.caFile, filepath.Join(dir, "upstream.pass")) + oauthTail
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), cfgText)
	p := startRelay(t, cfg, addr)

	// A device authenticates with its password and sends a message; the
	// first upstream does not offer AUTH, the second takes the OAuth login
	// but defers the recipient, so delivery fails and is logged.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	py := fmt.Sprintf(`
import smtplib
s = smtplib.SMTP("127.0.0.1", %s, timeout=20)
s.ehlo("scanner")
s.login("scanner", %q)
s.sendmail("scanner@campus.test", ["alice@campus.test"], b"Subject: secret test\r\n\r\nbody\r\n")
s.quit()
`, addr[strings.LastIndex(addr, ":")+1:], devicePass)
	if out, err := exec.CommandContext(ctx, "python3", "-c", py).CombinedOutput(); err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	waitLog(t, p, "event=deferred", 1)

	var seen strings.Builder
	seen.WriteString(p.Log())

	// Every admin API route, with the admin password.
	var id string
	for _, path := range []string{"/healthz", "/metrics", "/api/status", "/api/queue", "/api/dead", "/api/events"} {
		body := adminGet(t, adminAddr, path, adminPass)
		seen.WriteString(body)
		if path == "/api/queue" {
			var q struct{ Messages []struct{ ID string } }
			if err := json.Unmarshal([]byte(body), &q); err == nil && len(q.Messages) > 0 {
				id = q.Messages[0].ID
			}
		}
	}
	if id == "" {
		t.Fatalf("no message in /api/queue: %s", adminGet(t, adminAddr, "/api/queue", adminPass))
	}
	seen.WriteString(adminGet(t, adminAddr, "/api/queue/"+id, adminPass))

	// The CLI, through the API.
	for _, args := range [][]string{{"status"}, {"queue", "list"}, {"queue", "show", id}} {
		args = append(args, "-config", cfg)
		out, err := exec.Command(relayBinary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		seen.Write(out)
	}
	// upstream-check: the first upstream fails (no AUTH), the second shows
	// its token step.
	out, _ := exec.Command(relayBinary, "upstream-check", "-config", cfg).CombinedOutput()
	seen.Write(out)
	if !strings.Contains(string(out), "token      ok (access token fetched") {
		t.Errorf("upstream-check shows no token step:\n%s", out)
	}
	// check-config.
	out, err = exec.Command(relayBinary, "check-config", "-config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	seen.Write(out)
	if !strings.Contains(string(out), "<redacted>") {
		t.Errorf("check-config shows no redaction:\n%s", out)
	}

	// The serial console.
	screen := consoleSession(t, master, "status\r", "queue\r", "queue show "+id+"\r", "log 100\r", "upstream\r")
	seen.WriteString(screen)
	if !strings.Contains(screen, id) {
		t.Errorf("console did not list the queued message:\n%s", screen)
	}
	p.stop()
	seen.WriteString(p.Log())

	all := seen.String()
	secrets := map[string]string{
		"upstream password": upstreamPass, "device password": devicePass,
		"device password hash": string(hash), "admin password": adminPass,
		"OAuth client secret": e2eSecret, "first refresh token": e2eRefresh,
	}
	issued := tokens.Issued()
	if len(issued) < 2 {
		t.Fatalf("the OAuth upstream was not used: tokens issued %d", len(issued))
	}
	for i, tok := range issued {
		secrets[fmt.Sprintf("issued token %d", i)] = tok
	}
	for name, secret := range secrets {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in the output", name)
		}
	}
	if !strings.Contains(all, "scanner") {
		t.Error("the device user name should be logged (it is not a secret)")
	}
}

func adminGet(t *testing.T, addr, path, pass string) string {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 && path != "/healthz" {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

// consoleSession types each command and collects the screen until the
// next prompt.
func consoleSession(t *testing.T, master *os.File, cmds ...string) string {
	t.Helper()
	var screen strings.Builder
	lines := make(chan string, 1000)
	go func() {
		r := bufio.NewReader(master)
		for {
			s, err := r.ReadString(' ')
			if s != "" {
				lines <- s
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	waitPrompt := func() {
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s, ok := <-lines:
				if !ok {
					return
				}
				screen.WriteString(s)
				if strings.HasSuffix(screen.String(), "relaybox> ") {
					return
				}
			case <-deadline:
				t.Fatalf("no console prompt; screen so far:\n%s", screen.String())
			}
		}
	}
	_, _ = master.Write([]byte("\r"))
	waitPrompt()
	for _, c := range cmds {
		if _, err := master.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
		waitPrompt()
	}
	return screen.String()
}
