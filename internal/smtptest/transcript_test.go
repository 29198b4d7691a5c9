package smtptest

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A bare "C:" is the empty line between a message's header and body; it
// must reach the server, or the body is sent as header.
func TestLoadKeepsEmptyClientLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.txt")
	text := "# comment\r\n= queued 1\r\nC: DATA\r\nS: 354\r\nC: Subject: x\r\nC:\r\nC: body\r\nC: .\r\nS: 250\r\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := Load(t, path)
	want := []string{"C: DATA", "S: 354", "C: Subject: x", "C:", "C: body", "C: .", "S: 250"}
	if !slices.Equal(tr.Dialog, want) || !slices.Equal(tr.Settings, []string{"queued 1"}) {
		t.Fatalf("dialog %q settings %q", tr.Dialog, tr.Settings)
	}

	// Played, it sends exactly these bytes.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var sb strings.Builder
		for _, reply := range []string{"354 go on\r\n", "250 ok\r\n"} {
			for {
				line, err := r.ReadString('\n')
				sb.WriteString(line)
				if err != nil || line == "DATA\r\n" || line == ".\r\n" {
					break
				}
			}
			c.Write([]byte(reply))
		}
		got <- sb.String()
	}()
	Play(t, l.Addr().String(), tr.Dialog)
	if s := <-got; s != "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n" {
		t.Fatalf("server read %q", s)
	}
}
