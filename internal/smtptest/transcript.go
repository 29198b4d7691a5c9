// Package smtptest plays SMTP transcripts, the readable dialogs kept in
// testdata/transcripts, against a listener: the smtpd tests play them in
// process, the end-to-end tests against the real binary. It is used by
// tests only.
//
// A transcript is lines of text:
//
//	# comment
//	= key value               (a setting; the caller interprets these)
//	C: EHLO printer           (client line, sent with CRLF)
//	R: "raw\nbytes"           (client bytes as a Go string, sent as they are)
//	S: 250                    (the reply's last line must start with this)
//	H: SIZE 100               (the last reply, all its lines, contains this)
//	N: AUTH                   (the last reply does not contain this)
//	E: closed                 (the server has closed the connection)
//	X: cut                    (the client closes the connection)
package smtptest

import (
	"bufio"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Transcript is a parsed transcript file.
type Transcript struct {
	Settings []string // "key value", without the "= "
	Dialog   []string // the C/R/S/H/N/E/X lines
}

// Load reads and parses a transcript file.
func Load(t testing.TB, path string) Transcript {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr Transcript
	for _, l := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "= "):
			tr.Settings = append(tr.Settings, strings.TrimPrefix(l, "= "))
		case len(l) >= 2 && l[1] == ':': // "C:" alone is an empty line, the header/body break
			tr.Dialog = append(tr.Dialog, l)
		}
	}
	return tr
}

// Play dials addr and runs the dialog, failing t at the first difference.
func Play(t testing.TB, addr string, dialog []string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	last := ""
	for _, l := range dialog {
		kind, arg := l[0], strings.TrimPrefix(l[2:], " ")
		switch kind {
		case 'C':
			if _, err := io.WriteString(conn, arg+"\r\n"); err != nil {
				t.Fatalf("%q: write: %v", l, err)
			}
		case 'R':
			raw, err := strconv.Unquote(arg)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if _, err := io.WriteString(conn, raw); err != nil {
				t.Fatalf("%q: write: %v", l, err)
			}
		case 'S':
			all, err := ReadReply(r)
			if err != nil {
				t.Fatalf("waiting for %q: %v (got %q)", arg, err, all)
			}
			last = all
			if got := all[strings.LastIndex(all, "\n")+1:]; !strings.HasPrefix(got, arg) {
				t.Fatalf("expected reply %q, got %q", arg, all)
			}
		case 'H':
			if !strings.Contains(last, arg) {
				t.Fatalf("expected the reply to contain %q, got %q", arg, last)
			}
		case 'N':
			if strings.Contains(last, arg) {
				t.Fatalf("expected the reply not to contain %q, got %q", arg, last)
			}
		case 'E':
			if b, err := r.ReadByte(); err == nil {
				t.Fatalf("expected the server to close the connection, read %q", b)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("expected the server to close the connection, it is still open")
			}
		case 'X':
			conn.Close()
		default:
			t.Fatalf("bad transcript line %q", l)
		}
	}
}

// ReadReply reads one (possibly multi-line) reply, lines joined with "\n".
func ReadReply(r *bufio.Reader) (string, error) {
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return strings.Join(append(lines, line), "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}
