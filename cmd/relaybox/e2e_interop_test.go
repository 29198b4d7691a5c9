package main

// Interop with real clients and the upstream extensions they depend on:
// BusyBox sendmail's CR CR LF, long body lines from curl, SMTPUTF8 from
// python3's smtplib, and an upstream that advertises a small SIZE and no
// 8BITMIME.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaybox/internal/sink"
	"relaybox/internal/smtptest"
)

// BusyBox sendmail fed a file with CRLF line endings sends every line as
// "...\r\r\n" and ends with ".\r\n": the message must arrive with its
// header block whole. Debian's busybox has no sendmail applet, so the
// dialog is replayed byte for byte as BusyBox 1.35 sends it; a busybox
// with the applet, where installed, is run as well.
func TestE2EBusyBoxSendmailCRCRLF(t *testing.T) {
	dir := t.TempDir()
	fw := startForwarding(t, dir, sink.Options{})
	up, addr := fw.up, fw.addr
	msg := "From: sensor@campus.test\r\nTo: alice@campus.test\r\nSubject: freezer alarm\r\n" +
		"Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bb-1@campus.test>\r\n\r\nTemperature -12 C\r\n.door open\r\n"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// BusyBox reads the file a line at a time, strips the LF, dot-stuffs,
	// and sends the line with "\r\n": a CRLF file gives CR CR LF.
	var body strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(msg, "\n"), "\n") {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, ".") {
			line = "." + line
		}
		body.WriteString(line + "\r\n")
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"EHLO sensor\r\n", "250"}, {"MAIL FROM:<sensor@campus.test>\r\n", "250"},
		{"RCPT TO:<alice@campus.test>\r\n", "250"}, {"DATA\r\n", "354"},
		{body.String() + ".\r\n", "250"}, {"QUIT\r\n", "221"},
	} {
		if _, err := io.WriteString(c, step.send); err != nil {
			t.Fatal(err)
		}
		got, err := smtptest.ReadReply(r)
		if err != nil || !strings.HasPrefix(got, step.want) {
			t.Fatalf("after %.60q: %q, %v; want %s", step.send, got, err, step.want)
		}
	}
	want := 1
	if out, err := exec.Command("busybox", "sendmail", "--help").CombinedOutput(); err == nil || strings.Contains(string(out), "sendmail") && !strings.Contains(string(out), "applet not found") {
		cmd := exec.CommandContext(ctx, "busybox", "sendmail", "-S", addr, "-f", "sensor@campus.test", "alice@campus.test")
		cmd.Stdin = strings.NewReader(msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("busybox sendmail: %v\n%s", err, out)
		}
		want = 2
	} else {
		t.Log("busybox sendmail not installed here; replayed its bytes only")
	}
	got, err := up.sink.Wait(ctx, want)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	for _, m := range got {
		if b := stripReceived(t, m.Body); string(b) != msg {
			t.Errorf("body changed on the way:\n got %q\nwant %q", b, msg)
		}
	}
}

// A 5,000-character body line from curl is accepted (once 451 then 500)
// and reaches the upstream folded within 998 octets a line.
func TestE2ELongBodyLineFolded(t *testing.T) {
	dir := t.TempDir()
	fw := startForwarding(t, dir, sink.Options{})
	up, addr := fw.up, fw.addr
	long := strings.Repeat("0123456789", 500)
	orig := "Subject: long line\r\nMessage-ID: <long-1@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n" + long + "\r\nend\r\n"
	msg := writeFile(t, filepath.Join(dir, "m.eml"), orig)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "curl", "-sS", "--url", "smtp://"+addr,
		"--mail-from", "lab@campus.test", "--mail-rcpt", "alice@campus.test", "--upload-file", msg).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	got, err := up.sink.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	body := stripReceived(t, got[0].Body)
	for i, line := range bytes.Split(body, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d reached the upstream with %d octets", i, len(line))
		}
	}
	if unfolded := strings.ReplaceAll(string(body), "\r\n ", ""); unfolded != orig {
		t.Errorf("unfolded body differs:\n got %.200q\nwant %.200q", unfolded, orig)
	}
	// swaks, which exited 26 on the 451 before.
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Log("swaks not installed; sent with curl only")
		return
	}
	bodyFile := writeFile(t, filepath.Join(dir, "body.txt"), long+"\n")
	if out, err := exec.CommandContext(ctx, "swaks", "--server", addr, "--from", "lab@campus.test",
		"--to", "alice@campus.test", "--body", "@"+bodyFile).CombinedOutput(); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got, err = up.sink.Wait(ctx, 2)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	if !strings.Contains(strings.ReplaceAll(string(got[1].Body), "\r\n ", ""), long+"\r\n") {
		t.Errorf("swaks's long line did not arrive whole once unfolded")
	}
}

const pyUTF8 = `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = ("Subject: Gr\u00fc\u00dfe\r\nFrom: <j\u00fcrg@campus.test>\r\nTo: <\u00fc@campus.test>\r\n"
       "Message-ID: <utf8-1@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nHallo \u00fc\r\n").encode()
s = smtplib.SMTP(host, int(port), timeout=30)
s.sendmail("j\u00fcrg@campus.test", ["\u00fc@campus.test"], msg, mail_options=["SMTPUTF8"])
s.quit()
print("OK")
`

// python3's smtplib sends to ü@campus.test with SMTPUTF8; an upstream
// that offers SMTPUTF8 gets it as it is, one that does not makes the
// recipient fail permanently, never a downgrade.
func TestE2ESMTPUTF8(t *testing.T) {
	for _, offered := range []bool{true, false} {
		name := map[bool]string{true: "upstream offers SMTPUTF8", false: "upstream lacks SMTPUTF8"}[offered]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fw := startForwarding(t, dir, sink.Options{SMTPUTF8: offered})
			up, addr := fw.up, fw.addr
			p := fw.relay
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "python3", "-c", pyUTF8, addr).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK") {
				t.Fatalf("python3 smtplib: %v\n%s", err, out)
			}
			if !offered {
				waitLog(t, p, "event=failed", 1)
				if log := p.Log(); !strings.Contains(log, "5.6.7") || !strings.Contains(log, "SMTPUTF8") {
					t.Errorf("the failure does not name SMTPUTF8 (5.6.7):\n%s", log)
				}
				if n := len(up.sink.Messages()); n != 0 {
					t.Errorf("upstream got %d messages, want none", n)
				}
				return
			}
			got, err := up.sink.Wait(ctx, 1)
			if err != nil {
				t.Fatalf("upstream: %v", err)
			}
			if got[0].From != "j\u00fcrg@campus.test" || strings.Join(got[0].To, ",") != "\u00fc@campus.test" {
				t.Errorf("envelope: from %q to %q", got[0].From, got[0].To)
			}
			mustContain(t, string(got[0].Body), "Subject: Gr\u00fc\u00dfe\r\n", "with ESMTP id ")
		})
	}
}

// An upstream that advertises SIZE 20000 and no 8BITMIME: a bigger message
// fails permanently before it is uploaded, an 8-bit one fails with its
// reason, a small ASCII one goes.
func TestE2EUpstreamSizeAndEightBit(t *testing.T) {
	dir := t.TempDir()
	fw := startForwarding(t, dir, sink.Options{MaxSize: 20000, NoEightBitMIME: true})
	up, addr := fw.up, fw.addr
	p := fw.relay
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(name, body string) {
		t.Helper()
		f := writeFile(t, filepath.Join(dir, name), body)
		if out, err := exec.CommandContext(ctx, "curl", "-sS", "--url", "smtp://"+addr,
			"--mail-from", "lab@campus.test", "--mail-rcpt", "alice@campus.test", "--upload-file", f).CombinedOutput(); err != nil {
			t.Fatalf("curl %s: %v\n%s", name, err, out)
		}
	}
	send("big.eml", "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("b", 76)+"\r\n", 400))
	waitLog(t, p, "event=failed", 1)
	send("8bit.eml", "Subject: 8bit\r\n\r\nna\xc3\xafve\r\n")
	waitLog(t, p, "event=failed", 2)
	send("small.eml", "Subject: small\r\n\r\nok\r\n")
	got, err := up.sink.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	if len(got) != 1 || !bytes.Contains(got[0].Body, []byte("Subject: small")) {
		t.Fatalf("upstream got %d messages; want only the small one", len(got))
	}
	mustContain(t, p.Log(), "552 5.3.4", "accepts at most 20000", "554 5.6.3", "8BITMIME")
}
