package smtpd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// A body line far longer than SMTP's 1,000 octets (here 256 KiB, four
// times the 64 KiB devices are promised) is accepted and stored whole; the
// size limit, not a line limit, is what refuses a message, with a
// permanent reply that names it.
func TestLongBodyLines(t *testing.T) {
	cfg := defaultTranscriptConfig()
	cfg.maxSize = 1 << 20
	sp, srv, addr := startTestServer(t, cfg, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	say := func(line, want string) {
		t.Helper()
		if line != "" {
			if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
				t.Fatal(err)
			}
		}
		got, err := readReply(r)
		if err != nil || !strings.HasPrefix(got, want) {
			t.Fatalf("after %.40q: reply %q, %v; want %s", line, got, err, want)
		}
	}
	long := strings.Repeat("abcdefghij", 256<<10/10)
	say("", "220")
	say("EHLO lab", "250")
	say("MAIL FROM:<lab@campus.test>", "250")
	say("RCPT TO:<alice@campus.test>", "250")
	say("DATA", "354")
	say("Subject: long\r\n\r\n"+long+"\r\n.", "250")
	// Over max_message_size in one line: 552 naming the limit, and the
	// session goes on.
	say("MAIL FROM:<lab@campus.test>", "250")
	say("RCPT TO:<alice@campus.test>", "250")
	say("DATA", "354")
	say("Subject: too long\r\n\r\n"+strings.Repeat(long, 5)+"\r\n.", "552 5.3.4 Message exceeds this relay's size limit of 1048576 bytes (listen.max_message_size)")
	say("QUIT", "221")
	waitIdle(t, srv)
	msgs, err := sp.List(spool.StateQueued)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	if body := readBody(t, sp, msgs[0].ID); !strings.Contains(body, "\r\n\r\n"+long+"\r\n") {
		t.Fatalf("stored body lacks the long line whole (%d bytes stored)", len(body))
	}
}
