package smtp_test

// relaybox: the server options the patch adds (RELAYBOX.md, section 3).

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func relayboxReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var all []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a reply: %v (so far %q)", err, all)
		}
		all = append(all, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

func relayboxDial(t *testing.T, s *smtp.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	relayboxReply(t, r) // greeting
	return c, r
}

func TestRelayboxMaxDataLineLength(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		limit int
		want  string
	}{
		{0, "5"}, // MaxLineLength (2000) applies to the body too
		{-1, "250 "},
		{6000, "250 "},
		{4000, "5"},
	} {
		be := new(backend)
		s := smtp.NewServer(be)
		s.Domain = "localhost"
		s.MaxDataLineLength = tc.limit
		c, r := relayboxDial(t, s)
		for _, cmd := range []string{"EHLO localhost", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>", "DATA"} {
			io.WriteString(c, cmd+"\r\n")
			relayboxReply(t, r)
		}
		io.WriteString(c, "Subject: long\r\n\r\n"+long+"\r\n.\r\n")
		if got := relayboxReply(t, r); !strings.HasPrefix(got, tc.want) {
			t.Errorf("limit %d: reply to a 5000-octet body line %q, want %q", tc.limit, got, tc.want)
			continue
		}
		if tc.want != "250 " {
			continue
		}
		// The command line limit applies again after the body.
		io.WriteString(c, "NOOP "+strings.Repeat("y", 3000)+"\r\n")
		if got := relayboxReply(t, r); !strings.HasPrefix(got, "500 5.4.0") {
			t.Errorf("limit %d: a 3000-octet command line after DATA got %q, want 500 5.4.0", tc.limit, got)
		}
		if msgs := append(be.messages, be.anonmsgs...); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), long+"\r\n") {
			t.Errorf("limit %d: the long line was not delivered whole", tc.limit)
		}
	}
}

func TestRelayboxDisable8BITMIME(t *testing.T) {
	for _, disable := range []bool{false, true} {
		s := smtp.NewServer(new(backend))
		s.Domain = "localhost"
		s.Disable8BITMIME = disable
		c, r := relayboxDial(t, s)
		io.WriteString(c, "EHLO localhost\r\n")
		if got := relayboxReply(t, r); strings.Contains(got, "8BITMIME") == disable {
			t.Errorf("Disable8BITMIME=%v: EHLO reply %q", disable, got)
		}
	}
}

// extendedSession records Conn.Extended at MAIL.
type extendedSession struct {
	c   *smtp.Conn
	got *[]bool
}

func (s *extendedSession) Mail(string, *smtp.MailOptions) error {
	*s.got = append(*s.got, s.c.Extended())
	return nil
}
func (s *extendedSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *extendedSession) Data(io.Reader) error                 { return nil }
func (s *extendedSession) Reset()                               {}
func (s *extendedSession) Logout() error                        { return nil }

func TestRelayboxConnExtended(t *testing.T) {
	var got []bool
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &extendedSession{c: c, got: &got}, nil
	}))
	s.Domain = "localhost"
	c, r := relayboxDial(t, s)
	for _, cmd := range []string{"HELO a", "MAIL FROM:<a@example.org>", "EHLO a", "MAIL FROM:<a@example.org>", "HELO a", "MAIL FROM:<a@example.org>", "QUIT"} {
		io.WriteString(c, cmd+"\r\n")
		relayboxReply(t, r)
	}
	if want := []bool{false, true, false}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Extended at each MAIL = %v, want %v", got, want)
	}
}
