package smtp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// relaybox's upstream client (internal/deliver) reads the greeting and runs
// EHLO, STARTTLS and the TLS handshake itself, then hands this client the
// session behind a stand-in greeting. These tests pin what that relies on
// (RELAYBOX.md, "What relaybox assumes about go-smtp", items 13 to 16).

// scriptConn is a net.Conn that plays the server's bytes and records the
// client's.
type scriptConn struct {
	r     io.Reader
	wrote bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)        { return c.wrote.Write(p) }
func (c *scriptConn) Close() error                       { return nil }
func (c *scriptConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

const standIn = "220 greeting already read\r\n"

// Items 13 and 14: NewClient sends nothing; the first command reads one
// 220 reply as the greeting (the stand-in), and Hello then sends EHLO with
// the given name and takes the extensions from its reply. It never sends
// STARTTLS of its own accord, so the EHLO deliver ran before TLS is the
// only one in the clear.
func TestRelayboxStandInGreeting(t *testing.T) {
	c := &scriptConn{r: strings.NewReader(standIn +
		"250-relay.campus.test\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")}
	cl := NewClient(c)
	if c.wrote.Len() != 0 {
		t.Fatalf("item 13: NewClient wrote %q before the first command", c.wrote.String())
	}
	if err := cl.Hello("relaybox.campus.test"); err != nil {
		t.Fatalf("item 13: Hello after a stand-in greeting: %v", err)
	}
	if got := c.wrote.String(); got != "EHLO relaybox.campus.test\r\n" {
		t.Errorf("item 14: the client wrote %q; want the EHLO alone", got)
	}
	if ok, mechs := cl.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN XOAUTH2" {
		t.Errorf("item 14: AUTH extension %v %q", ok, mechs)
	}
	if ok, size := cl.Extension("SIZE"); !ok || size != "1000" {
		t.Errorf("item 14: SIZE extension %v %q", ok, size)
	}
}

// Item 15: an upstream's refusal reaches the caller as *SMTPError with the
// code, enhanced code and text (deliver's typed Error is built from them).
func TestRelayboxUpstreamRefusalIsSMTPError(t *testing.T) {
	c := &scriptConn{r: strings.NewReader(standIn + "250 relay\r\n550 5.7.1 Sender not allowed\r\n")}
	cl := NewClient(c)
	err := cl.Mail("scanner@campus.test", nil)
	var se *SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (EnhancedCode{5, 7, 1}) || se.Message != "Sender not allowed" {
		t.Fatalf("item 15: Mail refused: %#v (%v)", se, err)
	}
}

// xoauth2Like returns a fixed initial response, the size of a Microsoft
// 365 access token wrapped for XOAUTH2.
type xoauth2Like struct{ ir []byte }

func (a xoauth2Like) Start() (string, []byte, error) { return "XOAUTH2", a.ir, nil }
func (a xoauth2Like) Next(c []byte) ([]byte, error)  { return []byte{}, nil }

// Item 16 (from v0.26.0): an initial response that would make the AUTH
// line longer than 512 octets is sent as the answer to an empty 334
// (RFC 4954 section 4); a short one stays on the AUTH line.
func TestRelayboxLongInitialResponseWaitsFor334(t *testing.T) {
	long := bytes.Repeat([]byte("t"), 1500)
	c := &scriptConn{r: strings.NewReader(standIn + "250-relay\r\n250 AUTH XOAUTH2\r\n334 \r\n235 2.7.0 Accepted\r\n")}
	cl := NewClient(c)
	if err := cl.Auth(xoauth2Like{long}); err != nil {
		t.Fatalf("item 16: %v", err)
	}
	lines := strings.Split(c.wrote.String(), "\r\n")
	if len(lines) < 3 || lines[1] != "AUTH XOAUTH2" || len(lines[2]) != 2000 {
		t.Errorf("item 16: wrote %q...; want \"AUTH XOAUTH2\" then the 2000-octet response on its own line", c.wrote.String()[:60])
	}

	c = &scriptConn{r: strings.NewReader(standIn + "250-relay\r\n250 AUTH XOAUTH2\r\n235 2.7.0 Accepted\r\n")}
	cl = NewClient(c)
	if err := cl.Auth(xoauth2Like{[]byte("short")}); err != nil {
		t.Fatalf("item 16: %v", err)
	}
	if !strings.Contains(c.wrote.String(), "AUTH XOAUTH2 c2hvcnQ=\r\n") {
		t.Errorf("item 16: a short initial response left the AUTH line: %q", c.wrote.String())
	}
}
