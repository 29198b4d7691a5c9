package smtpd

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// deviceConn is the device-quirk layer: every device connection passes
// through it between the listener and go-smtp, which has no hook before its
// parser. It
//
//   - renews the read deadline on every read (deadline.go), so the idle
//     timeout measures silence, not the length of a slow 50 MiB upload;
//   - refuses a TLS handshake sent to the plaintext port;
//   - learns the client's line ending from its first line and, for a client
//     that ends lines with a bare LF, turns each bare LF into CRLF before
//     go-smtp sees it, so "\n.\n" ends its DATA (eolLFOnly; the stored body
//     is normalised later, by crlfWriter in normalize.go);
//   - drops bytes an LF-only client sends before the reply to its message,
//     and closes (dropPipelinedAfterBody: the smuggling guard for LF sessions);
//   - mends the commands of devices that go-smtp would refuse: HELO without
//     a name, MAIL or AUTH before HELO (it injects a HELO and swallows the
//     reply), a sender without a domain;
//   - drops plaintext pipelined after STARTTLS and closes when the STARTTLS
//     handshake fails.
//
// It must never touch a message body, a BDAT chunk or a SASL response, so it
// follows what go-smtp is reading:
//
//   - In the command phase each Read hands on at most one line. go-smtp
//     reads the next line only after it has answered this one, so when a
//     Read comes at a line boundary, every earlier line has been answered
//     and Write has seen the reply.
//   - The last reply says what comes next: after 354 a DATA body, after
//     334 a SASL response, after 220 to STARTTLS a TLS handshake (from then
//     on nothing is looked at). Otherwise it is a command line.
//   - A body is handed on up to go-smtp's own end marker (scanData mirrors
//     go-smtp's end-of-data state machine), and the command phase resumes
//     only once go-smtp has answered the body. A BDAT chunk is handed on by
//     count.
//
// Pipelining still works: the replies are the same, they are just produced
// one command at a time, which RFC 2920 allows.
//
// What it assumes about go-smtp. Each item is pinned by a test in
// gosmtp_contract_test.go that fails if an upgrade changes it; the checklist
// of everything relaybox assumes about go-smtp, these included (same
// numbers), is third_party/go-smtp/RELAYBOX.md, "What relaybox assumes".
//
//  1. go-smtp writes its 220 greeting before it reads a byte.
//  2. Replies are CRLF lines; "ddd-" continues a reply, "ddd " or "ddd"
//     ends it (noteReplies counts final lines).
//  3. go-smtp writes its reply to a command line before it reads the next
//     line (so one line per Read puts every Read after the earlier replies).
//  4. Its parseCmd takes the verb from the first four bytes of a line of
//     four bytes or with a space after them, and any line starting with
//     STARTTLS as STARTTLS (splitCommand mirrors it).
//  5. After 354 it reads a DATA body, after 334 one SASL response line,
//     after 220 to STARTTLS a TLS handshake over this same net.Conn.
//  6. Its data reader ends a body at the first CR+ LF "." CR+ LF (the body
//     starts at a line start), never at a bare LF, and reads nothing after
//     the marker's LF before it replies (scanData mirrors it).
//  7. After a body it writes exactly one final reply, whether or not the
//     backend read the body, and then reads commands again.
//  8. After "BDAT n [LAST]" whose n parses as a 32-bit decimal, it reads
//     exactly n bytes whatever it answers; otherwise none (bdatSize
//     mirrors it).
//  9. It refuses HELO or EHLO without a name (501), MAIL or AUTH before
//     HELO (502) and MAIL FROM a path without a domain (501): the mending
//     exists for these.
//  10. A failed STARTTLS handshake gets a plaintext reply (a digit first)
//     and the session goes on in plaintext; deviceConn closes instead.
//  11. On io.EOF from Read it closes without writing a reply, so
//     dropPipelinedAfterBody ends a session with io.EOF and writes its own
//     421; another read error gets go-smtp's 421 first.
//  12. With Server.ReadTimeout 0 it sets no read deadline (deviceConn owns
//     them), and it ends a session whose command line passes 2000 bytes,
//     so maxCommandLine bytes are always enough to look at one.
type deviceConn struct {
	net.Conn
	idle    time.Duration
	release func()
	once    sync.Once
	log     *slog.Logger
	client  netip.Addr
	host    string // our name, for a reply deviceConn writes itself

	started bool // at least one byte read
	mode    eolMode
	readCR  bool // while learning mode: the last byte read was a CR
	prevCR  bool // lfOnly: the last byte handed on by handOnText was a CR

	in   byteQueue // client bytes, as sent, not yet handed on
	out  []byte    // a mended command line, handed on before in
	rerr error     // the read error to return once in is drained

	stream streamState
	reply  replyState

	limits *slots // nil: only the idle timeout applies
	clock  clock
	hs     *handshake // implicit TLS: the handshake's slot until it is over
}

func newDeviceConn(c net.Conn, ip netip.Addr, idle time.Duration, release func(), log *slog.Logger) *deviceConn {
	return &deviceConn{Conn: c, idle: idle, release: release, log: log, client: ip}
}

type eolMode int

const (
	eolUnknown eolMode = iota
	eolCRLF
	// eolLFOnly: the client ended its first line with a bare LF. Such
	// devices end every line, the final "." included, with LF alone, and
	// go-smtp only ends DATA on CR+ LF "." CR+ LF, so for this session
	// every bare LF in a command line or DATA body becomes CRLF before
	// go-smtp sees it (handOnText), and "\n.\n" ends DATA. A client that
	// speaks CRLF never gets this treatment, so "\n.\n" cannot end its
	// DATA (that is the SMTP smuggling hole; Exim 4.97.1 draws the same
	// line). Smuggling inside an LF session is stopped by the pipelining
	// rule instead (dropPipelinedAfterBody). A BDAT chunk, counted in
	// bytes, and everything after STARTTLS (phaseRaw) pass untranslated.
	eolLFOnly
)

func (c *deviceConn) Close() error {
	c.hs.done()
	c.once.Do(c.release)
	return c.Conn.Close()
}

type phase int

const (
	phaseCommand phase = iota
	phaseBody          // DATA body, until go-smtp answers it
	phaseChunk         // BDAT chunk bytes
	phaseRaw           // after STARTTLS: bytes pass untouched, in both directions
)

// maxCommandLine bounds how much of one command line is buffered for a
// look. go-smtp closes the connection on lines over 2000 bytes itself.
const maxCommandLine = 4096

// unqualifiedDomain marks a sender the device sent without a domain
// (MAIL FROM:<scanner>): go-smtp refuses such a path, so the line is passed
// on as <scanner@unqualified.invalid> and Session.Mail rewrites or refuses
// it. ".invalid" can never be a real domain (RFC 2606).
const unqualifiedDomain = "unqualified.invalid"

// errTLSOnPlain ends a session whose first bytes are a TLS handshake.
var errTLSOnPlain = errors.New("smtpd: TLS handshake on the plaintext SMTP port")

// errHandshakeFailed ends a session whose STARTTLS handshake failed:
// go-smtp would carry on in plaintext, but the client asked for TLS and
// RFC 3207 gives no way back to a clean plaintext state.
var errHandshakeFailed = errors.New("smtpd: STARTTLS handshake failed")

type streamState struct {
	phase     phase
	lineLeft  int   // bytes of the current line still to hand on as they are
	skipToEOL bool  // a line too long to look at: the rest of it passes as it is
	chunkLeft int64 // phaseChunk: bytes left in the BDAT chunk
	data      int   // phaseBody: go-smtp's dataReader state, mirrored
	bodyAt    uint64
	greeted   bool   // a HELO or EHLO with a name has been handed on
	lastVerb  string // of the last command line handed on
	// startedTLS: phaseRaw was entered by STARTTLS (not an implicit-TLS
	// listener), so a plaintext reply means the handshake failed.
	startedTLS bool
}

type replyState struct {
	count    uint64  // final reply lines written
	last     int     // code of the last final reply line
	col      int     // bytes of the current reply line so far
	head     [4]byte // its first bytes: code and separator
	swallow  bool    // drop the next reply: it answers a HELO the device never sent
	dropping bool
}

// Read implements net.Conn for go-smtp.
func (c *deviceConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	st := &c.stream
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if st.lineLeft > 0 {
			if c.in.len() == 0 && !c.fill() {
				return 0, c.rerr
			}
			n, used := c.handOnText(p, st.lineLeft, false)
			st.lineLeft -= used
			return n, nil
		}
		switch st.phase {
		case phaseRaw:
			if c.in.len() > 0 {
				return c.handOn(p, c.in.len()), nil
			}
			if c.rerr != nil {
				return 0, c.rerr
			}
			return c.readNet(p)
		case phaseChunk:
			if st.chunkLeft == 0 {
				st.phase = phaseCommand
				continue
			}
			if c.in.len() == 0 {
				if c.direct() {
					n, err := c.readNet(p[:min(int64(len(p)), st.chunkLeft)])
					st.chunkLeft -= int64(n)
					return n, err
				}
				if !c.fill() {
					return 0, c.rerr
				}
			}
			n := c.handOn(p, int(min(int64(c.in.len()), st.chunkLeft)))
			st.chunkLeft -= int64(n)
			return n, nil
		case phaseBody:
			if c.reply.count != st.bodyAt {
				st.phase = phaseCommand // go-smtp has answered the body
				continue
			}
			if c.in.len() == 0 {
				if c.direct() {
					return c.readBodyDirect(p)
				}
				if !c.fill() {
					return 0, c.rerr
				}
			}
			n, _ := c.handOnText(p, c.in.len(), true)
			return n, nil
		default:
			// A line boundary: go-smtp has answered every earlier line.
			switch {
			case c.reply.last == 354:
				st.phase, st.data, st.bodyAt = phaseBody, dataBeginLine, c.reply.count
				continue
			case c.reply.last == 220 && st.lastVerb == "STARTTLS":
				c.startTLS()
				continue
			}
			if st.skipToEOL {
				if !c.skipLine() {
					return 0, c.rerr
				}
				continue
			}
			line, ok := c.nextLine()
			if !ok {
				if n := c.in.len(); n > 0 {
					// A line cut off by an error, or one too long to look
					// at: hand it on; go-smtp reports the problem.
					st.lineLeft = n
					st.skipToEOL = c.rerr == nil
					continue
				}
				return 0, c.rerr
			}
			c.command(line)
		}
	}
}

// startTLS switches to raw pass-through once go-smtp has answered 220 to
// STARTTLS. Bytes the client sent after STARTTLS before the handshake are
// plaintext that must not be taken as sent inside TLS (RFC 3207 section 6;
// CVE-2011-0411): they are dropped.
func (c *deviceConn) startTLS() {
	c.stream.phase = phaseRaw
	c.stream.startedTLS = true
	if n := c.in.len(); n > 0 {
		c.log.Warn("client pipelined commands after STARTTLS; dropped them", "client", c.client.String(), "bytes", n)
		c.in.consume(n)
	}
}

// nextLine returns the next complete line in in (with its LF), reading
// more as needed. It returns false on a read error or when the line is too
// long to buffer.
func (c *deviceConn) nextLine() ([]byte, bool) {
	for {
		b := c.in.bytes()
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return b[:i+1], true
		}
		if len(b) > maxCommandLine || !c.fill() {
			return nil, false
		}
	}
}

// skipLine hands on the rest of a line too long to look at, unchanged.
func (c *deviceConn) skipLine() bool {
	if c.in.len() == 0 && !c.fill() {
		return false
	}
	b := c.in.bytes()
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		c.stream.skipToEOL = false
		c.stream.lineLeft = i + 1
		return true
	}
	c.stream.lineLeft = len(b)
	return true
}

// command looks at one command line and hands it on, mended if need be.
func (c *deviceConn) command(line []byte) {
	st := &c.stream
	if c.reply.last == 334 {
		// A SASL response: data, never a command.
		st.lastVerb = ""
		st.lineLeft = len(line)
		return
	}
	text := string(bytes.TrimRight(line, "\r\n"))
	verb, arg := splitCommand(text)
	if len(text) >= 4 {
		if v := strings.ToUpper(text[:4]); (v == "HELO" || v == "EHLO") && strings.Trim(text[4:], " \t") == "" {
			// RFC 5321 4.1.4: a client without a name should send its
			// address literal, so that is what go-smtp gets.
			c.log.Info("device sent "+v+" without a name; using its address", "client", c.client.String(),
				"helo", c.literal())
			st.lastVerb, st.greeted = v, true
			c.replaceLine(line, v+" "+c.literal())
			return
		}
	}
	st.lastVerb = verb
	switch verb {
	case "HELO", "EHLO":
		st.greeted = true
	case "MAIL", "AUTH":
		if !st.greeted {
			c.log.Info("device sent "+verb+" before HELO; introducing it by its address", "client", c.client.String(),
				"helo", c.literal())
			// The line stays in in and is looked at again on the next Read,
			// after go-smtp has answered the HELO; Write drops that answer,
			// so the device sees one reply per command it sent.
			c.out = append(c.out[:0], "HELO "+c.literal()+"\r\n"...)
			c.reply.swallow = true
			st.greeted, st.lastVerb = true, "HELO"
			return
		}
		if verb == "MAIL" {
			if fixed, ok := qualifySender(arg); ok {
				c.replaceLine(line, "MAIL "+fixed)
				return
			}
		}
	case "BDAT":
		// The chunk follows the command whatever go-smtp answers, as soon
		// as go-smtp could parse the size (handleBdat reads it in all cases).
		if size, ok := bdatSize(arg); ok && size > 0 {
			st.phase, st.chunkLeft = phaseChunk, size
		}
	}
	st.lineLeft = len(line)
}

// replaceLine drops line from in and hands on text instead.
func (c *deviceConn) replaceLine(line []byte, text string) {
	c.in.consume(len(line))
	c.out = append(append(c.out[:0], text...), '\r', '\n')
}

// literal is the client's address as an RFC 5321 4.1.3 address literal.
func (c *deviceConn) literal() string {
	ip := c.client.WithZone("")
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// splitCommand mirrors go-smtp's parseCmd: the verb, upper-case, and the
// trimmed argument; "" for a line go-smtp cannot parse.
func splitCommand(line string) (verb, arg string) {
	switch {
	case strings.HasPrefix(strings.ToUpper(line), "STARTTLS"):
		return "STARTTLS", ""
	case len(line) == 4:
		return strings.ToUpper(line), ""
	case len(line) < 6 || line[4] != ' ':
		return "", ""
	}
	return strings.ToUpper(line[:4]), strings.TrimSpace(line[5:])
}

// qualifySender turns the argument of MAIL whose path has no domain
// ("FROM:<scanner>", "FROM: scanner SIZE=10") into one go-smtp parses,
// with the domain unqualifiedDomain. Any other argument is left alone.
func qualifySender(arg string) (string, bool) {
	if len(arg) < 5 || !strings.EqualFold(arg[:5], "FROM:") {
		return "", false
	}
	rest := strings.TrimSpace(arg[5:])
	bracket := strings.HasPrefix(rest, "<")
	start := 0
	if bracket {
		start = 1
	}
	i := start
	for ; i < len(rest); i++ {
		ch := rest[i]
		if ch == '@' {
			return "", false
		}
		// go-smtp's dot-string stops (or fails) on these.
		if strings.IndexByte("()<>[]:;\\,\" \t", ch) >= 0 {
			break
		}
	}
	if i == start { // "<>", "<@route:...>", a quoted local part
		return "", false
	}
	switch {
	case bracket && (i == len(rest) || rest[i] != '>'):
		return "", false
	case !bracket && i < len(rest) && rest[i] != ' ' && rest[i] != '\t':
		return "", false
	}
	return "FROM:" + rest[:i] + "@" + unqualifiedDomain + rest[i:], true
}

// bdatSize mirrors go-smtp's handleBdat: the chunk size, if it parses.
func bdatSize(arg string) (int64, bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		return 0, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	return int64(n), err == nil
}
