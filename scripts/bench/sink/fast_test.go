package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/selfsign"
)

// refBodyLen is go-smtp's DATA reader (third_party/go-smtp/data.go) a
// byte at a time, counting what it would hand on: the reference bodyLen
// must agree with. consumed is how far into in the end marker ends; ok is
// false when in has no end marker.
func refBodyLen(in []byte) (n, consumed int, ok bool) {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	state, dotCRs := beginLine, 0
	for i, c := range in {
		switch state {
		case beginLine:
			switch c {
			case '.':
				state = dot
				continue
			case '\r':
				state = cr
			default:
				state = data
			}
		case dot:
			if c == '\r' {
				state, dotCRs = dotCR, 1
				continue
			}
			state = data
		case dotCR:
			switch c {
			case '\n':
				return n, i + 1, true
			case '\r':
				dotCRs++
				continue
			}
			n += dotCRs // the CRs were data; c is read as after a CR
			state = data
		case cr:
			switch c {
			case '\n':
				state = beginLine
			case '\r':
			default:
				state = data
			}
		case data:
			if c == '\r' {
				state = cr
			}
		}
		n++
	}
	return n, len(in), false
}

// bodyCases end (or, for the last ones, do not end) a DATA body in every
// way go-smtp's reader distinguishes; "NEXT" after the marker must be left
// unread for the next command.
var bodyCases = []string{
	".\r\n",
	"a\r\n.\r\n",
	"..\r\n.\r\n",                    // a body line that is one dot
	"x\r\n..\r\ny\r\n.\r\n",          // the same between lines
	"a\r\n..b\r\n.c\r\n...\r\n.\r\n", // dot-stuffed lines
	"a\n.\nb\r\n.\r\n",               // bare LF: "\n.\n" is body
	"a\n.\r\nb\r\n.\r\n",             // "\n.\r\n" is body
	"a\r\n.\nb\r\n.\r\n",             // "\r\n.\n" is body, the dot dropped
	"a\r.\r\nb\r\n.\r\n",             // "\r.\r\n" is body
	"a\r\n.\rX\r\n.\r\n",             // dot, CR, not LF: the CR is body
	"a\r\n.\r\r\rX\r\n.\r\n",         // several CRs, the same
	"a\r\r\nb\r\r\n.\r\r\n",          // BusyBox sendmail's CR CR LF endings
	"a\r\n\r\n.\r\n",                 // an empty line
	"\r\n.\r\n",                      // a body that is an empty line
	"\n.\r\n.\r\n",                   // starts with a bare LF
	"a\r\n.\r\nNEXT\r\n",             // commands pipelined after the body
	strings.Repeat("x", 300) + "\r\n." + strings.Repeat("y", 300) + "\r\n.\r\n",
	strings.Repeat("line of a body\r\n", 2000) + ".\r\n",
	"a\r\n. \r\n.\r\n", // a dot and a space is not the end
	"no end\r\n",       // the client leaves mid-body
	"a\r\n.\r",         // ... just before the marker's LF
	"a\r\n.",
}

// bodyLen reads exactly what go-smtp's reader reads and counts what it
// hands on, however the bytes arrive (one at a time, or in halves) and
// whatever bufio's buffer size.
func TestBodyLenMatchesGoSMTPReader(t *testing.T) {
	for _, in := range bodyCases {
		checkBodyLen(t, []byte(in))
	}
}

func FuzzBodyLen(f *testing.F) {
	for _, in := range bodyCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkBodyLen(t, in) })
}

func checkBodyLen(t *testing.T, in []byte) {
	t.Helper()
	want, consumed, ok := refBodyLen(in)
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(in) },
		"one-byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
	}
	for name, r := range readers {
		for _, size := range []int{16, 17, 64, 4096} {
			br := bufio.NewReaderSize(r(), size)
			n, err := bodyLen(br)
			if !ok {
				if err == nil {
					t.Fatalf("%q (%s, bufio %d): ended with %d bytes, want an error (no end marker)", in, name, size, n)
				}
				continue
			}
			if err != nil || n != int64(want) {
				t.Fatalf("%q (%s, bufio %d): %d, %v; want %d", in, name, size, n, err, want)
			}
			rest, _ := io.ReadAll(br)
			if !bytes.Equal(rest, in[consumed:]) {
				t.Fatalf("%q (%s, bufio %d): left %q unread, want %q", in, name, size, rest, in[consumed:])
			}
		}
	}
}

// testTLS is a certificate for 127.0.0.1 and a client config trusting it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	cert, err := selfsign.New([]string{"127.0.0.1", "localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert.CertPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// mode is one of the sink's two SMTP servers, started as main starts it.
type mode struct {
	name string
	fast bool
}

var modes = []mode{{"go-smtp", false}, {"fast", true}}

// startMode serves SMTP in mode m on free ports: STARTTLS and implicit TLS.
func startMode(t *testing.T, m mode, tc *tls.Config) (c *counters, plain, implicit string, stop func()) {
	t.Helper()
	c = newCounters()
	addrs, stop, err := startSMTP(m.fast, "127.0.0.1:0", "127.0.0.1:0", tc, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return c, addrs[0], addrs[1], stop
}

// stats are the counters a test compares.
type stats struct{ Messages, Bytes, TLSMessages int64 }

func (c *counters) stats() stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return stats{c.Messages, c.Bytes, c.TLSMessages}
}

// rawSession writes in to addr in one piece (every command pipelined) and
// returns what the server answered until it closed the connection.
func rawSession(t *testing.T, addr, in string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, in); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading the replies: %v (got %q)", err, out)
	}
	return string(out)
}

func envelope(body string) string {
	return "MAIL FROM:<a@lab.example> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@campus.example>\r\nDATA\r\n" + body
}

// The same sessions, every command of each sent at once, give the same
// counters and the same reply codes from both servers, and the byte counts
// are those of the unstuffed bodies.
func TestFastCountsAsGoSMTP(t *testing.T) {
	tc, _ := testTLS(t)
	sessions := []struct {
		name  string
		in    string
		want  stats
		codes string // the reply codes in order
	}{
		{"dot-stuffed lines", "EHLO lab\r\n" + envelope("a\r\n..b\r\n.c\r\n...\r\n.\r\n") + "QUIT\r\n",
			stats{1, len64("a\r\n.b\r\nc\r\n..\r\n"), 0}, "220 250 250 250 354 250 221"},
		{"a body line that is two dots", "EHLO lab\r\n" + envelope("x\r\n..\r\ny\r\n.\r\n") + "QUIT\r\n",
			stats{1, len64("x\r\n.\r\ny\r\n"), 0}, "220 250 250 250 354 250 221"},
		{"pipelined: two messages, RSET, NOOP, an aborted envelope", "EHLO lab\r\n" +
			envelope("one\r\n.\r\n") + envelope("two\r\ntwo\r\n.\r\n") +
			"MAIL FROM:<c@lab.example>\r\nRCPT TO:<d@campus.example>\r\nRSET\r\nNOOP\r\n" +
			envelope("three\r\n.\r\n") + "QUIT\r\n",
			stats{3, len64("one\r\ntwo\r\ntwo\r\nthree\r\n"), 0},
			"220 250 250 250 354 250 250 250 354 250 250 250 250 250 250 250 354 250 221"},
		{"bare LF and CR runs", "EHLO lab\r\n" + envelope("a\n.\nb\r\nc\r.\r\nd\r\n.\rX\r\ne\r\r\n.\r\r\n") + "QUIT\r\n",
			stats{1, len64("a\n.\nb\r\nc\r.\r\nd\r\n\rX\r\ne\r\r\n"), 0}, "220 250 250 250 354 250 221"},
		{"out of order and unknown commands", "MAIL FROM:<a@lab.example>\r\nHELO lab\r\nRCPT TO:<b@campus.example>\r\nDATA\r\nXYZZ\r\nQUIT\r\n",
			stats{}, "220 502 250 502 502 500 221"},
		{"SMTPUTF8 is not offered", "EHLO lab\r\nMAIL FROM:<a@lab.example> SMTPUTF8\r\nQUIT\r\n",
			stats{}, "220 250 504 221"},
	}
	for _, s := range sessions {
		for _, m := range modes {
			c, addr, _, _ := startMode(t, m, tc)
			out := rawSession(t, addr, s.in)
			if got := codes(out); got != s.codes {
				t.Errorf("%s, %s: reply codes %s, want %s\n%s", s.name, m.name, got, s.codes, out)
			}
			if got := c.stats(); got != s.want {
				t.Errorf("%s, %s: counted %+v, want %+v", s.name, m.name, got, s.want)
			}
		}
	}
}

func len64(s string) int64 { return int64(len(s)) }

// codes lists the reply codes of a transcript, once per reply (the last
// line of a multi-line one).
func codes(out string) string {
	var cs []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		if len(l) >= 4 && l[3] == ' ' {
			cs = append(cs, l[:3])
		}
	}
	return strings.Join(cs, " ")
}

// Both servers offer the same extensions before and after STARTTLS (but
// CHUNKING, which the fast one leaves out: it has no BDAT), so a relay
// delivers to either the same way; over STARTTLS and over implicit TLS a
// message counts as encrypted, with the same bytes in both modes.
func TestFastTLSAndExtensions(t *testing.T) {
	tc, client := testTLS(t)
	body := "Subject: x\r\n\r\n" + strings.Repeat(".a dot-stuffed line\r\n", 100)
	exts := map[string][2][]string{}
	got := map[string]stats{}
	for _, m := range modes {
		c, plain, implicit, _ := startMode(t, m, tc)

		cl, err := smtp.Dial(plain)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Hello("lab"); err != nil {
			t.Fatal(err)
		}
		before := extensions(cl)
		cl.Close()
		cl, err = smtp.DialStartTLS(plain, client)
		if err != nil {
			t.Fatalf("%s: STARTTLS: %v", m.name, err)
		}
		if err := cl.Hello("lab"); err != nil {
			t.Fatal(err)
		}
		exts[m.name] = [2][]string{before, extensions(cl)}
		send(t, cl, body)

		cl, err = smtp.DialTLS(implicit, client)
		if err != nil {
			t.Fatalf("%s: implicit TLS: %v", m.name, err)
		}
		send(t, cl, body)

		got[m.name] = c.stats()
		want := stats{2, 2 * int64(len(body)), 2}
		if got[m.name] != want {
			t.Errorf("%s: counted %+v, want %+v", m.name, got[m.name], want)
		}
	}
	g, f := exts["go-smtp"], exts["fast"]
	for i, when := range []string{"before STARTTLS", "after STARTTLS"} {
		g[i] = slices.DeleteFunc(g[i], func(e string) bool { return e == "CHUNKING" })
		if !slices.Equal(g[i], f[i]) {
			t.Errorf("extensions %s: go-smtp %v, fast %v", when, g[i], f[i])
		}
	}
	if !slices.Contains(f[0], "STARTTLS") || slices.Contains(f[1], "STARTTLS") {
		t.Errorf("STARTTLS offered before and not after: %v", f)
	}
}

// extensions are the EHLO keywords the client saw, sorted.
func extensions(cl *smtp.Client) []string {
	var es []string
	for _, e := range []string{"PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING", "8BITMIME", "STARTTLS", "SIZE", "SMTPUTF8", "AUTH", "DSN", "BINARYMIME", "REQUIRETLS"} {
		if ok, param := cl.Extension(e); ok {
			es = append(es, strings.TrimSpace(e+" "+param))
		}
	}
	slices.Sort(es)
	return es
}

func send(t *testing.T, cl *smtp.Client, body string) {
	t.Helper()
	defer cl.Close()
	if err := cl.Mail("a@lab.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rcpt("b@campus.example", nil); err != nil {
		t.Fatal(err)
	}
	w, err := cl.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Quit(); err != nil {
		t.Fatal(err)
	}
}

// A client that leaves in the middle of a body, or just before the end
// marker's LF, sent no message: nothing is counted. A whole message on
// the next connection is.
func TestFastDisconnectMidDataDoesNotCount(t *testing.T) {
	tc, _ := testTLS(t)
	c, addr, _, stop := startMode(t, mode{"fast", true}, tc)
	for _, cut := range []string{strings.Repeat("x", 100000), "a\r\n.\r"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprint(conn, "EHLO lab\r\n"+envelope(""))
		br := bufio.NewReader(conn)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, "354 ") {
				break
			}
		}
		_, _ = io.WriteString(conn, cut)
		conn.Close()
	}
	out := rawSession(t, addr, "EHLO lab\r\n"+envelope("whole\r\n.\r\n")+"QUIT\r\n")
	if !strings.Contains(out, "250 2.0.0 OK: queued as S000001") {
		t.Errorf("the whole message: %q", out)
	}
	stop() // waits for every session to end: the counters are final
	if got, want := c.stats(), (stats{1, len64("whole\r\n"), 0}); got != want {
		t.Errorf("counted %+v, want %+v", got, want)
	}
}

// The body scan's cost per 1 MiB message of 78-byte lines, from bufio's
// buffer (no socket): go test -run '^$' -bench BodyLen ./scripts/bench/sink/
func BenchmarkBodyLen1MiB(b *testing.B) {
	line := strings.Repeat("La de da de da 1.", 5)[:76] + "\r\n"
	body := []byte(strings.Repeat(line, (1<<20)/len(line)) + ".\r\n")
	r := bytes.NewReader(body)
	br := bufio.NewReaderSize(r, fastBufSize)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		br.Reset(r)
		if _, err := bodyLen(br); err != nil {
			b.Fatal(err)
		}
	}
}

// Commands a client sent in plaintext after STARTTLS, before the
// handshake, are dropped, not answered as if said under TLS.
func TestStartTLSDropsPlaintextPipelinedAfterIt(t *testing.T) {
	tc, client := testTLS(t)
	for _, m := range modes {
		_, addr, _, _ := startMode(t, m, tc)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprint(conn, "EHLO lab\r\nSTARTTLS\r\nMAIL FROM:<injected@lab.example>\r\n")
		br := bufio.NewReader(conn)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
			if strings.HasPrefix(l, "220 2.0.0") {
				break
			}
		}
		tlsConn := tls.Client(conn, client)
		fmt.Fprint(tlsConn, "NOOP\r\n")
		l, err := bufio.NewReader(tlsConn).ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "250 ") {
			t.Errorf("%s: the first reply under TLS: %q, %v; want NOOP's 250", m.name, l, err)
		}
		conn.Close()
	}
}
