package main

// Load measurements for the abuse limits (issue 17), against the real
// binary on loopback only, with bounded loops. They take minutes and load
// both cores, so they are skipped unless RELAYBOX_LOAD=1:
//
//	RELAYBOX_LOAD=1 go test -count=1 -v -run TestLoad ./cmd/relaybox/
//
// Each logs its figures; the assertions are the targets.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// needLoad skips unless RELAYBOX_LOAD=1. RELAYBOX_LOAD_BINARY names another
// relaybox binary to measure instead (an older build, for a before/after).
func needLoad(t *testing.T) {
	t.Helper()
	if os.Getenv("RELAYBOX_LOAD") != "1" {
		t.Skip("load measurement; run with RELAYBOX_LOAD=1")
	}
	if b := os.Getenv("RELAYBOX_LOAD_BINARY"); b != "" {
		saved := relayBinary
		relayBinary = b
		t.Cleanup(func() { relayBinary = saved })
	}
}

// procStatus reads a field (VmRSS, in KiB) of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// goroutines reads relaybox_go_goroutines from the admin API.
func goroutines(t *testing.T, adminAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "relaybox_go_goroutines "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no relaybox_go_goroutines in /metrics")
	return 0
}

// queueTotal counts the messages queued and held (a device's identical
// messages past duplicates.max_repeats are held, not lost).
func queueTotal(t *testing.T, adminAddr string) int {
	t.Helper()
	n := 0
	for _, path := range []string{"/api/queue?limit=100000", "/api/held?limit=100000"} {
		n += strings.Count(adminGet(t, adminAddr, path, ""), `"received"`)
	}
	return n
}

// Item 1: 40 parallel connections from one address guessing, reconnecting
// as fast as they can for 40 s, while a device on another address sends a
// message every 500 ms.
func TestLoadAuthGuessing(t *testing.T) {
	needLoad(t)
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	const pass = "Scan-Pass-1"
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), abuseConfig(t, dir, addr, adminAddr, pass))
	p := startRelay(t, cfg, addr)

	const span = 40 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), span)
	defer cancel()
	var mu sync.Mutex
	var checked []time.Duration // when each 535 came
	refused := 0
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				s, _, err := dialSMTPFrom("127.0.0.66", addr)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				s.cmd("EHLO attacker")
				for range 3 {
					r := s.cmd(plainAuth("scanner", fmt.Sprintf("guess-%d-%d", i, n)))
					mu.Lock()
					switch {
					case strings.HasPrefix(r, "535"):
						checked = append(checked, time.Since(start))
					case strings.HasPrefix(r, "454"):
						refused++
					}
					mu.Unlock()
					if !strings.HasPrefix(r, "535") && !strings.HasPrefix(r, "454") {
						break
					}
				}
				s.c.Close()
			}
		}()
	}
	var lat []time.Duration
	sent := 0
	for ctx.Err() == nil {
		t0 := time.Now()
		r, err := sendAuthed("127.0.0.7", addr, pass)
		if err != nil || !strings.HasPrefix(r, "250") {
			t.Errorf("device message: %q %v", r, err)
		} else {
			sent++
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(500 * time.Millisecond)
	}
	wg.Wait()
	first, later := 0, 0
	for _, at := range checked {
		if at < 12*time.Second {
			first++
		} else {
			later++
		}
	}
	slices.Sort(lat)
	rate := float64(later) / (span - 12*time.Second).Seconds()
	t.Logf("one address, 40 connections: %d passwords checked in the first 12 s, %.2f/s after (%d in %v), %d refused with 454",
		first, rate, later, span-12*time.Second, refused)
	t.Logf("device on another address: %d messages, latency median %v, max %v", sent, lat[len(lat)/2], lat[len(lat)-1])
	if first > 30 || rate > 2.2 || lat[len(lat)-1] > 2*time.Second {
		t.Errorf("targets: at most 30 in 12 s (got %d), about 2/s after (got %.2f), device under 2 s (max %v)", first, rate, lat[len(lat)-1])
	}
	if n := queueTotal(t, adminAddr); n != sent {
		t.Errorf("%d messages got 250, %d in the queue and held", sent, n)
	}
	t.Logf("log lines: %d", strings.Count(p.Log(), "\n"))
}

// Item 2: every slot (100, default limits) held by two addresses trickling
// one byte every 2 s and reconnecting when cut; a device on a third address
// tries once a second until it is greeted.
func TestLoadTricklersHoldSlots(t *testing.T) {
	needLoad(t)
	dir := t.TempDir()
	addr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), abuseConfig(t, dir, addr, adminAddr, "pw-unused-1"))
	p := startRelay(t, cfg, addr)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var open atomic.Int32
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
					c, err := d.DialContext(ctx, "tcp", addr)
					if err != nil {
						continue
					}
					open.Add(1)
					go io.Copy(io.Discard, c)
					msg := "EHLO trickler.example\r\nNOOP\r\n"
					for i := 0; ctx.Err() == nil; i++ {
						if _, err := c.Write([]byte{msg[i%len(msg)]}); err != nil {
							break
						}
						select {
						case <-ctx.Done():
						case <-time.After(2 * time.Second):
						}
					}
					open.Add(-1)
					c.Close()
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(3 * time.Second)
	t.Logf("trickler connections open: %d", open.Load())
	start := time.Now()
	var greeted time.Duration
	for time.Since(start) < 60*time.Second {
		s, greet, err := dialSMTPFrom("127.0.0.4", addr)
		if err == nil {
			s.c.Close()
			if strings.HasPrefix(greet, "220") {
				greeted = time.Since(start)
				break
			}
		}
		time.Sleep(time.Second)
	}
	if greeted == 0 {
		t.Logf("device on a third address never greeted in 60 s")
	} else {
		t.Logf("device on a third address greeted after %v", greeted.Round(time.Millisecond))
	}
	t.Logf("log lines: %d", strings.Count(p.Log(), "\n"))
	if greeted == 0 || greeted > 30*time.Second {
		t.Errorf("target: greeted within 30 s")
	}
}

// Item 6: idle keep-alive connections to /healthz raise the daemon's RSS.
func TestLoadAdminIdleConnections(t *testing.T) {
	needLoad(t)
	for _, n := range []int{2000, 5000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			addr, adminAddr := freeAddr(t), freeAddr(t)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), abuseConfig(t, dir, addr, adminAddr, "pw-unused-1"))
			p := startRelay(t, cfg, addr)
			time.Sleep(500 * time.Millisecond)
			pid := p.cmd.Process.Pid
			before := procStatus(t, pid, "VmRSS")
			var conns []net.Conn
			served, busy := 0, 0
			for range n {
				c, err := net.Dial("tcp", adminAddr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						served++
					} else {
						busy++
					}
				}
			}
			time.Sleep(time.Second)
			after := procStatus(t, pid, "VmRSS")
			t.Logf("%d keep-alive connections: %d served, %d refused 503; RSS %d KiB -> %d KiB (+%.1f MiB), fds %d",
				n, served, busy, before, after, float64(after-before)/1024, openFDs(t, pid))
			for _, c := range conns {
				c.Close()
			}
			if after-before > 24*1024 {
				t.Errorf("target: RSS rises by at most 24 MiB")
			}
		})
	}
}

// Item 4: connect-and-close from an address outside allowed_networks;
// count the log lines, and check a message event stays in /api/events.
func TestLoadRefusedConnectLogLines(t *testing.T) {
	needLoad(t)
	for _, n := range []int{5000, 10000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			addr, adminAddr := freeAddr(t), freeAddr(t)
			cfgText := strings.Replace(abuseConfig(t, dir, addr, adminAddr, "pw-unused-1"),
				`allowed_networks = ["127.0.0.0/8"]`, `allowed_networks = ["127.0.0.1/32"]`, 1)
			cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), cfgText)
			p := startRelay(t, cfg, addr)
			if r, err := sendAuthed("127.0.0.1", addr, "pw-unused-1"); err != nil || !strings.HasPrefix(r, "250") {
				t.Fatalf("message before the flood: %q %v", r, err)
			}
			linesBefore := strings.Count(p.Log(), "\n")
			start := time.Now()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
			for range n {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				c.Close()
			}
			took := time.Since(start)
			time.Sleep(time.Second)
			lines := strings.Count(p.Log(), "\n") - linesBefore
			events := adminGet(t, adminAddr, "/api/events", "")
			t.Logf("%d refused connects in %v: %d log lines; message event still in /api/events: %v",
				n, took.Round(time.Millisecond), lines, strings.Contains(events, "event=accepted"))
			if lines > 50 || !strings.Contains(events, "event=accepted") {
				t.Errorf("targets: at most 50 lines, message event kept")
			}
		})
	}
}

// Item 5: 5,000 clients outside allowed_networks connect to listen.smtps
// and stay connected without a handshake.
func TestLoadSMTPSRefusals(t *testing.T) {
	needLoad(t)
	dir := t.TempDir()
	addr, adminAddr, smtps := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgText := strings.Replace(abuseConfig(t, dir, addr, adminAddr, "pw-unused-1"),
		`allowed_networks = ["127.0.0.0/8"]`, fmt.Sprintf(`allowed_networks = ["127.0.0.1/32"]
tls_cert = "auto"
smtps = [%q]`, smtps), 1)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), cfgText)
	p := startRelay(t, cfg, addr)
	pid := p.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	g0, f0, r0 := goroutines(t, adminAddr), openFDs(t, pid), procStatus(t, pid, "VmRSS")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	var conns []net.Conn
	for range 5000 {
		c, err := d.Dial("tcp", smtps)
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	time.Sleep(time.Second)
	g1, f1, r1 := goroutines(t, adminAddr), openFDs(t, pid), procStatus(t, pid, "VmRSS")
	// A TLS client from an allowed address is still served.
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", smtps, &tls.Config{InsecureSkipVerify: true})
	okTLS := err == nil
	if okTLS {
		tc.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	t.Logf("5000 refused smtps clients connected: goroutines %d -> %d, fds %d -> %d, RSS %d -> %d KiB; allowed TLS client served: %v; log lines %d",
		g0, g1, f0, f1, r0, r1, okTLS, strings.Count(p.Log(), "\n"))
	if g1-g0 > 100 || f1-f0 > 100 || !okTLS {
		t.Errorf("targets: refused clients hold no goroutines or fds; allowed ones are served")
	}
}
