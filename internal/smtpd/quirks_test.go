package smtpd

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// A device that never says HELO and pipelines everything gets exactly one
// reply per command it sent, in order, and none for the HELO the relay
// sends on its behalf.
func TestNoHeloPipelinedReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		byteful bool // write one byte per call: lines arrive cut anywhere
	}{{"one packet", false}, {"byte by byte", true}} {
		t.Run(tc.name, func(t *testing.T) {
			sp, srv, addr := startTestServer(t, defaultTranscriptConfig(), nil)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			session := "MAIL FROM:<ups@lab.campus.test>\r\nRCPT TO:<facilities@campus.test>\r\n" +
				"RCPT TO:<outside@example.org>\r\nDATA\r\n" +
				"Subject: on battery\r\n\r\nMAIL FROM:<x>\r\nHELO\r\n.\r\nNOOP\r\nQUIT\r\n"
			go func() {
				if !tc.byteful {
					_, _ = io.WriteString(conn, session)
					return
				}
				for i := range len(session) {
					if _, err := io.WriteString(conn, session[i:i+1]); err != nil {
						return
					}
				}
			}()
			out, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, l := range strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n") {
				codes = append(codes, l[:4])
			}
			want := []string{"220 ", "250 ", "250 ", "550 ", "354 ", "250 ", "250 ", "221 "}
			if strings.Join(codes, "|") != strings.Join(want, "|") {
				t.Fatalf("replies %q, want codes %q; the full output:\n%s", codes, want, out)
			}
			if strings.Contains(string(out), "Hello") {
				t.Errorf("the device saw the answer to a HELO it never sent:\n%s", out)
			}
			waitIdle(t, srv)
			msgs, err := sp.List(spool.StateQueued)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("queued %d messages (%v), want 1", len(msgs), err)
			}
			if body := readBody(t, sp, msgs[0].ID); !strings.Contains(body, "\r\n\r\nMAIL FROM:<x>\r\nHELO\r\n") {
				t.Errorf("body changed:\n%s", body)
			}
		})
	}
}

// One client may keep listen.per_client_connections open; one more gets
// 421 4.7.0 at connect, and a slot frees when a connection closes.
func TestPerClientConnections(t *testing.T) {
	_, _, addr := startTestServer(t, defaultTranscriptConfig(), func(o *Options) { o.PerClientConnections = 2 })
	dial := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("greeting: %v", err)
		}
		return c, line
	}
	c1, g1 := dial()
	c2, g2 := dial()
	c3, g3 := dial()
	defer c2.Close()
	defer c3.Close()
	if !strings.HasPrefix(g1, "220 ") || !strings.HasPrefix(g2, "220 ") {
		t.Fatalf("first two greetings %q %q, want 220", g1, g2)
	}
	if !strings.HasPrefix(g3, "421 4.7.0 ") || !strings.Contains(g3, "too many connections from 127.0.0.1") {
		t.Fatalf("third greeting %q, want 421 4.7.0 naming the client", g3)
	}
	c1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c4, g4 := dial()
		c4.Close()
		if strings.HasPrefix(g4, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing one connection: %q, want 220", g4)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScanData(t *testing.T) {
	tests := []struct {
		in   string
		want int // bytes that belong to the body; len(in) if no end marker
	}{
		{".\r\n", 3}, // an empty body
		{"a\r\n.\r\nQUIT\r\n", 6},
		{"a\r\n..\r\n.\r\nX", 10},
		{"no end: a\n.\nMAIL", 16},       // bare LF never ends DATA
		{"a\r\n.\nb\r\n.\r\n", 11},       // "\r\n.\n" does not end it either
		{"a\n.\r\nb\r\n.\r\n", 11},       // nor "\n.\r\n"
		{"a\r.\r\nb\r\n.\r\n", 11},       // nor "\r.\r\n"
		{"a\r\n.\rb\r\n.\r\n", 11},       // nor "\r\n.\r" + other
		{"a\r\n\x00.\r\nb\r\n.\r\n", 13}, // nor a NUL before the dot
		{"a\r\r\n.\r\nb\r\n.\r\n", 7},    // CR CR LF is one line end (BusyBox)
		{"a\r\r\n.\r\r\nb", 8},           // before the dot and after it
		{".\r\r\r\nQUIT\r\n", 5},         // the run may be long
		{"a\r\r\n.\r\rb\r\n.\r\n", 13},   // a CR run not before LF is data
		{"a\r\r.\r\r\nb\r\n.\r\n", 13},   // "\r\r." is not a line start
		{"a\n.\r\r\nb\r\n.\r\n", 12},     // nor is "\n."
		{"a\r\r\n.\nb\r\n.\r\n", 12},     // and "." LF is no end
		{"no end\r\n", 8},
	}
	for _, tt := range tests {
		st := dataBeginLine
		if got, end := scanData(&st, []byte(tt.in)); got != tt.want || end == strings.HasPrefix(tt.in, "no end") {
			t.Errorf("scanData(%q) = %d, %v; want %d", tt.in, got, end, tt.want)
		}
		// Fed in pieces of every size, the end is found at the same place.
		for size := 1; size < len(tt.in); size++ {
			st, n := dataBeginLine, 0
			for n < len(tt.in) {
				k, end := scanData(&st, []byte(tt.in[n:min(n+size, len(tt.in))]))
				n += k
				if end {
					break
				}
			}
			if n != tt.want {
				t.Errorf("scanData(%q) in pieces of %d ended at %d, want %d", tt.in, size, n, tt.want)
			}
		}
	}
}

func TestQualifySender(t *testing.T) {
	tests := []struct{ in, want string }{
		{"FROM:<scanner>", "FROM:<scanner@unqualified.invalid>"},
		{"from: <scanner> SIZE=100", "FROM:<scanner@unqualified.invalid> SIZE=100"},
		{"FROM:scanner", "FROM:scanner@unqualified.invalid"},
		{"FROM:scanner BODY=8BITMIME", "FROM:scanner@unqualified.invalid BODY=8BITMIME"},
		{"FROM:<scanner@lab.campus.test>", ""},
		{"FROM:scanner@lab.campus.test", ""},
		{"FROM:<>", ""},
		{"FROM:<@relay:x>", ""},
		{`FROM:<"scan ner">`, ""},
		{"FROM:<scanner", ""},
		{"FROM:scan(ner)", ""},
		{"TO:<scanner>", ""},
	}
	for _, tt := range tests {
		got, ok := qualifySender(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("qualifySender(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestSplitCommandMirrorsGoSMTP(t *testing.T) {
	tests := []struct{ line, verb, arg string }{
		{"MAIL FROM:<a@b.c>", "MAIL", "FROM:<a@b.c>"},
		{"mail FROM: <a@b.c>  ", "MAIL", "FROM: <a@b.c>"},
		{"QUIT", "QUIT", ""},
		{"STARTTLS", "STARTTLS", ""},
		{"starttls now", "STARTTLS", ""},
		{"BDAT 10 LAST", "BDAT", "10 LAST"},
		{"MAIL", "MAIL", ""},
		{"MAILX", "", ""},
		{"MAIL:FROM", "", ""},
		{"NO", "", ""},
	}
	for _, tt := range tests {
		if v, a := splitCommand(tt.line); v != tt.verb || a != tt.arg {
			t.Errorf("splitCommand(%q) = %q, %q; want %q, %q", tt.line, v, a, tt.verb, tt.arg)
		}
	}
	for arg, want := range map[string]int64{"10": 10, "10 LAST": 10, "10 last": 10, "0 LAST": 0,
		"": -1, "10 NOW": -1, "-1": -1, "1 2 3": -1, "99999999999": -1} {
		n, ok := bdatSize(arg)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("bdatSize(%q) = %d, want %d", arg, n, want)
		}
	}
}

// A reply go-smtp writes in pieces is still recognised, and only the
// reply to the injected HELO is dropped.
func TestNoteRepliesAcrossWrites(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newDeviceConn(server, netipLoopback, 0, func() {}, discardLogger())
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(client)
		got <- string(b)
	}()
	c.reply.swallow = true
	for _, w := range []string{"25", "0 2.0.0 Hello [127.0.0.1]\r", "\n250-one\r\n", "250 two\r\n", "354 go\r\n"} {
		if _, err := c.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	server.Close()
	if s := <-got; s != "250-one\r\n250 two\r\n354 go\r\n" {
		t.Errorf("client saw %q", s)
	}
	if c.reply.count != 3 || c.reply.last != 354 {
		t.Errorf("count %d last %d, want 3 and 354", c.reply.count, c.reply.last)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// After go-smtp answers STARTTLS with 220, the bytes are a TLS handshake:
// nothing is translated, split into lines or parsed any more, even for a
// client that ends its lines with bare LF.
func TestStartTLSSwitchesToRaw(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newDeviceConn(server, netipLoopback, 0, func() {}, discardLogger())
	defer c.Close()
	go func() {
		_, _ = io.WriteString(client, "EHLO x\nSTARTTLS\n")
		_, _ = io.WriteString(client, "\x16\x03\x01\n\nMAIL FROM:<a>\n")
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	buf := make([]byte, 512)
	read := func() string {
		t.Helper()
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "EHLO x\r\n" {
		t.Fatalf("first read %q, want one translated line", got)
	}
	if _, err := c.Write([]byte("250 ok\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STARTTLS\r\n" {
		t.Fatalf("second read %q", got)
	}
	if _, err := c.Write([]byte("220 go ahead\r\n")); err != nil {
		t.Fatal(err)
	}
	var raw strings.Builder
	for raw.Len() < len("\x16\x03\x01\n\nMAIL FROM:<a>\n") {
		raw.WriteString(read())
	}
	if raw.String() != "\x16\x03\x01\n\nMAIL FROM:<a>\n" {
		t.Fatalf("after STARTTLS read %q, want the bytes untouched", raw.String())
	}
	if c.stream.phase != phaseRaw {
		t.Fatalf("phase %d, want raw", c.stream.phase)
	}
}

// An LF-only client's lines and body reach go-smtp translated however small
// its reads, the body ends at the translated end marker, and the command
// pipelined after it is dropped, not read: go-smtp reads the end of the
// session after its answer to the body.
func TestLFOnlyTranslatedInOneByteReads(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newDeviceConn(server, netipLoopback, 0, func() {}, discardLogger())
	defer c.Close()
	go func() { _, _ = io.WriteString(client, "EHLO x\nDATA\nline\r\n\n.\nQUIT\n") }()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	var buf [1]byte
	read := func(want string) {
		t.Helper()
		var got strings.Builder
		for got.Len() < len(want) {
			n, err := c.Read(buf[:])
			if err != nil {
				t.Fatalf("after %q: %v", got.String(), err)
			}
			got.Write(buf[:n])
		}
		if got.String() != want {
			t.Fatalf("read %q, want %q", got.String(), want)
		}
	}
	reply := func(r string) {
		t.Helper()
		if _, err := c.Write([]byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	read("EHLO x\r\n")
	reply("250 ok\r\n")
	read("DATA\r\n")
	reply("354 go\r\n")
	read("line\r\n\r\n.\r\n")
	if c.stream.phase != phaseBody || c.in.len() != len("QUIT\n") {
		t.Fatalf("after the end marker: phase %d, %d bytes queued; want the body phase and QUIT queued", c.stream.phase, c.in.len())
	}
	reply("250 queued\r\n")
	if n, err := c.Read(buf[:]); n != 0 || err != io.EOF {
		t.Fatalf("after the reply to the body: %d bytes, %v; want the pipelined QUIT dropped and io.EOF", n, err)
	}
}

// In an LF-only session, bytes that arrive after the end of DATA in a
// separate write, but before the reply, are dropped too, and the client
// reads the reply to its message, then a 421.
func TestLFOnlyPipelinedLaterWriteDropped(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newDeviceConn(server, netipLoopback, 0, func() {}, discardLogger())
	c.host = "relay.test"
	defer c.Close()
	go func() {
		_, _ = io.WriteString(client, "EHLO x\nDATA\nbody\n.\n")
		_, _ = io.WriteString(client, "MAIL FROM:<ceo@campus.test>\n") // a second write, before any reply
	}()
	replies := make(chan string, 1)
	go func() { b, _ := io.ReadAll(client); replies <- string(b) }()
	buf := make([]byte, 64)
	read := func(want string) {
		t.Helper()
		var got strings.Builder
		for got.Len() < len(want) {
			n, err := c.Read(buf[:min(len(buf), len(want)-got.Len())])
			if err != nil {
				t.Fatalf("after %q: %v", got.String(), err)
			}
			got.Write(buf[:n])
		}
		if got.String() != want {
			t.Fatalf("read %q, want %q", got.String(), want)
		}
	}
	read("EHLO x\r\n")
	c.Write([]byte("250 ok\r\n"))
	read("DATA\r\n")
	c.Write([]byte("354 go\r\n"))
	read("body\r\n.\r\n")
	c.Write([]byte("250 queued\r\n"))
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the reply: %d bytes (%q), %v; want io.EOF", n, buf[:n], err)
	}
	c.Close()
	if got := <-replies; !strings.HasSuffix(got, "250 queued\r\n421 4.5.0 relay.test: commands sent before the reply to the message are not accepted from a client that ends lines with bare LF; closing\r\n") {
		t.Fatalf("client read %q", got)
	}
}
