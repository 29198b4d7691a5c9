package admin

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Wrong passwords are counted per client address: past the budget the
// password is not even compared, and another address is unaffected.
func TestWrongPasswordsThrottledPerAddress(t *testing.T) {
	f := newFixture(t, testSecret)
	try := func(remote, pass string) int {
		req := httptest.NewRequest("GET", "/api/status", nil)
		req.RemoteAddr = remote
		req.SetBasicAuth("admin", pass)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec.Code
	}
	counts := map[int]int{}
	for i := range 50 {
		counts[try(fmt.Sprintf("192.0.2.66:%d", 40000+i), "guess")]++
	}
	if counts[http.StatusUnauthorized] > 10 || counts[http.StatusTooManyRequests] < 40 {
		t.Fatalf("replies to 50 guesses from one address: %v; want at most 10 checked (401), the rest 429", counts)
	}
	// Even the right password waits out the cooldown from that address...
	if code := try("192.0.2.66:50000", testSecret); code != http.StatusTooManyRequests {
		t.Errorf("right password during the cooldown: %d, want 429", code)
	}
	// ...but not from another one.
	if code := try("192.0.2.7:50000", testSecret); code != http.StatusOK {
		t.Errorf("right password from another address: %d, want 200", code)
	}
	if n := strings.Count(f.logText(), "too many wrong passwords"); n != 1 {
		t.Errorf("%d refusal lines logged for one cooldown, want 1:\n%s", n, f.logText())
	}
	f.clk.Add(11 * time.Second)
	if code := try("192.0.2.66:50001", testSecret); code != http.StatusOK {
		t.Errorf("right password after the cooldown: %d, want 200", code)
	}
}

// DNS rebinding: a request naming another host is refused, whatever the
// password; the listener's own names are served.
func TestHostMustNameTheListener(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("", "a@example.edu")
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18026}
	h := f.srv.HTTPServer(addr).Handler
	hostNamed := newFixtureHostname(t, f, "relaybox.lab.example.edu")
	tests := []struct {
		host string
		want int
	}{
		{"rebind.attacker.example:18026", http.StatusMisdirectedRequest},
		{"rebind.attacker.example", http.StatusMisdirectedRequest},
		{"127.0.0.2:18026", http.StatusMisdirectedRequest},
		{"127.0.0.1:9999", http.StatusMisdirectedRequest},
		{"127.0.0.1:18026", http.StatusOK},
		{"127.0.0.1", http.StatusOK},
		{"localhost:18026", http.StatusOK},
		{"LOCALHOST.", http.StatusOK},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "/api/queue", nil)
		req.Host = tt.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Host %q: %d, want %d", tt.host, rec.Code, tt.want)
		}
	}
	req := httptest.NewRequest("DELETE", "/api/queue/"+id, nil)
	req.Host = "rebind.attacker.example:18026"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if _, err := f.sp.Get(id); err != nil || rec.Code != http.StatusMisdirectedRequest {
		t.Fatalf("rebound DELETE: %d, message gone: %v", rec.Code, err)
	}
	for host, want := range map[string]int{"relaybox.lab.example.edu:18026": 200, "Relaybox.Lab.Example.Edu": 200, "other.lab.example.edu": 421} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		hostNamed.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("configured hostname, Host %q: %d, want %d", host, rec.Code, want)
		}
	}
	v6 := f.srv.HTTPServer(&net.TCPAddr{IP: net.IPv6loopback, Port: 8025}, "admin-name.lab").Handler
	for host, want := range map[string]int{"[::1]:8025": 200, "[::1]": 200, "[::2]:8025": 421, "admin-name.lab:8025": 200} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		v6.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("IPv6 listener, Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

func newFixtureHostname(t *testing.T, f *fixture, hostname string) http.Handler {
	t.Helper()
	o := f.srv.opt
	o.Hostname = hostname
	return NewServer(o).HTTPServer(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18026}).Handler
}

// Past maxConns, connections get a 503 and are closed at once, so idle
// keep-alive connections cannot pile up.
func TestAdminConnectionsCapped(t *testing.T) {
	f := newFixture(t, "")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitListener{Listener: raw, max: 3}
	srv := f.srv.HTTPServer(l.Addr())
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection within the cap: %v %v", resp, err)
		}
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connection over the cap: %v %v, want 503", resp, err)
	}
	c.Close()
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot was not reused: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Close()
	if srv.IdleTimeout > 30*time.Second || srv.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("idle %v, header %v: too long for a small box", srv.IdleTimeout, srv.ReadHeaderTimeout)
	}
}

func TestRequestBodyLimited(t *testing.T) {
	f := newFixture(t, "")
	id := f.add("", "a@example.edu")
	req := httptest.NewRequest("POST", "/api/queue/"+id+"/retry", strings.NewReader(strings.Repeat("x", 1<<20)))
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	n, err := req.Body.Read(make([]byte, 1<<20))
	for err == nil {
		var m int
		m, err = req.Body.Read(make([]byte, 1<<20))
		n += m
	}
	if n > maxBody {
		t.Fatalf("handler could read %d body bytes, want at most %d", n, maxBody)
	}
}
