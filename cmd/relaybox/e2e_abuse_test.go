package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// abuseConfig is acceptConfig with device AUTH (mode users, one account)
// and the admin API on adminAddr (no password: loopback only).
func abuseConfig(t *testing.T, dir, addr, adminAddr, devicePass string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(devicePass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), "[admin]\nlisten = \"\"\n", "", 1)
	return cfg + fmt.Sprintf(`[auth]
mode = "users"
[[auth.users]]
name = "scanner"
password_hash = %q
[admin]
listen = %q
`, hash, adminAddr)
}

// smtpFrom is a minimal SMTP client on a connection from a chosen loopback
// address (127.0.0.0/8 routes to lo: each address is a distinct client).
type smtpFrom struct {
	c net.Conn
	r *bufio.Reader
}

func dialSMTPFrom(local, addr string) (*smtpFrom, string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtpFrom{c: c, r: bufio.NewReader(c)}
	greet, err := s.reply()
	if err != nil {
		c.Close()
	}
	return s, greet, err
}

func (s *smtpFrom) reply() (string, error) {
	var last string
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return last + l, err
		}
		last = strings.TrimRight(l, "\r\n")
		if len(last) < 4 || last[3] != '-' {
			return last, nil
		}
	}
}

func (s *smtpFrom) cmd(line string) string {
	if _, err := io.WriteString(s.c, line+"\r\n"); err != nil {
		return "write: " + err.Error()
	}
	r, err := s.reply()
	if err != nil {
		return r + " (" + err.Error() + ")"
	}
	return r
}

func plainAuth(user, pass string) string {
	return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass))
}

// sendAuthed sends one message after AUTH and returns the final reply.
func sendAuthed(local, addr, pass string) (string, error) {
	s, greet, err := dialSMTPFrom(local, addr)
	if err != nil {
		return greet, err
	}
	defer s.c.Close()
	for _, l := range []string{"EHLO scanner", plainAuth("scanner", pass), "MAIL FROM:<scan@campus.test>",
		"RCPT TO:<alice@campus.test>", "DATA"} {
		r := s.cmd(l)
		if r == "" || (r[0] != '2' && r[0] != '3') {
			return r, fmt.Errorf("%s: %s", l, r)
		}
	}
	r := s.cmd("Subject: scan\r\n\r\npage 1\r\n.")
	s.cmd("QUIT")
	return r, nil
}

// Guessing from one address over many parallel connections: only the
// address's budget of passwords is checked, the rest get 454 4.7.0 (one
// log line), and a device on another address still sends at once.
func TestE2EAuthGuessingAcrossConnections(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.66:0"); err != nil {
		t.Skipf("needs 127.0.0.0/8 on lo: %v", err)
	} else {
		l.Close()
	}
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	const pass = "Scan-Pass-1"
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), abuseConfig(t, dir, addr, adminAddr, pass))
	p := startRelay(t, cfg, addr)

	var mu sync.Mutex
	replies := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := dialSMTPFrom("127.0.0.66", addr)
			if err != nil {
				return
			}
			defer s.c.Close()
			s.cmd("EHLO attacker")
			r := s.cmd(plainAuth("scanner", fmt.Sprintf("guess-%d", i)))
			mu.Lock()
			replies[r[:min(3, len(r))]]++
			mu.Unlock()
		}()
	}
	time.Sleep(200 * time.Millisecond) // the guesses are in
	start := time.Now()
	r, err := sendAuthed("127.0.0.7", addr, pass)
	took := time.Since(start)
	wg.Wait()
	if err != nil || !strings.HasPrefix(r, "250") {
		t.Fatalf("device on another address: %q, %v", r, err)
	}
	if took > 2*time.Second {
		t.Errorf("device's message took %v during the guessing, want under 2 s", took)
	}
	if replies["535"] > 10 || replies["454"] < 30 {
		t.Fatalf("replies to 40 parallel guesses from one address: %v; want at most 10 checked (535), the rest 454", replies)
	}
	if n := strings.Count(p.Log(), "AUTH refused: too many failed attempts"); n != 1 {
		t.Errorf("%d refusal lines, want 1", n)
	}
}

// DNS rebinding: a request to the loopback admin API whose Host names
// another site is refused (a browser on the box cannot be used to read or
// delete the queue); its own address still works. curl is the client.
func TestE2EAdminRefusesForeignHost(t *testing.T) {
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), abuseConfig(t, dir, addr, adminAddr, "pw-unused-1"))
	startRelay(t, cfg, addr)
	_, port, _ := net.SplitHostPort(adminAddr)
	curl := func(host, method, path string) string {
		args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "--max-time", "10"}
		if host != "" {
			args = append(args, "-H", "Host: "+host)
		}
		out, err := exec.Command("curl", append(args, "http://"+adminAddr+path)...).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		return string(out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for curl("", "GET", "/healthz") == "000" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for host, want := range map[string]string{
		"rebind.attacker.example:" + port: "421",
		"rebind.attacker.example":         "421",
		"127.0.0.1:" + port:               "200",
		"localhost:" + port:               "200",
		"relaybox.e2e.test:" + port:       "200",
	} {
		if got := curl(host, "GET", "/api/queue"); got != want {
			t.Errorf("GET /api/queue with Host %s: %s, want %s", host, got, want)
		}
	}
	if got := curl("rebind.attacker.example:"+port, "DELETE", "/api/queue/0000000000000"); got != "421" {
		t.Errorf("rebound DELETE: %s, want 421", got)
	}
}
