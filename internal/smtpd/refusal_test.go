package smtpd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"relaybox/internal/smtptest"
)

// Refusals are logged once per client and kind per interval, with a count,
// not once per connection: the target is at most 50 lines for
// 5,000 refused connects from one address.
func TestRefusalLogLinesRateLimited(t *testing.T) {
	for _, kind := range []string{"outside", "per-client", "full"} {
		t.Run(kind, func(t *testing.T) {
			var logs lockedBuffer
			c := defaultTranscriptConfig()
			var hold []net.Conn
			switch kind {
			case "outside":
				c.networks = []string{"192.0.2.0/24"}
			case "full":
				c.maxConns = 1
			}
			_, _, addr := startTestServer(t, c, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				if kind == "per-client" {
					o.PerClientConnections = 1
				}
			})
			if kind != "outside" {
				h, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				hold = append(hold, h)
				defer h.Close()
				time.Sleep(50 * time.Millisecond)
			}
			const n = 2000
			for range n {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
			}
			time.Sleep(100 * time.Millisecond)
			lines := strings.Count(logs.String(), "refused client")
			if lines == 0 || lines > 20 {
				t.Fatalf("%d refusal lines for %d refused connects, want a few:\n%.2000s", lines, n, logs.String())
			}
		})
	}
}

// Connections refused by an implicit-TLS listener cost no handshake and
// no lingering goroutine.
func TestImplicitTLSRefusalsDoNotPileUp(t *testing.T) {
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := defaultTranscriptConfig()
	c.networks = []string{"192.0.2.0/24"}
	_, srv := newTestServer(t, c, func(o *Options) { o.TLS = cfg })
	addr := serveLoopback(t, srv.ServeTLS)
	before := runtime.NumGoroutine()
	var open []net.Conn
	for range 500 {
		conn, err := net.Dial("tcp", addr) // sends nothing: no ClientHello
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, conn)
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if g := runtime.NumGoroutine() - before; g > 50 {
		t.Fatalf("%d more goroutines with 500 refused TLS clients still connected, want them closed at once", g)
	}
}

// A BDAT chunk that takes the message past the size limit is answered 552
// and logged as too large, not as a client that went away.
func TestBDATOverSizeLogged(t *testing.T) {
	var logs lockedBuffer
	c := defaultTranscriptConfig()
	c.maxSize = 1000
	sp, srv, addr := startTestServer(t, c, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	body := "Subject: x\r\n\r\n" + strings.Repeat("y", 200) + "\r\n"
	io.WriteString(conn, "EHLO dev\r\nMAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\n")
	io.WriteString(conn, fmt.Sprintf("BDAT %d\r\n%s", len(body), body))
	io.WriteString(conn, fmt.Sprintf("BDAT 2000 LAST\r\n%s", strings.Repeat("z", 2000)))
	io.WriteString(conn, "QUIT\r\n")
	var replies []string
	for {
		l, err := smtptest.ReadReply(r)
		if err != nil {
			break
		}
		replies = append(replies, l[strings.LastIndex(l, "\n")+1:])
	}
	if len(replies) < 6 || !strings.HasPrefix(replies[5], "552") {
		t.Fatalf("replies %q; want the second chunk answered 552", replies)
	}
	waitIdle(t, srv)
	out := logs.String()
	if !strings.Contains(out, "message refused: too large") || strings.Contains(out, "went away") {
		t.Fatalf("log does not say the message was too large:\n%s", out)
	}
	if n := len(queued(t, sp)); n != 0 {
		t.Fatalf("%d messages queued", n)
	}

	// A first chunk over the limit never reaches the session; go-smtp
	// logs it.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn2, "EHLO dev\r\nMAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\n")
	io.WriteString(conn2, fmt.Sprintf("BDAT 2000 LAST\r\n%sQUIT\r\n", strings.Repeat("z", 2000)))
	io.Copy(io.Discard, conn2)
	if !strings.Contains(logs.String(), "message refused: too large (BDAT chunk of 2000 bytes") {
		t.Fatalf("first oversize chunk not logged:\n%s", logs.String())
	}
}

// Clients that open the TLS port and never finish a handshake hold at most
// a quarter of maxHandshakes handshake slots from one address (the whole
// maxHandshakes from several), each only for stress_timeout; others
// meanwhile are closed at once, and a real client is served once a slot is
// free.
func TestImplicitTLSHandshakesCapped(t *testing.T) {
	needLoopbackAddrs(t)
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := defaultTranscriptConfig()
	c.maxConns = 100
	c.idle = time.Minute
	_, srv := newTestServer(t, c, func(o *Options) {
		o.TLS = cfg
		o.StressTimeout = 3 * time.Second
	})
	addr := serveLoopback(t, srv.ServeTLS)
	closedAtOnce := func(local string) bool {
		extra, err := dialLocal(local, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		_ = extra.SetReadDeadline(time.Now().Add(time.Second))
		_, err = extra.Read(make([]byte, 1))
		return err == io.EOF
	}
	var silent []net.Conn
	for i := range maxHandshakes {
		conn, err := dialLocal(fmt.Sprintf("127.0.0.%d", 10+i/(maxHandshakes/4)), addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, conn)
		defer conn.Close()
		if i == maxHandshakes/4-1 {
			time.Sleep(100 * time.Millisecond)
			if !closedAtOnce("127.0.0.10") {
				t.Fatal("one address held more than a quarter of the handshake slots")
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	if !closedAtOnce("127.0.0.30") {
		t.Fatal("connection past the handshake cap was not closed at once")
	}
	// The silent ones are cut at the command limit; then a TLS client is served.
	start := time.Now()
	for _, s := range silent {
		_ = s.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatal("a silent client got bytes")
		}
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("silent handshakes lasted %v, want about the 3 s limit", el)
	}
	// A finished handshake gives its slot back: more TLS sessions than
	// slots stay open together.
	for i := range 2 * maxHandshakes {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, clientTLS(0))
		if err != nil {
			t.Fatalf("TLS client %d after the silent ones were cut: %v", i, err)
		}
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if l, _ := bufio.NewReader(tc).ReadString('\n'); !strings.HasPrefix(l, "220") {
			t.Fatalf("TLS client %d: greeting %q", i, l)
		}
	}
}
