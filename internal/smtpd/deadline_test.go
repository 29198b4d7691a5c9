package smtpd

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// trickle sends s one byte every gap until the connection fails or ctx
// ends, and reports how long the connection lived.
func trickle(ctx context.Context, c net.Conn, s string, gap time.Duration) time.Duration {
	start := time.Now()
	go io.Copy(io.Discard, c)
	for i := 0; ; i = (i + 1) % len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(gap):
		}
	}
}

func dialLocal(local, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// A command line trickled one byte at a time is cut at the command
// timeout, although each byte renews the idle timer.
func TestCommandLineDeadline(t *testing.T) {
	c := defaultTranscriptConfig()
	c.idle = time.Minute
	_, _, addr := startTestServer(t, c, func(o *Options) { o.CommandTimeout = time.Second })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "220") {
		t.Fatalf("greeting %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := conn.Write([]byte{"EHLO a-very-slow-client.example"[i%31]}); err != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		done <- time.Since(start)
	}()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	// go-smtp answers the line cut short (501), then closes with 421.
	var got []string
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			got = append(got, line)
		}
		if err != nil || strings.HasPrefix(line, "421") {
			break
		}
	}
	cancel()
	if lived := <-done; len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "421") || lived > 15*time.Second {
		t.Fatalf("trickled command line: replies %q after %v; want 421 at the command timeout", got, lived)
	}
}

// A DATA body trickled below the minimum rate is cut; one sent at speed is
// accepted although it takes longer than the command timeout to arrive in
// many small writes.
func TestDataDeadlineScalesWithSize(t *testing.T) {
	c := defaultTranscriptConfig()
	c.idle = time.Minute
	sp, srv, addr := startTestServer(t, c, func(o *Options) {
		o.CommandTimeout = 5 * time.Second
		o.MinDataRate = 10000
	})
	start := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(conn)
		io.WriteString(conn, "EHLO dev\r\nMAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\nDATA\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "354") {
				return conn, r
			}
		}
	}
	// Fast: 300 KB in 3 s of small writes: at 10 KB/s it has 5 s + 30 s.
	conn, r := start()
	io.WriteString(conn, "Subject: big\r\n\r\n")
	line := strings.Repeat("x", 998) + "\r\n"
	for i := range 300 {
		io.WriteString(conn, line)
		if i%10 == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	io.WriteString(conn, ".\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "250") {
		t.Fatalf("large body at speed: %q", l)
	}
	// Slow: one byte every 200 ms is cut after about 5 s.
	conn, r = start()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go trickle(ctx, conn, "Subject: slow\r\n\r\nbody\r\n", 200*time.Millisecond)
	l, _ := r.ReadString('\n')
	cancel()
	if !strings.HasPrefix(l, "451") && l != "" {
		t.Fatalf("trickled body answered %q; want it cut", l)
	}
	waitIdle(t, srv)
	if n := len(queued(t, sp)); n != 1 {
		t.Fatalf("%d messages queued, want only the fast one", n)
	}
}

// A session of quick commands that never sends mail ends at the session
// limit.
func TestSessionDeadline(t *testing.T) {
	c := defaultTranscriptConfig()
	c.idle = time.Minute
	_, _, addr := startTestServer(t, c, func(o *Options) { o.SessionTimeout = 2 * time.Second })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	start := time.Now()
	for {
		if _, err := io.WriteString(conn, "NOOP\r\n"); err != nil {
			break
		}
		l, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(l, "421") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("session of NOOPs lasted %v; want it ended near the 2 s limit", el)
	}
}

// The scenario, scaled down: every slot is held by clients on two
// addresses trickling a byte at a time and reconnecting when cut; a device
// on a third address must still get a greeting. Stress mode shortens the
// tricklers' limits and keeps them from taking the freed slots back.
func TestTricklersCannotHoldEverySlot(t *testing.T) {
	needLoopbackAddrs(t)
	c := defaultTranscriptConfig()
	c.maxConns = 6
	c.idle = time.Minute
	_, srv, addr := startTestServer(t, c, func(o *Options) {
		o.PerClientConnections = 3
		o.StressTimeout = 2 * time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					conn, err := dialLocal(ip, addr)
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					trickle(ctx, conn, "EHLO trickler.example\r\nNOOP\r\n", 300*time.Millisecond)
					conn.Close()
				}
			}()
		}
	}
	for wait := time.Now(); !srv.slots.stressed.Load(); { // the tricklers take every slot
		if time.Since(wait) > 10*time.Second {
			t.Fatal("the tricklers never took every slot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	for {
		conn, err := dialLocal("127.0.0.4", addr)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			l, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(l, "220") {
				break
			}
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("device on a third address not greeted within 20 s while two addresses trickle")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("greeted after %v", time.Since(start).Round(time.Millisecond))
}

func queued(t *testing.T, sp interface {
	List(spool.State) ([]*spool.Message, error)
}) []*spool.Message {
	t.Helper()
	msgs, err := sp.List(spool.StateQueued)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}
