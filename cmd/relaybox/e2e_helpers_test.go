package main

// Helpers for the end-to-end tests: they build the real binary once, run it
// with a config on 127.0.0.1, and drive it with real clients (python3's
// smtplib, curl, swaks).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var relayBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relaybox-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relayBinary = filepath.Join(dir, "relaybox")
	out, err := exec.Command("go", "build", "-o", relayBinary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building relaybox: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a 127.0.0.1 address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// relayProc is one running relaybox.
type relayProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    bytes.Buffer
	done   chan struct{}
	waitEr error
}

func (p *relayProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// Log is everything the relay wrote to stderr so far.
func (p *relayProc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startRelay runs `relaybox run -config cfgPath` and waits until smtpAddr
// accepts connections.
func startRelay(t *testing.T, cfgPath, smtpAddr string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(relayBinary, "run", "-config", cfgPath)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitEr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("relaybox log:\n%s", p.Log())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("relaybox exited at start: %v\n%s", p.waitEr, p.Log())
		}
		c, err := net.DialTimeout("tcp", smtpAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("relaybox did not listen on %s\n%s", smtpAddr, p.Log())
	return nil
}

func (p *relayProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL: no shutdown code runs, as in a power cut of the process.
func (p *relayProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and expects a clean exit.
func (p *relayProc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.t.Fatalf("relaybox did not stop on SIGTERM\n%s", p.Log())
	}
	if p.waitEr != nil {
		p.t.Fatalf("relaybox exited with %v\n%s", p.waitEr, p.Log())
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pySender sends numbered messages with python3's smtplib from several
// threads and prints "OK <n> <reply>" or "ERR <n> <reply>" per message.
const pySender = `
import smtplib, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
count, threads, rcpt = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
size = int(sys.argv[5]) if len(sys.argv) > 5 else 0
lock = threading.Lock()
def worker(k):
    for n in range(k, count, threads):
        body = ("Subject: e2e message %d\r\nFrom: <dev@campus.test>\r\nTo: <%s>\r\n"
                "Message-ID: <e2e-%d@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n"
                "message number %d\r\n" % (n, rcpt, n, n)) + ("x" * 76 + "\r\n") * (size // 78)
        try:
            s = smtplib.SMTP(host, int(port), timeout=30)
            s.ehlo("e2e-client")
            s.mail("dev@campus.test")
            s.rcpt(rcpt)
            code, resp = s.data(body.encode())
            with lock:
                print("%s %d %d %s" % ("OK" if code == 250 else "ERR", n, code, resp.decode()), flush=True)
            s.quit()
        except Exception as e:
            with lock:
                print("ERR %d 0 %r" % (n, e), flush=True)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
`

var queuedRe = regexp.MustCompile(`^OK (\d+) 250 .*queued as ([0-9A-Z]+)`)

// sendPython sends count messages and returns queue id by message number for
// every message that got a 250.
func sendPython(t *testing.T, ctx context.Context, addr string, count, threads int, rcpt string, size int) map[int]string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "python3", "-c", pySender, addr,
		fmt.Sprint(count), fmt.Sprint(threads), rcpt, fmt.Sprint(size))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("python3: %v", err)
	}
	ids := map[int]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := queuedRe.FindStringSubmatch(sc.Text()); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			ids[n] = m[2]
		} else {
			t.Logf("python3: %s", sc.Text())
		}
	}
	_ = cmd.Wait()
	return ids
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustContain(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("missing %q in:\n%s", sub, s)
		}
	}
}
