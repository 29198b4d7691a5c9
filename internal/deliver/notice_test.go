package deliver

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"relaybox/internal/spool"
)

func TestSubjectOf(t *testing.T) {
	long := "Subject: " + strings.Repeat("é", 150) + "\r\n"
	cases := []struct{ hdr, want string }{
		{"From: a@b\r\nSubject: Scan 1\r\n", "Scan 1"},
		{"subject:   lower case  \r\n", "lower case"},
		{"Subject: folded\r\n  across\r\n\tlines\r\nTo: x\r\n", "folded across lines"},
		{"Subject: first\r\nSubject: second\r\n", "first"},
		{"From: a@b\r\n", ""},
		{"From: a@b\r\n\r\nSubject: in the body\r\n", ""},
		{"Subject: =?utf-8?q?caf=C3=A9?=\n", "=?utf-8?q?caf=C3=A9?="},
		{"", ""},
	}
	for _, tc := range cases {
		if got := subjectOf([]byte(tc.hdr)); got != tc.want {
			t.Errorf("subjectOf(%q) = %q, want %q", tc.hdr, got, tc.want)
		}
	}
	got := subjectOf([]byte(long))
	if len(got) > 200 || !utf8.ValidString(got) || !strings.HasPrefix(got, "ééé") {
		t.Errorf("long subject cut badly: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestBuildNotice(t *testing.T) {
	now := time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC)
	m := &spool.Message{
		ID: "Q1", From: "scanner@lab.example.edu", Received: now.Add(-120 * time.Hour),
		Recipients: []spool.Recipient{
			{Address: "alice@example.edu", State: spool.RcptDelivered},
			{Address: "bob@example.edu", State: spool.RcptFailed, Outcome: spool.Outcome{Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "no such\r\nuser"}},
		},
	}
	hdr := []byte("Received: from printer\r\n\tby relaybox\r\nSubject: Scan\r\n\r\nbody\r\n")
	n := string(buildNotice("relaybox.test", "postmaster@example.edu", m, "550 5.1.1 no such user", hdr, now))

	if strings.Contains(strings.ReplaceAll(n, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(n, "\r\n", ""), "\r") {
		t.Fatalf("notice has a bare CR or LF:\n%q", n)
	}
	head, text, ok := strings.Cut(n, "\r\n\r\n")
	if !ok {
		t.Fatal("notice has no header/body separator")
	}
	for _, want := range []string{
		"From: MAILER-DAEMON@relaybox.test", "To: <postmaster@example.edu>", "Subject: Undelivered mail: Scan",
		"Date: Sat, 07 Mar 2026 09:00:00 +0000", "Message-ID: <notice.Q1.", "Auto-Submitted: auto-generated",
	} {
		if !strings.Contains(head, want+"\r\n") && !strings.Contains(head, want) {
			t.Errorf("header lacks %q:\n%s", want, head)
		}
	}
	for _, want := range []string{
		"queued message Q1", "<bob@example.edu>: 550 5.1.1 no such user", "relaybox queue retry Q1",
		"Received: from printer\r\n\tby relaybox\r\nSubject: Scan\r\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "alice@example.edu") || strings.Contains(text, "body\r\n") {
		t.Errorf("text names a delivered recipient or quotes the body:\n%s", text)
	}

	// Without a readable header the notice still goes out, plainly titled.
	n = string(buildNotice("relaybox.test", "postmaster@example.edu", m, "", nil, now))
	if !strings.Contains(n, "Subject: Undelivered mail\r\n") || strings.Contains(n, "--- header") {
		t.Errorf("header-less notice:\n%s", n)
	}
	if !bytes.HasSuffix([]byte(n), []byte("\r\n")) {
		t.Error("notice does not end in CRLF")
	}
}
