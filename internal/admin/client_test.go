package admin

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

func TestClientAgainstServer(t *testing.T) {
	f := newFixture(t, testSecret)
	hs := httptest.NewServer(f.srv)
	defer hs.Close()
	c := &Client{Base: hs.URL, Password: testSecret}

	id := f.add("dev@lab.example.edu", "a@example.edu")
	f.backOff(id)
	dead := f.add("", "b@example.edu")
	f.kill(dead, "expired after 5d0h: 421 busy")

	s, err := c.Status()
	if err != nil || s.State != status.OK || s.Queue.Messages != 1 || s.Queue.Dead != 1 {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	q, err := c.Queue("", 0)
	if err != nil || len(q.Messages) != 1 || q.Total != 1 || q.Next != "" || q.Messages[0].ID != id || q.Messages[0].Recipients[0].Address != "a@example.edu" {
		t.Fatalf("Queue = %+v, %v", q, err)
	}
	d, err := c.Dead("", 0)
	if err != nil || len(d.Messages) != 1 || d.Messages[0].ID != dead || d.Messages[0].State != spool.StateDead {
		t.Fatalf("Dead = %+v, %v", d, err)
	}
	// A page of one: the cursor leads to the second and last page.
	id2 := f.add("dev@lab.example.edu", "c@example.edu")
	q, err = c.Queue("", 1)
	if err != nil || len(q.Messages) != 1 || q.Total != 2 || q.Next != id {
		t.Fatalf("Queue(limit 1) = %+v, %v", q, err)
	}
	q, err = c.Queue(q.Next, 1)
	if err != nil || len(q.Messages) != 1 || q.Messages[0].ID != id2 || q.Next != "" {
		t.Fatalf("Queue(after %s) = %+v, %v", id, q, err)
	}
	if err := c.Delete(id2); err != nil {
		t.Fatal(err)
	}
	det, err := c.Show(id)
	if err != nil || !strings.HasPrefix(det.Headers, "Subject: scan from copier") || det.Attempts != 3 {
		t.Fatalf("Show = %+v, %v", det, err)
	}
	if _, err := c.Show("0000000000000"); !NotFound(err) || !strings.Contains(err.Error(), "no such message") {
		t.Errorf("Show(unknown) = %v, want a not-found error", err)
	}
	m, err := c.Retry(id)
	if err != nil || m.NextInSeconds != 0 {
		t.Fatalf("Retry = %+v, %v", m, err)
	}
	if n, err := c.RetryAll(); err != nil || n != 1 {
		t.Errorf("RetryAll = %d, %v", n, err)
	}
	if n, err := c.RetryDead(); err != nil || n != 1 {
		t.Errorf("RetryDead = %d, %v", n, err)
	}
	if err := c.Delete(id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Delete(id); !NotFound(err) {
		t.Errorf("second Delete = %v, want not found", err)
	}

	bad := &Client{Base: hs.URL}
	if _, err := bad.Status(); err == nil || !strings.Contains(err.Error(), "wants the admin password") || strings.Contains(err.Error(), testSecret) {
		t.Errorf("no password: %v", err)
	}
}

func TestClientNoDaemon(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c := &Client{Base: "http://" + addr, HTTP: &http.Client{Timeout: 2 * time.Second}}
	_, err = c.Status()
	if err == nil || !strings.HasPrefix(err.Error(), "no relaybox daemon answering on "+addr+" (is it running? see admin.listen)") {
		t.Errorf("no daemon: %v", err)
	}
}

func TestClientNotRelaybox(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>printer admin page</html>"))
	}))
	defer hs.Close()
	_, err := (&Client{Base: hs.URL}).Queue("", 0)
	if err == nil || !strings.Contains(err.Error(), "does not answer like a relaybox daemon") {
		t.Errorf("foreign server: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "admin.password")
	if err := os.WriteFile(pwFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Refused before anything is bound, so no test listens beyond loopback.
	for _, addr := range []string{"0.0.0.0:0", ":0", "relaybox.lan:8025", "10.0.0.5:8025"} {
		if l, _, err := Listen(addr, ""); err == nil || !strings.Contains(err.Error(), "admin.password_file") {
			if l != nil {
				l.Close()
			}
			t.Errorf("Listen(%s) without password: %v, want a refusal naming admin.password_file", addr, err)
		}
	}
	if _, _, err := Listen("127.0.0.1:0", empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty password file: %v", err)
	}
	if _, _, err := Listen("127.0.0.1:0", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "admin.password_file") {
		t.Errorf("missing password file: %v", err)
	}
	l, pass, err := Listen("127.0.0.1:0", "")
	if err != nil || pass != "" {
		t.Fatalf("loopback without password: %v", err)
	}
	l.Close()
	l, pass, err = Listen("127.0.0.1:0", pwFile)
	if err != nil || pass != testSecret {
		t.Fatalf("with password file: %q, %v", pass, err)
	}
	l.Close()
}
