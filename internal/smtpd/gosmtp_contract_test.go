package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The behaviours of go-smtp that deviceConn (quirks.go) depends on, tested
// against a bare go-smtp server with no deviceConn in front, so that an
// upgrade of third_party/go-smtp that changes one fails here, by number
// (deviceConn's doc comment and third_party/go-smtp/RELAYBOX.md list them).

// contractBackend accepts everything go-smtp lets through to it. With
// skipBody, Data returns without reading the body.
type contractBackend struct{ skipBody bool }

func (b *contractBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &contractSession{b}, nil
}

type contractSession struct{ b *contractBackend }

func (s *contractSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *contractSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, _, _ string) error { return nil }), nil
}
func (s *contractSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *contractSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *contractSession) Reset()                               {}
func (s *contractSession) Logout() error                        { return nil }
func (s *contractSession) Data(r io.Reader) error {
	if s.b.skipBody {
		return nil
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// recConn records what go-smtp does with the connection: how many bytes
// it has read when it writes each reply line, how many final replies it
// had written when it called Read, and whether it set a read deadline.
// With oneByte each Read returns at most one byte, so go-smtp reads only
// what it needs; with oneLine at most one line, as deviceConn hands on
// commands.
type recConn struct {
	net.Conn
	oneByte, oneLine bool

	mu            sync.Mutex
	pending       []byte
	read          int
	finals        int      // final reply lines written so far
	finalsAtRead  []int    // finals at each Read call
	replyLines    []string // every reply line written, in order
	readAtReply   []int    // read, when each reply line was written
	rawWrites     [][]byte
	readDeadlines int
	partial       []byte
}

func (c *recConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.finalsAtRead = append(c.finalsAtRead, c.finals)
	c.mu.Unlock()
	var n int
	var err error
	switch {
	case c.oneByte:
		n, err = c.Conn.Read(p[:1])
	case c.oneLine:
		for bytes.IndexByte(c.pending, '\n') < 0 && err == nil {
			var buf [512]byte
			var k int
			k, err = c.Conn.Read(buf[:])
			c.pending = append(c.pending, buf[:k]...)
		}
		if len(c.pending) > 0 {
			err = nil
		}
		end := len(c.pending)
		if i := bytes.IndexByte(c.pending, '\n'); i >= 0 {
			end = i + 1
		}
		n = copy(p, c.pending[:end])
		c.pending = c.pending[n:]
	default:
		n, err = c.Conn.Read(p)
	}
	c.mu.Lock()
	c.read += n
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.rawWrites = append(c.rawWrites, append([]byte(nil), p...))
	c.partial = append(c.partial, p...)
	for {
		i := bytes.Index(c.partial, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := string(c.partial[:i])
		c.partial = c.partial[i+2:]
		c.replyLines = append(c.replyLines, line)
		c.readAtReply = append(c.readAtReply, c.read)
		if len(line) < 4 || line[3] != '-' {
			c.finals++
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadlines++
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *recConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadlines++
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// readMode: how much each Read of a recConn may return.
type readMode int

const (
	readAny readMode = iota
	readByte
	readLine
)

type recListener struct {
	net.Listener
	wrap func(net.Conn) *recConn
	got  chan *recConn
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := l.wrap(c)
	l.got <- rc
	return rc, nil
}

// contractServer starts a bare go-smtp server, set up as relaybox sets
// it up where that matters (no body line limit, no read timeout), dials
// it and returns the client side and the server side's recorder.
func contractServer(t *testing.T, be *contractBackend, mode readMode, configure func(*smtp.Server)) (net.Conn, *recConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(be)
	s.Domain = "contract.test"
	s.AllowInsecureAuth = true
	s.MaxDataLineLength = -1
	s.WriteTimeout = 30 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(s)
	}
	rl := &recListener{Listener: l, got: make(chan *recConn, 1), wrap: func(c net.Conn) *recConn {
		return &recConn{Conn: c, oneByte: mode == readByte, oneLine: mode == readLine}
	}}
	go func() { _ = s.Serve(rl) }()
	t.Cleanup(func() { _ = s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	select {
	case r := <-rl.got:
		return c, r
	case <-time.After(30 * time.Second):
		t.Fatal("go-smtp did not accept the connection")
	}
	return nil, nil
}

// finalReplies reads everything the server sends until it closes and
// returns its final reply lines.
func finalReplies(t *testing.T, c net.Conn) []string {
	t.Helper()
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading replies: %v (so far %q)", err, out)
	}
	var finals []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n") {
		if len(l) < 4 || l[3] != '-' {
			finals = append(finals, l)
		}
	}
	return finals
}

func codes(lines []string) string {
	var c []string
	for _, l := range lines {
		c = append(c, l[:min(3, len(l))])
	}
	return strings.Join(c, " ")
}

// Assumptions 1, 2 and 3: the greeting comes before any read; replies are
// CRLF lines, "ddd-" continuing and "ddd " ending one; and with one line
// per Read (as deviceConn hands on commands) every Read comes after the
// reply to every line handed on before it.
func TestGoSMTPGreetsAndAnswersEachLineBeforeReadingOn(t *testing.T) {
	c, rc := contractServer(t, &contractBackend{}, readLine, nil)
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	rc.mu.Lock()
	if rc.read != 0 || rc.finals != 1 {
		t.Errorf("assumption 1: go-smtp read %d bytes before its greeting (%d replies written)", rc.read, rc.finals)
	}
	rc.mu.Unlock()
	commands := []string{"EHLO device", "NOOP", "MAIL FROM:<a@campus.test>", "RCPT TO:<b@campus.test>", "RSET", "QUIT"}
	if _, err := io.WriteString(c, strings.Join(commands, "\r\n")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(greeting+string(rest), "\r\n"), "\r\n")
	finals := 0
	for i, l := range lines {
		if len(l) < 3 || l[0] < '2' || l[0] > '5' || (len(l) > 3 && l[3] != ' ' && l[3] != '-') {
			t.Errorf("assumption 2: reply line %d %q is not \"ddd\", \"ddd text\" or \"ddd-text\"", i, l)
		}
		if len(l) == 3 || l[3] == ' ' {
			finals++
		} else if i == len(lines)-1 {
			t.Errorf("assumption 2: the last line %q continues a reply", l)
		}
	}
	if finals != 1+len(commands) {
		t.Errorf("assumption 2: %d final reply lines for %d commands and the greeting:\n%s", finals, len(commands), greeting+string(rest))
	}
	if !strings.Contains(string(rest), "250-") {
		t.Errorf("assumption 2: EHLO's reply has no continuation lines:\n%s", rest)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	// Read call k (from 0) comes after k lines were handed on, so it must
	// come after the greeting and k replies.
	for k, f := range rc.finalsAtRead {
		if k < len(commands) && f < k+1 {
			t.Errorf("assumption 3: go-smtp read for command %d after only %d replies (greeting included)", k+1, f)
		}
	}
}

// Assumption 4: go-smtp's parseCmd takes the verb as splitCommand does. A
// line splitCommand cannot split must get go-smtp's "Bad command", one it
// splits into an unknown verb must be refused by that verb.
func TestGoSMTPParsesCommandsAsSplitCommand(t *testing.T) {
	lines := []string{"NOOP", "noop", "Noop ", "NOOP x", "NOOPX", "NOOP:x", "NOO", "XYZW", "XYZW arg",
		"MAILX FROM:<a@b.c>", "STARTTLS", "starttls now", "STARTTLSX", "  NOOP", "NOOP\tx", "VRFY x"}
	for _, line := range lines {
		c, _ := contractServer(t, &contractBackend{}, readAny, nil)
		if _, err := io.WriteString(c, "EHLO device\r\n"+line+"\r\nQUIT\r\n"); err != nil {
			t.Fatal(err)
		}
		f := finalReplies(t, c)
		if len(f) != 4 {
			t.Errorf("%q: replies %q, want greeting, EHLO, its reply and QUIT's", line, f)
			continue
		}
		reply := f[2]
		verb, _ := splitCommand(line)
		switch {
		case verb == "":
			if !strings.HasPrefix(reply, "501 5.5.2 Bad command") {
				t.Errorf("assumption 4: %q cannot be split (splitCommand), but go-smtp answered %q", line, reply)
			}
		case verb == "STARTTLS":
			// No TLSConfig here: go-smtp refuses it by name.
			if !strings.Contains(reply, "TLS not supported") {
				t.Errorf("assumption 4: %q is STARTTLS to splitCommand, go-smtp answered %q", line, reply)
			}
		case verb == "XYZW":
			if !strings.Contains(reply, "XYZW command unrecognized") {
				t.Errorf("assumption 4: %q has the verb XYZW to splitCommand, go-smtp answered %q", line, reply)
			}
		default:
			if strings.Contains(reply, "Bad command") || strings.Contains(reply, "unrecognized") {
				t.Errorf("assumption 4: %q has the verb %s to splitCommand, go-smtp answered %q", line, verb, reply)
			}
		}
	}
}

// tlsContractServer is contractServer with STARTTLS offered; say sends
// a line and returns the final line of the reply to it.
func tlsContractServer(t *testing.T) (c net.Conn, rc *recConn, say func(line string) string) {
	t.Helper()
	cfg, err := LoadTLS(TLSFiles{Cert: CertAuto, Dir: t.TempDir(), Hostname: "contract.test"})
	if err != nil {
		t.Fatal(err)
	}
	c, rc = contractServer(t, &contractBackend{}, readAny, func(s *smtp.Server) { s.TLSConfig = cfg })
	br := bufio.NewReader(c)
	readFinal := func() string {
		t.Helper()
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v", err)
			}
			// A reply written after a TLS alert record arrives behind it.
			if i := strings.Index(l, "550 "); i > 0 {
				l = l[i:]
			}
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	readFinal() // the greeting
	return c, rc, func(line string) string {
		t.Helper()
		if line != "" {
			if _, err := io.WriteString(c, line+"\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		return readFinal()
	}
}

// Assumption 5: the replies that say what go-smtp reads next are 354 to
// DATA, 334 to AUTH without an initial response and 220 to STARTTLS.
func TestGoSMTPRepliesThatChangeWhatFollows(t *testing.T) {
	c, _, say := tlsContractServer(t)
	for _, step := range []struct{ send, want string }{
		{"EHLO device", "250 "},
		{"AUTH PLAIN", "334 "},
		{"AGRldmljZQBwYXNz", "235 "}, // the SASL response, not a command
		{"MAIL FROM:<a@campus.test>", "250 "},
		{"RCPT TO:<b@campus.test>", "250 "},
		{"DATA", "354 "},
		{"QUIT\r\n.", "250 "}, // "QUIT" was body
		{"STARTTLS", "220 "},
	} {
		if got := say(step.send); !strings.HasPrefix(got, step.want) {
			t.Fatalf("assumption 5: %q got %q, want %q", step.send, got, step.want)
		}
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("assumption 5: no TLS handshake on the same connection after 220 to STARTTLS: %v", err)
	}
}

// endStream builds one session that sends each body in its own
// transaction, each followed by "\r\n.\r\n" (which ends DATA from any
// state), and returns where, in the bytes sent, scanData says each body
// ends.
func endStream(bodies [][]byte) (stream []byte, ends []int) {
	stream = []byte("EHLO device\r\n")
	for _, b := range bodies {
		stream = append(stream, "MAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\nDATA\r\n"...)
		body := append(append([]byte(nil), b...), "\r\n.\r\n"...)
		st := dataBeginLine
		k, end := scanData(&st, body)
		if !end {
			panic("\\r\\n.\\r\\n did not end DATA in scanData")
		}
		ends = append(ends, len(stream)+k)
		stream = append(stream, body[:k]...)
	}
	return append(stream, "QUIT\r\n"...), ends
}

// checkEnds runs the session and checks that go-smtp answered each body
// (assumption 7: once, with 250) having read exactly up to the end scanData
// found, and not a byte more (assumption 6).
func checkEnds(t *testing.T, skipBody bool, bodies [][]byte) {
	t.Helper()
	stream, ends := endStream(bodies)
	c, rc := contractServer(t, &contractBackend{skipBody: skipBody}, readByte, nil)
	go func() {
		_, _ = c.Write(stream)
		// go-smtp still reading a body then meets EOF, not the deadline.
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	// A read error (go-smtp closing on bytes it took as commands) shows
	// below as a reply out of place.
	_, _ = io.ReadAll(c)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var finals []string
	var at []int
	for i, l := range rc.replyLines {
		if len(l) < 4 || l[3] != '-' {
			finals = append(finals, l)
			at = append(at, rc.readAtReply[i])
		}
	}
	// The greeting, EHLO's reply, then MAIL's, RCPT's, DATA's and the
	// body's for each body, then QUIT's.
	for i, b := range bodies {
		r := 2 + 4*i + 3
		if r >= len(finals) || !strings.HasPrefix(finals[r], "250 ") || at[r] != ends[i] {
			got := "no reply"
			if r < len(finals) {
				got = fmt.Sprintf("%q having read to byte %d", finals[r], at[r])
			}
			t.Fatalf("assumptions 6-7: body %d %q: go-smtp answered %s; scanData ends it at byte %d",
				i, b, got, ends[i])
		}
	}
	if want := 3 + 4*len(bodies); len(finals) != want {
		t.Fatalf("assumption 7: %d final replies, want %d", len(finals), want)
	}
}

// dataSeeds: the line endings and smuggling sequences the data reader
// and scanData must agree on (RELAYBOX.md section 2).
var dataSeeds = []string{
	"", "a", ".", "..", ".a", "a\r\n.", "a\n.\n", "a\n.\r\n", "a\r\n.\n", "a\r.\r\n", "a\r\n.\rb",
	"a\r\r\n.", "a\r\r\n.\r\r\nb", "\r\r\n.\n", "\n.\r\r\n", "\r\r.\r\r\n", "\r\n.\r\rX",
	".\r\r\r\nQUIT", "a\r\n\x00.\r\nb", "Subject: x\r\n\r\nbody\r\n..stuffed\r\n",
}

// Assumptions 6 and 7 over the seeds and every body of up to five bytes
// from CR, LF, "." and "x": go-smtp's data reader ends each body where
// scanData does, whether or not the backend reads the body.
func TestScanDataAgreesWithGoSMTP(t *testing.T) {
	var bodies [][]byte
	for _, s := range dataSeeds {
		bodies = append(bodies, []byte(s))
	}
	alphabet := []byte("\r\n.x")
	var gen func(prefix []byte)
	gen = func(prefix []byte) {
		bodies = append(bodies, append([]byte(nil), prefix...))
		if len(prefix) == 5 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c))
		}
	}
	gen(nil)
	t.Run("backend reads", func(t *testing.T) { checkEnds(t, false, bodies) })
	t.Run("backend does not read", func(t *testing.T) { checkEnds(t, true, bodies[:len(dataSeeds)]) })
}

// go test -fuzz FuzzScanDataAgreesWithGoSMTP ./internal/smtpd/
func FuzzScanDataAgreesWithGoSMTP(f *testing.F) {
	for _, s := range dataSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 4096 {
			return
		}
		checkEnds(t, false, [][]byte{body})
	})
}

// Assumption 8: after BDAT with a size bdatSize accepts, go-smtp reads
// that many bytes whatever it answers; after one it does not, none.
func TestGoSMTPBdatReadsTheChunkWhateverItAnswers(t *testing.T) {
	chunk := "NOOP\r\nNOOP\r\n" // 12 bytes that would be two commands
	tests := []struct {
		name, before, arg string
		max               int64
		reply             string
	}{
		{"accepted", "MAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\n", "12 LAST", 0, "250"},
		{"no transaction", "", "12", 0, "502"},
		{"over the size limit", "MAIL FROM:<a@campus.test>\r\nRCPT TO:<b@campus.test>\r\n", "12", 8, "552"},
		{"unknown argument", "", "12 MORE", 0, "501"},
		{"too big to parse", "", "4294967308", 0, "501"},
		{"negative", "", "-12", 0, "501"},
		{"no size", "", "", 0, "501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := contractServer(t, &contractBackend{}, readAny, func(s *smtp.Server) { s.MaxMessageBytes = tt.max })
			if _, err := io.WriteString(c, "EHLO device\r\n"+tt.before+"BDAT "+tt.arg+"\r\n"+chunk+"QUIT\r\n"); err != nil {
				t.Fatal(err)
			}
			f := finalReplies(t, c)
			n := 2 + strings.Count(tt.before, "\r\n")
			if len(f) <= n || !strings.HasPrefix(f[n], tt.reply) {
				t.Fatalf("BDAT %s: replies %q, want %s to BDAT", tt.arg, codes(f), tt.reply)
			}
			_, parsed := bdatSize(tt.arg)
			chunkRead := len(f) == n+2 // BDAT's reply, then QUIT's
			if chunkRead != parsed {
				t.Errorf("assumption 8: BDAT %s: go-smtp read the chunk: %v; bdatSize parses the size: %v (replies %q)",
					tt.arg, chunkRead, parsed, codes(f))
			}
		})
	}
}

// Assumption 9: what go-smtp refuses, and so what deviceConn mends. If
// one of these starts to pass, the mending for it is dead code.
func TestGoSMTPRefusesWhatDevicesSend(t *testing.T) {
	tests := []struct{ name, session, want string }{
		{"HELO without a name", "HELO\r\n", "501"},
		{"EHLO without a name", "EHLO\r\n", "501"},
		{"MAIL before HELO", "MAIL FROM:<a@campus.test>\r\n", "502"},
		{"AUTH before HELO", "AUTH PLAIN\r\n", "502"},
		{"sender without a domain", "EHLO device\r\nMAIL FROM:<scanner>\r\n", "501"},
		{"the mended sender", "EHLO device\r\nMAIL FROM:<scanner@" + unqualifiedDomain + ">\r\n", "250"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := contractServer(t, &contractBackend{}, readAny, nil)
			if _, err := io.WriteString(c, tt.session+"QUIT\r\n"); err != nil {
				t.Fatal(err)
			}
			f := finalReplies(t, c)
			if len(f) < 3 || !strings.HasPrefix(f[len(f)-2], tt.want) {
				t.Errorf("assumption 9: %s: replies %q, want %s before QUIT's", tt.name, f, tt.want)
			}
		})
	}
}

// Assumption 10: when the handshake after STARTTLS fails, go-smtp writes a
// plaintext reply (a digit first, in a write of its own) and carries on in
// plaintext; deviceConn.Write closes the session on that reply.
func TestGoSMTPFailedStartTLSGoesOnInPlaintext(t *testing.T) {
	c, rc, say := tlsContractServer(t)
	say("EHLO device")
	if r := say("STARTTLS"); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("STARTTLS: %q", r)
	}
	// Five bytes that are no TLS record: the handshake fails at once.
	_, _ = io.WriteString(c, "\x00\x00\x00\x00\x00")
	if r := say(""); !strings.HasPrefix(r, "550 ") {
		t.Fatalf("assumption 10: after a failed handshake go-smtp said %q, want a plaintext 550", r)
	}
	if r := say("NOOP"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("assumption 10: the session did not go on in plaintext: NOOP got %q", r)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	found := false
	for _, w := range rc.rawWrites {
		if bytes.HasPrefix(w, []byte("550 ")) {
			found = true
		}
	}
	if !found {
		t.Errorf("assumption 10: no write started with the plaintext reply; writes %q", rc.rawWrites)
	}
}

// errorConn returns err from every Read after the first line.
type errorConn struct {
	net.Conn
	err  error
	sent bool
}

func (c *errorConn) Read(p []byte) (int, error) {
	if c.sent {
		return 0, c.err
	}
	c.sent = true
	return copy(p, "EHLO device\r\n"), nil
}

// Assumption 11: go-smtp closes without a reply when Read returns io.EOF
// (dropPipelinedAfterBody writes its own 421 instead), and answers any
// other read error with 421 before it closes.
func TestGoSMTPClosesWithoutReplyOnEOF(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{{io.EOF, ""}, {errors.New("broken"), "421 "}} {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			s := smtp.NewServer(&contractBackend{})
			s.Domain = "contract.test"
			s.ErrorLog = log.New(io.Discard, "", 0)
			l := &oneConnListener{c: &errorConn{Conn: server, err: tt.err}, done: make(chan struct{})}
			go func() { _ = s.Serve(l) }()
			defer s.Close()
			_ = client.SetDeadline(time.Now().Add(30 * time.Second))
			out, _ := io.ReadAll(client)
			lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
			last := lines[len(lines)-1]
			if tt.want == "" && !strings.HasPrefix(last, "250 ") {
				t.Errorf("assumption 11: after io.EOF go-smtp wrote %q; want nothing after EHLO's reply", last)
			}
			if tt.want != "" && !strings.HasPrefix(last, tt.want) {
				t.Errorf("assumption 11: after a read error go-smtp wrote %q last, want %q", last, tt.want)
			}
		})
	}
}

type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Assumption 12: with ReadTimeout 0 go-smtp sets no read deadline, and it
// ends the session on a command line longer than 2000 bytes, well within
// the maxCommandLine bytes deviceConn buffers to look at one.
func TestGoSMTPNoReadDeadlineAndLineLimit(t *testing.T) {
	// One line per Read, as deviceConn hands on commands: go-smtp's limit
	// counts bytes per Read, so a long line read together with the lines
	// before it would end the session before they are answered.
	c, rc := contractServer(t, &contractBackend{}, readLine, nil)
	long := "NOOP " + strings.Repeat("x", 2100)
	if len(long) >= maxCommandLine {
		t.Fatalf("the test line is %d bytes, not under maxCommandLine", len(long))
	}
	if _, err := io.WriteString(c, "EHLO device\r\nMAIL FROM:<a@campus.test>\r\n"+long+"\r\nNOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	f := finalReplies(t, c)
	if len(f) != 4 || !strings.HasPrefix(f[3], "500 5.4.0 Too long line") {
		t.Errorf("assumption 12: replies %q; want the long line answered 500 5.4.0 and the session closed", f)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.readDeadlines != 0 {
		t.Errorf("assumption 12: go-smtp set %d read deadlines with ReadTimeout 0; deviceConn's would be overwritten", rc.readDeadlines)
	}
}
