package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"relaybox/internal/smtptest"
	"relaybox/internal/spool"
)

// BenchmarkReceive is the whole receive path of one message: a client on a
// loopback TCP connection sends MAIL, RCPT, DATA and a body of 66-byte CRLF
// lines to a real Server (deviceConn, go-smtp's DATA reader, the NUL and
// 8-bit checks, the CRLF normaliser, the header writer) whose store keeps
// nothing, so what it measures is receiving, not the spool. user-ns/op and
// sys-ns/op are the process's CPU time per message (client included: it
// writes the body).
// The duplicates variant has the duplicate check on, as by default (the
// benchmark configs switch it off): it hashes every body with SHA-256.
func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) { benchReceive(b, size, false) })
	}
	b.Run("1024KiB-duplicates", func(b *testing.B) { benchReceive(b, 1<<20, true) })
}

func benchReceive(b *testing.B, size int, dupes bool) {
	st := &nullStore{}
	cfg := defaultTranscriptConfig()
	cfg.maxSize = 64 << 20
	if dupes {
		cfg.maxRepeats, cfg.dupWindow = 5, 10*time.Minute
	}
	opt := cfg.options(b, st)
	srv, err := New(opt)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.smtp.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	expect := func(code string) {
		b.Helper()
		reply, err := smtptest.ReadReply(r)
		if err != nil || !strings.HasPrefix(reply, code) {
			b.Fatalf("reply %q (%v), want %s", reply, err, code)
		}
	}
	send := func(s []byte, code string) {
		b.Helper()
		if _, err := conn.Write(s); err != nil {
			b.Fatal(err)
		}
		expect(code)
	}
	expect("220")
	send([]byte("EHLO bench\r\n"), "250")
	body := benchBody(size)
	msg := append(body, ".\r\n"...)
	mail, rcpt, data := []byte("MAIL FROM:<scanner@campus.test>\r\n"), []byte("RCPT TO:<staff@campus.test>\r\n"), []byte("DATA\r\n")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		send(mail, "250")
		send(rcpt, "250")
		send(data, "354")
		send(msg, "250")
	}
	cpu.report(b)
	if st.last < int64(len(body)) {
		b.Fatalf("stored %d bytes of a %d-byte body", st.last, len(body))
	}
}

// benchBody is a message of size bytes: a short header block, then 66-byte
// CRLF lines.
func benchBody(size int) []byte {
	hdr := "From: scanner@campus.test\r\nTo: staff@campus.test\r\nSubject: scan\r\n" +
		"Date: Sun, 06 Dec 2026 05:00:00 +0000\r\nMessage-ID: <1@campus.test>\r\n\r\n"
	line := append(bytes.Repeat([]byte("0123456789abcdef"), 4), '\r', '\n')
	body := []byte(hdr)
	for len(body)+len(line) <= size {
		body = append(body, line...)
	}
	return body
}

// nullStore keeps nothing; it records the size of the last message.
type nullStore struct{ last int64 }

func (s *nullStore) Create(spool.Envelope) (MessageWriter, error) {
	return &nullWriter{s: s}, nil
}

type nullWriter struct {
	s *nullStore
	n int64
}

func (w *nullWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
func (w *nullWriter) ID() string                  { return "bench" }
func (w *nullWriter) MarkEightBit()               {}
func (w *nullWriter) Hold(string)                 {}
func (w *nullWriter) Abort() error                { return nil }
func (w *nullWriter) Commit() (*spool.Message, error) {
	w.s.last = w.n
	return &spool.Message{ID: "bench", Size: w.n, Received: time.Now()}, nil
}
