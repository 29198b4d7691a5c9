package deliver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"relaybox/internal/text"
)

// Protocol helpers shared by the session code in client.go: the LOGIN
// mechanism, EHLO extension lists, reply mapping and the body writer.

// loginClient is the LOGIN mechanism. go-sasl's version sends the user name
// unasked and insists on the exact challenge "Password:", which some relays
// word differently; this one answers the prompts it is given.
type loginClient struct {
	user, pass string
	n          int
}

func (l *loginClient) Start() (string, []byte, error) { return sasl.Login, nil, nil }

func (l *loginClient) Next(challenge []byte) ([]byte, error) {
	l.n++
	p := strings.ToLower(string(challenge))
	switch {
	case strings.Contains(p, "user"):
		return []byte(l.user), nil
	case strings.Contains(p, "pass"):
		return []byte(l.pass), nil
	case l.n == 1:
		return []byte(l.user), nil
	case l.n == 2:
		return []byte(l.pass), nil
	}
	return nil, errors.New("deliver: unexpected AUTH LOGIN prompt")
}

// greetedConn replays a stand-in greeting, then reads the real session.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func parseExtensions(msg string) map[string]string {
	ext := map[string]string{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] { // the first line is the server's name
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext
}

// joinExtensions lists, for Check, the extensions a technician cares
// about; has looks one up (go-smtp's Client.Extension has this shape).
func joinExtensions(has func(name string) (bool, string)) string {
	var parts []string
	for _, k := range []string{"STARTTLS", "AUTH", "SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "CHUNKING"} {
		if ok, v := has(k); ok {
			parts = append(parts, strings.TrimSpace(k+" "+v))
		}
	}
	if len(parts) == 0 {
		return "no extensions of interest"
	}
	return strings.Join(parts, ", ")
}

// missingExtensions names what Send will refuse for lack of an extension,
// so upstream-check tells the technician before a message fails.
func missingExtensions(has func(name string) (bool, string)) string {
	var b strings.Builder
	if ok, _ := has("8BITMIME"); !ok {
		b.WriteString("; no 8BITMIME: messages with 8-bit text will fail (5.6.3)")
	}
	if ok, _ := has("SMTPUTF8"); !ok {
		b.WriteString("; no SMTPUTF8: UTF-8 addresses will fail (5.6.7)")
	}
	return b.String()
}

func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

// replyError maps an SMTP reply to an Error. Permanent only for 5xx.
func replyError(addr, op string, se *smtp.SMTPError) *Error {
	enh := ""
	if ec := se.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		enh = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return &Error{Upstream: addr, Op: op, Code: se.Code, Enhanced: enh, Text: text.OneLine(se.Message),
		Permanent: se.Code >= 500 && se.Code < 600, Err: se}
}

// fromProto converts a textproto reply error the way go-smtp does for its
// own commands, so both paths report enhanced codes alike.
func fromProto(pe *textproto.Error) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
	first, rest, ok := strings.Cut(pe.Msg, " ")
	parts := strings.Split(first, ".")
	if !ok || len(parts) != 3 {
		return se
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return se
		}
		se.EnhancedCode[i] = n
	}
	se.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	return se
}

// deadlineWriter writes to the connection with a fresh deadline per write
// and remembers a failure, so Send can tell a network problem from a spool
// one whichever side of io.Copy drives the loop. With batch set (the
// socket under nc's TLS), each write's records leave in one socket write.
type deadlineWriter struct {
	nc    net.Conn
	batch *batchConn
	d     time.Duration
	err   error
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if err := d.writeParts(nil, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeParts implements partsWriter: a and b leave in one socket write
// when batching, else in two.
func (d *deadlineWriter) writeParts(a, b []byte) error {
	d.nc.SetWriteDeadline(time.Now().Add(d.d))
	if d.batch != nil {
		d.batch.begin()
	}
	var err error
	if len(a) > 0 {
		_, err = d.nc.Write(a)
	}
	if err == nil {
		_, err = d.nc.Write(b)
	}
	if d.batch != nil {
		// An error here means what tls.Conn took never reached the socket.
		if berr := d.batch.end(); err == nil {
			err = berr
		}
	}
	if err != nil {
		d.err = err
	}
	return err
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] > 127 {
				return false
			}
		}
	}
	return true
}
