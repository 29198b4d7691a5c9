package smtpd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func addHeaders(t *testing.T, in string, split int) string {
	t.Helper()
	var out bytes.Buffer
	h := newHeaderWriter(&out, func(hasID, hasDate bool) []byte {
		return fmt.Appendf(nil, "Received: x\r\n%s%s",
			map[bool]string{false: "Message-ID: <new>\r\n"}[hasID],
			map[bool]string{false: "Date: now\r\n"}[hasDate])
	})
	b := []byte(in)
	for len(b) > 0 {
		n := min(split, len(b))
		if _, err := h.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestHeaderWriter(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"complete header", "Message-ID: <a@b>\r\nDate: d\r\nSubject: s\r\n\r\nbody\r\n",
			"Received: x\r\nMessage-ID: <a@b>\r\nDate: d\r\nSubject: s\r\n\r\nbody\r\n"},
		{"missing both", "Subject: s\r\n\r\nbody\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nDate: now\r\nSubject: s\r\n\r\nbody\r\n"},
		{"case-insensitive names", "message-id: <a@b>\r\nDATE: d\r\n\r\nb\r\n",
			"Received: x\r\nmessage-id: <a@b>\r\nDATE: d\r\n\r\nb\r\n"},
		{"folded header", "Subject: a\r\n b\r\nDate: d\r\n\r\nx\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nSubject: a\r\n b\r\nDate: d\r\n\r\nx\r\n"},
		{"no header at all", "just a scan\r\nline two\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nDate: now\r\n\r\njust a scan\r\nline two\r\n"},
		{"header only", "Subject: s\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nDate: now\r\nSubject: s\r\n"},
		{"empty message", "", "Received: x\r\nMessage-ID: <new>\r\nDate: now\r\n\r\n"},
		{"body mentions Date: is not a header", "Subject: s\r\n\r\nDate: no\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nDate: now\r\nSubject: s\r\n\r\nDate: no\r\n"},
		{"X-Date is not Date", "X-Date: d\r\n\r\nb\r\n",
			"Received: x\r\nMessage-ID: <new>\r\nDate: now\r\nX-Date: d\r\n\r\nb\r\n"},
	}
	for _, c := range cases {
		for _, split := range []int{1, 5, 1 << 20} {
			if got := addHeaders(t, c.in, split); got != c.want {
				t.Errorf("%s (split %d):\n got %q\nwant %q", c.name, split, got, c.want)
			}
		}
	}
}

func TestHeaderWriterBoundsMemory(t *testing.T) {
	// A header block beyond maxHeaderBlock is passed on as it is: we stop
	// looking rather than hold it.
	long := "X-Long: " + strings.Repeat("a", maxHeaderBlock+10) + "\r\n"
	in := long + "Subject: s\r\n\r\nbody\r\n"
	got := addHeaders(t, in, 4096)
	if !strings.HasPrefix(got, "Received: x\r\n") || !strings.HasSuffix(got, in) {
		t.Fatalf("unexpected output prefix %q", got[:60])
	}
	if len(got) > len(in)+200 {
		t.Fatalf("output grew too much: %d vs %d", len(got), len(in))
	}
}

func TestReceivedProtocol(t *testing.T) {
	for _, tt := range []struct {
		ehlo, tls, auth bool
		want            string
	}{
		{false, false, false, "SMTP"},
		{true, false, false, "ESMTP"},
		{true, true, false, "ESMTPS"},
		{true, false, true, "ESMTPA"},
		{true, true, true, "ESMTPSA"},
		{false, false, true, "ESMTPA"}, // AUTH after HELO is still an extension
		{false, true, false, "ESMTPS"},
	} {
		if got := receivedProtocol(tt.ehlo, tt.tls, tt.auth); got != tt.want {
			t.Errorf("receivedProtocol(ehlo=%v, tls=%v, auth=%v) = %s, want %s", tt.ehlo, tt.tls, tt.auth, got, tt.want)
		}
	}
}

func TestHasHighOctet(t *testing.T) {
	for n := 0; n < 80; n++ {
		b := bytes.Repeat([]byte("a"), n)
		if hasHighOctet(b) {
			t.Fatalf("%d ASCII octets flagged", n)
		}
		for i := 0; i < n; i++ {
			b[i] = 0x80
			if !hasHighOctet(b) {
				t.Fatalf("octet %d of %d over 127 not found", i, n)
			}
			b[i] = 'a'
		}
	}
}
