package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"relaybox/internal/spool"
)

// The device and attack transcripts in testdata/transcripts, played against
// the real binary (the smtpd tests play them in process). Transcripts that
// need settings of their own (limits, devices, rewrites) stay in process;
// the rest run here: LF-only sessions, bare LF bodies, no or empty HELO,
// odd MAIL FROM forms, the TLS probe, every smuggling sequence, relay
// attempts. At the end the spool holds exactly the messages they expect,
// with CRLF-only bodies.
func TestE2ETranscriptsAgainstBinary(t *testing.T) {
	files, err := filepath.Glob("../../testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(filepath.Join(dir, "data"), addr)+`[duplicates]
window = "0"
`)
	p := startRelay(t, cfg, addr)
	played, wantQueued := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dialog []string
		queued, own := 0, false
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(l, "= queued "):
				queued, _ = strconv.Atoi(strings.TrimPrefix(l, "= queued "))
			case strings.HasPrefix(l, "= body-contains"), strings.HasPrefix(l, "= crlf-only"), strings.HasPrefix(l, "= body-lacks"):
			case strings.HasPrefix(l, "= "):
				own = true // needs settings of its own
			case len(l) > 2 && l[1] == ':':
				dialog = append(dialog, l)
			}
		}
		if own {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { playAgainst(t, addr, dialog) })
		played++
		wantQueued += queued
	}
	// Let the last sessions' commits land, then stop cleanly and count.
	time.Sleep(300 * time.Millisecond)
	p.stop()
	sp, err := spool.Open(filepath.Join(dir, "data", "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs, err := sp.List(spool.StateQueued)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("played %d transcripts against the binary; %d messages queued", played, len(msgs))
	if played < 20 {
		t.Errorf("only %d transcripts played", played)
	}
	if len(msgs) != wantQueued {
		t.Errorf("spool holds %d messages, the transcripts expect %d", len(msgs), wantQueued)
	}
	for _, m := range msgs {
		body := spoolBody(t, sp, m.ID)
		for i := 0; i < len(body); i++ {
			if (body[i] == '\r' && (i+1 == len(body) || body[i+1] != '\n')) || (body[i] == '\n' && (i == 0 || body[i-1] != '\r')) {
				t.Errorf("message %s has a bare CR or LF at %d", m.ID, i)
				break
			}
		}
	}
}

// playAgainst runs one transcript dialog (C: line, R: raw Go string, S:
// reply prefix, H: reply contains, N: reply lacks, X: cut) on a connection.
func playAgainst(t *testing.T, addr string, dialog []string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(conn)
	last := ""
	for _, l := range dialog {
		kind, arg := l[0], strings.TrimPrefix(l[2:], " ")
		switch kind {
		case 'C':
			_, err = io.WriteString(conn, arg+"\r\n")
		case 'R':
			raw, uerr := strconv.Unquote(arg)
			if uerr != nil {
				t.Fatalf("line %q: %v", l, uerr)
			}
			_, err = io.WriteString(conn, raw)
		case 'S':
			last, err = readSMTPReply(r)
			if err == nil && !strings.HasPrefix(last[strings.LastIndex(last, "\n")+1:], arg) {
				t.Fatalf("expected reply %q, got %q", arg, last)
			}
		case 'H':
			if !strings.Contains(last, arg) {
				t.Fatalf("expected the reply to contain %q, got %q", arg, last)
			}
		case 'N':
			if strings.Contains(last, arg) {
				t.Fatalf("reply %q should not contain %q", last, arg)
			}
		case 'X':
			conn.Close()
		}
		if err != nil {
			t.Fatalf("at %q: %v", l, err)
		}
	}
}

func readSMTPReply(r *bufio.Reader) (string, error) {
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
