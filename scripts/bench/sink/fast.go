package main

// The -fast server: the same counters and the same extensions as the
// go-smtp one (internal/sink), at a fraction of its CPU. On a 2-core box the
// sink shares the cores with the relay under test and the load tool, so
// every millisecond it spends per message is taken from the relay and caps
// the loopback baseline; this server reads a DATA body in whole buffers
// (bytes.Index for "\n." over bufio's buffer, nothing copied) instead of
// going through a body reader, a line limiter and a bytes.Buffer.
//
// It speaks what a relay sends to its upstream: EHLO/HELO, STARTTLS (or TLS
// from the first byte), MAIL, RCPT, DATA, RSET, NOOP, QUIT, pipelined. It
// advertises what the go-smtp mode advertises (PIPELINING,
// ENHANCEDSTATUSCODES, 8BITMIME, STARTTLS before TLS, SIZE without a limit,
// no SMTPUTF8) except CHUNKING: it has no BDAT, and neither relaybox's nor
// Postfix's client sends BDAT. A DATA body is counted as go-smtp's reader
// hands it to its backend (see bodyLen), so both modes report the same
// bytes for the same input; unlike go-smtp it has no limit on a body line's
// length.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fastOptions configure a fastServer.
type fastOptions struct {
	Hostname string
	TLS      *tls.Config // nil: no STARTTLS (and no Implicit)
	Implicit bool        // TLS from the first byte
	// OnMessage sees each completed message: its size as the go-smtp
	// mode counts it and whether the session was encrypted at DATA.
	OnMessage func(size int64, tls bool, at time.Time)
	// Timeout bounds the wait for each command and for each body
	// (a stuck client does not hold a goroutine for ever).
	Timeout time.Duration
}

// fastServer is a running -fast listener.
type fastServer struct {
	opt fastOptions
	ln  net.Listener
	seq *atomic.Int64 // queue IDs, shared by the listeners of one sink
	wg  sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open sessions, for Close
	closed bool
}

// startFast listens on addr and serves; seq numbers the queue IDs in the
// replies (one counter for every listener of the process, as go-smtp's
// mode has one per Sink).
func startFast(addr string, opt fastOptions, seq *atomic.Int64) (*fastServer, error) {
	if opt.Implicit && opt.TLS == nil {
		return nil, errors.New("benchsink: implicit TLS needs a certificate")
	}
	if opt.Hostname == "" {
		opt.Hostname = "benchsink.localhost"
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Minute
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("benchsink: listen %s: %w", addr, err)
	}
	s := &fastServer{opt: opt, ln: ln, seq: seq, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is where it listens.
func (s *fastServer) Addr() string { return s.ln.Addr().String() }

// Close stops listening, drops every open session (a body cut short is
// not counted) and waits until their goroutines have ended, so counters
// read after it are final.
func (s *fastServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *fastServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(nc)
			_ = nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

// fastBufSize is the read buffer per session: a body is scanned in slices
// of up to this much (a plaintext socket read fills it; TLS hands on one
// record, at most 16 KiB, per read).
const fastBufSize = 128 << 10

// session runs one SMTP session until QUIT, an error or the client leaving.
func (s *fastServer) session(nc net.Conn) {
	conn, isTLS := nc, false
	if s.opt.Implicit {
		tc, err := s.handshake(nc)
		if err != nil {
			return
		}
		conn, isTLS = tc, true
	}
	br := bufio.NewReaderSize(conn, fastBufSize)
	bw := bufio.NewWriterSize(conn, 4<<10)
	reply := func(line string) { bw.WriteString(line); bw.WriteString("\r\n") }
	var greeted, inMail, haveRcpt bool
	reply("220 " + s.opt.Hostname + " ESMTP Service Ready")
	for {
		// With PIPELINING a client sends a group of commands at once:
		// their replies go out together, when nothing more is waiting.
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(s.opt.Timeout))
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			reply("500 5.4.0 Too long line, closing connection")
			_ = bw.Flush()
			return
		}
		if err != nil {
			return
		}
		line := strings.TrimRight(string(raw), "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			if arg == "" {
				reply("501 5.5.2 Domain/address argument required for " + strings.ToUpper(verb))
				break
			}
			greeted, inMail, haveRcpt = true, false, false
			if strings.EqualFold(verb, "HELO") {
				reply("250 2.0.0 Hello " + arg)
				break
			}
			reply("250-Hello " + arg)
			reply("250-PIPELINING")
			reply("250-ENHANCEDSTATUSCODES")
			reply("250-8BITMIME")
			if s.opt.TLS != nil && !isTLS {
				reply("250-STARTTLS")
			}
			reply("250 SIZE")
		case "STARTTLS":
			if isTLS || s.opt.TLS == nil {
				reply("502 5.5.1 Already running in TLS")
				break
			}
			reply("220 2.0.0 Ready to start TLS")
			if bw.Flush() != nil {
				return
			}
			tc, err := s.handshake(conn)
			if err != nil {
				return
			}
			// Whatever the client sent after STARTTLS in plaintext is
			// dropped with the old buffer: it must not count as said
			// under TLS. The client greets again.
			conn, isTLS = tc, true
			br.Reset(conn)
			bw.Reset(conn)
			greeted, inMail, haveRcpt = false, false, false
		case "MAIL":
			from, ok := cutPrefixFold(arg, "FROM:")
			switch {
			case !greeted:
				reply("502 5.5.1 Please introduce yourself first.")
			case inMail:
				reply("502 5.5.1 Nested MAIL command")
			case !ok:
				reply("501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>")
			case hasParam(from, "SMTPUTF8"):
				// Not advertised, as in the go-smtp mode.
				reply("504 5.5.4 SMTPUTF8 is not implemented")
			default:
				inMail = true
				reply("250 2.0.0 Roger, accepting mail from " + pathOf(from))
			}
		case "RCPT":
			to, ok := cutPrefixFold(arg, "TO:")
			switch {
			case !inMail:
				reply("502 5.5.1 Missing MAIL FROM command.")
			case !ok:
				reply("501 5.5.2 Was expecting RCPT arg syntax of TO:<address>")
			default:
				haveRcpt = true
				reply("250 2.0.0 I'll make sure " + pathOf(to) + " gets this")
			}
		case "DATA":
			if !inMail || !haveRcpt {
				reply("502 5.5.1 Missing RCPT TO command.")
				break
			}
			reply("354 Go ahead. End your data with <CR><LF>.<CR><LF>")
			if bw.Flush() != nil {
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(s.opt.Timeout))
			n, err := bodyLen(br)
			if err != nil {
				return // the client left mid-body: nothing arrived
			}
			if s.opt.OnMessage != nil {
				s.opt.OnMessage(n, isTLS, time.Now())
			}
			inMail, haveRcpt = false, false
			reply(fmt.Sprintf("250 2.0.0 OK: queued as S%06d", s.seq.Add(1)))
		case "RSET":
			inMail, haveRcpt = false, false
			reply("250 2.0.0 Session reset")
		case "NOOP":
			reply("250 2.0.0 I have successfully done nothing")
		case "VRFY":
			reply("252 2.5.0 Cannot VRFY user, but will accept message")
		case "QUIT":
			reply("221 2.0.0 Bye")
			_ = bw.Flush()
			return
		default:
			reply("500 5.5.2 Syntax error, " + strings.ToUpper(verb) + " command unrecognized")
		}
	}
}

func (s *fastServer) handshake(c net.Conn) (*tls.Conn, error) {
	tc := tls.Server(c, s.opt.TLS)
	_ = c.SetDeadline(time.Now().Add(s.opt.Timeout))
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return tc, nil
}

// cutPrefixFold is strings.CutPrefix ignoring case, then trimmed.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(s[len(prefix):]), true
}

// pathOf is the <path> of a MAIL or RCPT argument, for the reply.
func pathOf(arg string) string {
	p, _, _ := strings.Cut(arg, " ")
	return p
}

// hasParam reports whether a MAIL argument carries the parameter name
// (alone or as name=value).
func hasParam(arg, name string) bool {
	f := strings.Fields(arg)
	for _, p := range f[min(1, len(f)):] {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

var lfDot = []byte("\n.")

// bodyLen reads a DATA body from br up to and including its end marker
// and returns its length as go-smtp's DATA reader (third_party/go-smtp,
// data.go) hands it to a backend: a line begins after a run of CRs then LF
// (or at the start); a dot that begins a line is dropped; a line that is a
// dot, a run of CRs and LF ends the body (the CRs and LF before it are
// body). A bare LF neither begins a line nor ends the body. The bytes are
// looked at where they lie in bufio's buffer: a body line costs one step
// of bytes.Index, nothing is copied. An error (the client left, the
// deadline passed) means the body did not arrive whole.
func bodyLen(br *bufio.Reader) (int64, error) {
	const (
		lineStart = iota // after CR+ LF, or at the start of the body
		dot              // a dot began the line (dropped)
		dotCRs           // the dot was followed by CRs: the end unless not LF next
		inLine
	)
	var n int64
	state := lineStart
	lastCR := false // inLine: the byte before the unread ones was CR
	held := 0       // dotCRs: the CRs, body bytes unless LF follows them
	for {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		}
		buf, _ := br.Peek(br.Buffered())
		i := 0
		for i < len(buf) {
			switch state {
			case lineStart:
				if buf[i] == '.' {
					i++
					state = dot
				} else {
					state, lastCR = inLine, false
				}
			case dot:
				if buf[i] == '\r' {
					i++
					state, held = dotCRs, 1
				} else {
					state, lastCR = inLine, false
				}
			case dotCRs:
				switch buf[i] {
				case '\r':
					i++
					held++
				case '\n':
					_, _ = br.Discard(i + 1)
					return n, nil
				default:
					n += int64(held)
					state, lastCR, held = inLine, true, 0
				}
			case inLine:
				// Only an LF then a dot can change anything: find the
				// next one; everything before it is body.
				j := bytes.Index(buf[i:], lfDot)
				if j < 0 {
					end := len(buf)
					n += int64(end - i)
					if buf[end-1] == '\n' {
						// The dot may come in the next read.
						if (end-1 > i && buf[end-2] == '\r') || (end-1 == i && lastCR) {
							state = lineStart
						}
						lastCR = false
					} else {
						lastCR = buf[end-1] == '\r'
					}
					i = end
					break
				}
				lf := i + j
				crlf := (lf > i && buf[lf-1] == '\r') || (lf == i && lastCR)
				n += int64(lf + 1 - i)
				i, lastCR = lf+1, false
				if crlf {
					state = lineStart
				} // else the dot is body, in the same line
			}
		}
		_, _ = br.Discard(i)
	}
}
