package deliver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"relaybox/internal/selfsign"
	"relaybox/internal/spool"
)

// BenchmarkDeliver1MiB is the delivery path of one stored 1 MiB message:
// the spool's body reader, the dot-stuffer and the verified STARTTLS
// session of a Client, to an upstream on loopback that discards what it
// gets (discardUpstream), over one session reused as the scheduler does.
// The upstream runs in a child process (TestDiscardUpstreamChild), so the
// allocations and cpu-ms/op (user and system time of this process over the
// timed loop, where the system tells it) are the client's alone.
//
// CPU per message for a fixed number of iterations (docs/performance.md):
//
//	go test -c -o /tmp/deliver.test ./internal/deliver
//	/tmp/deliver.test -test.run '^$' -test.bench Deliver1MiB -test.benchtime 300x
func BenchmarkDeliver1MiB(b *testing.B) {
	sp, err := spool.Open(filepath.Join(b.TempDir(), "spool.db"), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	body := scanBody(1 << 20)
	w, err := sp.Create(spool.Envelope{From: "scanner@lab.example.edu", Recipients: []string{"prof@example.edu"}})
	if err != nil {
		b.Fatal(err)
	}
	for p := body; len(p) > 0; p = p[min(len(p), 32<<10):] {
		w.Write(p[:min(len(p), 32<<10)])
	}
	m, err := w.Commit()
	if err != nil {
		b.Fatal(err)
	}

	up := startDiscardChild(b)
	c, err := NewClient(ClientOptions{Hostname: "relaybox.lab.test",
		Upstreams: []Upstream{{Address: up.addr, TLS: TLSStartTLS, CAFile: up.caFile}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	k, err := c.Dial(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	msg := Outgoing{From: m.From, Rcpts: []string{"prof@example.edu"}, Size: m.Size}
	b.SetBytes(m.Size)
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		r := sp.BodyOf(m)
		if _, err := k.Send(ctx, msg, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
		if err := k.Reset(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
	k.Close()
	if got, want := up.stop(), int64(b.N)*int64(len(body)); got != want {
		b.Fatalf("upstream got %d body bytes, want %d", got, want)
	}
}

// discardChild is a discardUpstream in a child process.
type discardChild struct {
	addr, caFile string
	stop         func() int64 // ends the child; the body bytes it received
}

// startDiscardChild runs this test binary again as TestDiscardUpstreamChild.
func startDiscardChild(tb testing.TB) discardChild {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestDiscardUpstreamChild$")
	cmd.Env = append(os.Environ(), discardChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	var addr string
	for addr == "" && out.Scan() {
		addr, _ = strings.CutPrefix(out.Text(), "listening ")
	}
	if addr == "" {
		cmd.Process.Kill()
		cmd.Wait()
		tb.Fatalf("the upstream child did not start: %v", out.Err())
	}
	stop := func() int64 {
		stdin.Close()
		var n int64 = -1
		for out.Scan() {
			if v, ok := strings.CutPrefix(out.Text(), "received "); ok {
				n, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		cmd.Wait()
		return n
	}
	tb.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	return discardChild{addr: addr, caFile: filepath.Join(dir, "ca.pem"), stop: stop}
}

// discardChildEnv names the directory the child writes its certificate to.
const discardChildEnv = "RELAYBOX_DISCARD_UPSTREAM_DIR"

// TestDiscardUpstreamChild is BenchmarkDeliver1MiB's upstream process; it
// does nothing in an ordinary test run. It prints "listening ADDR", serves
// until its standard input closes, then prints "received N" (body bytes).
func TestDiscardUpstreamChild(t *testing.T) {
	dir := os.Getenv(discardChildEnv)
	if dir == "" {
		t.Skip("runs only as BenchmarkDeliver1MiB's child")
	}
	c, err := selfsign.New([]string{"127.0.0.1"}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	up := startDiscardUpstream(t, c.TLS)
	fmt.Printf("listening %s\n", up.addr)
	io.Copy(io.Discard, os.Stdin)
	fmt.Printf("received %d\n", up.bodyBytes.Load())
}

// scanBody is a message like a scanner's PDF: a few header lines, then
// base64 in 76-column lines, n bytes in all (the last line is padded).
func scanBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: scanner@lab.example.edu\r\nTo: prof@example.edu\r\nSubject: scan\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	for i := 0; b.Len()+78 <= n; i++ {
		for j := range raw {
			raw[j] = byte(i*57 + j*131)
		}
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	b.WriteString(strings.Repeat("=", max(0, n-b.Len()-2)) + "\r\n")
	return b.Bytes()
}

// discardUpstream is a minimal STARTTLS relay for benchmarks: it accepts
// every command and reads DATA in large blocks, looking only for the
// final dot, so that its own CPU stays small beside the client's
// (internal/sink's go-smtp reader takes a byte at a time).
type discardUpstream struct {
	addr      string
	bodyBytes atomic.Int64 // what all messages carried, each up to its final dot
}

func startDiscardUpstream(tb testing.TB, cert tls.Certificate) *discardUpstream {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &discardUpstream{addr: l.Addr().String()}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go u.serve(nc, cfg)
		}
	}()
	tb.Cleanup(func() { l.Close(); <-done })
	return u
}

func (u *discardUpstream) serve(nc net.Conn, cfg *tls.Config) {
	defer nc.Close()
	var c net.Conn = nc
	r := bufio.NewReaderSize(c, 64<<10)
	say := func(s string) bool {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := io.WriteString(c, s+"\r\n")
		return err == nil
	}
	if !say("220 discard.test ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(line))
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		switch verb {
		case "EHLO":
			ext := "250-discard.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 0\r\n"
			if _, ok := c.(*tls.Conn); !ok {
				ext += "250-STARTTLS\r\n"
			}
			if !say(ext + "250 SMTPUTF8") {
				return
			}
		case "STARTTLS":
			if !say("220 go ahead") {
				return
			}
			c = tls.Server(nc, cfg)
			r = bufio.NewReaderSize(c, 64<<10)
		case "DATA":
			if !say("354 go ahead") {
				return
			}
			n, err := readToDot(r)
			if err != nil {
				return
			}
			u.bodyBytes.Add(n)
			if !say("250 2.0.0 OK: queued as D1") {
				return
			}
		case "QUIT":
			say("221 bye")
			return
		default:
			if !say("250 OK") {
				return
			}
		}
	}
}

// readToDot consumes a DATA body through "\r\n.\r\n" and returns how many
// bytes came before the dot (the last CRLF included).
func readToDot(r *bufio.Reader) (int64, error) {
	const end = "\r\n.\r\n"
	var n int64
	var tail []byte // the last bytes of the previous block, for an end split across blocks
	for {
		p, err := r.Peek(1)
		if err != nil {
			return n, err
		}
		p, _ = r.Peek(r.Buffered())
		joined := append(tail, p[:min(len(p), len(end))]...)
		if i := bytes.Index(joined, []byte(end)); i >= 0 {
			use := i + len(end) - len(tail)
			r.Discard(use)
			return n + int64(use) - 3, nil
		}
		if i := bytes.Index(p, []byte(end)); i >= 0 {
			r.Discard(i + len(end))
			return n + int64(i) + 2, nil
		}
		tail = append(tail[:0], p[max(0, len(p)-len(end)+1):]...)
		n += int64(len(p))
		r.Discard(len(p))
	}
}
