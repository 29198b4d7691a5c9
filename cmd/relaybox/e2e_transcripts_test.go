package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"relaybox/internal/smtptest"
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
		tr := smtptest.Load(t, f)
		queued, own := 0, false
		for _, setting := range tr.Settings {
			key, val, _ := strings.Cut(setting, " ")
			switch key {
			case "queued":
				queued, _ = strconv.Atoi(val)
			case "body-contains", "crlf-only", "body-lacks":
			default:
				own = true // needs settings of its own
			}
		}
		if own {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { smtptest.Play(t, addr, tr.Dialog) })
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
