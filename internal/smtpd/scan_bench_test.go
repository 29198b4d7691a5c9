package smtpd

import (
	"bytes"
	"testing"
)

// BenchmarkScanData runs deviceConn's mirror of go-smtp's end-of-data state
// machine over 1 MiB of 66-byte CRLF lines.
func BenchmarkScanData(b *testing.B) {
	line := append(bytes.Repeat([]byte("0123456789abcdef"), 4), '\r', '\n')
	body := bytes.Repeat(line, (1<<20)/len(line))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		st := dataBeginLine
		for p := body; len(p) > 0; {
			k := min(len(p), 32<<10)
			scanData(&st, p[:k])
			p = p[k:]
		}
	}
}

// BenchmarkBodyChecks is what errReader adds per read of a body: the NUL
// refusal and the 8-bit mark, over 1 MiB of ASCII (the worst case: no
// early exit from the 8-bit scan).
func BenchmarkBodyChecks(b *testing.B) {
	line := append(bytes.Repeat([]byte("0123456789abcdef"), 4), '\r', '\n')
	body := bytes.Repeat(line, (1<<20)/len(line))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		for p := body; len(p) > 0; {
			k := min(len(p), 32<<10)
			if bytes.IndexByte(p[:k], 0) >= 0 || hasHighOctet(p[:k]) {
				b.Fatal("ASCII body flagged")
			}
			p = p[k:]
		}
	}
}
