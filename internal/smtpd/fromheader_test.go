package smtpd

import (
	"strings"
	"testing"
)

func TestRewriteFrom(t *testing.T) {
	const to = "lab@campus.test"
	tests := []struct {
		name, block, want, old string
	}{
		{"bare localhost", "From: root@localhost\r\nSubject: x\r\n\r\n",
			"From: lab@campus.test\r\nSubject: x\r\n\r\n", "root@localhost"},
		{"display name kept", "Subject: x\r\nFrom: \"Copier 2nd floor\" <scanner@printer>\r\n\r\n",
			"Subject: x\r\nFrom: \"Copier 2nd floor\" <lab@campus.test>\r\n\r\n", "scanner@printer"},
		{"comment kept", "from: root@localhost (Cron Daemon)\r\n\r\n",
			"from: lab@campus.test (Cron Daemon)\r\n\r\n", "root@localhost"},
		{"no domain", "From: Scanner <scanner>\r\n\r\n", "From: Scanner <lab@campus.test>\r\n\r\n", "scanner"},
		{"folded field unfolded", "From: Scanner\r\n <scanner@printer>\r\nTo: a@b.test\r\n\r\n",
			"From: Scanner <lab@campus.test>\r\nTo: a@b.test\r\n\r\n", "scanner@printer"},
		{"localhost.localdomain, upper case", "FROM: Root <root@LOCALHOST.LOCALDOMAIN>\r\n\r\n",
			"FROM: Root <lab@campus.test>\r\n\r\n", "root@LOCALHOST.LOCALDOMAIN"},
		{"quoted name with <> and comma", "From: \"Lab, <2nd>\" <root@localhost>\r\n\r\n",
			"From: \"Lab, <2nd>\" <lab@campus.test>\r\n\r\n", "root@localhost"},
		{"only the first From", "From: a@localhost\r\nFrom: b@localhost\r\n\r\n",
			"From: lab@campus.test\r\nFrom: b@localhost\r\n\r\n", "a@localhost"},
		// Left alone:
		{"qualified", "From: Copier <copier@lab.campus.test>\r\n\r\n", "", ""},
		{"two mailboxes", "From: a@localhost, b@localhost\r\n\r\n", "", ""},
		{"group", "From: Lab: a@localhost;\r\n\r\n", "", ""},
		{"name without <>", "From: Copier root@localhost\r\n\r\n", "", ""},
		{"address literal", "From: root@[10.0.0.5]\r\n\r\n", "", ""},
		{"empty <>", "From: Copier <>\r\n\r\n", "", ""},
		{"unclosed comment", "From: root@localhost (oops\r\n\r\n", "", ""},
		{"no From", "Subject: x\r\n\r\n", "", ""},
		{"From-ish name", "From-Device: root@localhost\r\n\r\n", "", ""},
		{"unterminated last line", "From: root@localhost", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.block
			}
			got, old := rewriteFrom([]byte(tt.block), to)
			if string(got) != want || old != tt.old {
				t.Errorf("rewriteFrom(%q)\n got %q, old %q\nwant %q, old %q", tt.block, got, old, want, tt.old)
			}
		})
	}
}

// The header writer applies the rewrite to a complete block only: a block
// too long to hold passes unedited.
func TestHeaderWriterFromRewrite(t *testing.T) {
	prefix := func(bool, bool) []byte { return []byte("Received: x\r\n") }
	var out strings.Builder
	hw := newHeaderWriter(&out, prefix)
	hw.fromAddr = "lab@campus.test"
	if _, err := hw.Write([]byte("From: Scanner <scanner@printer>\r\nSubject: s\r\n\r\nFrom: root@localhost\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	want := "Received: x\r\nFrom: Scanner <lab@campus.test>\r\nSubject: s\r\n\r\nFrom: root@localhost\r\n"
	if out.String() != want || hw.fromOld != "scanner@printer" {
		t.Errorf("got %q (old %q), want %q: only the header's From changes", out.String(), hw.fromOld, want)
	}

	out.Reset()
	hw = newHeaderWriter(&out, prefix)
	hw.fromAddr = "lab@campus.test"
	long := "From: root@localhost\r\nX-Long: " + strings.Repeat("a", maxHeaderBlock) + "\r\n\r\nbody\r\n"
	if _, err := hw.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "Received: x\r\n"+long || hw.fromOld != "" {
		t.Errorf("an over-long header block was edited (old %q)", hw.fromOld)
	}
}
