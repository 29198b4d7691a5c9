package smtp

// relaybox: the fast paths in dataReader.Read and lineLimitReader.Read must
// give exactly what the byte-at-a-time loops they replace gave. These tests
// keep a copy of the original loops and compare, on seeded and fuzzed input
// read through bufio buffers and caller buffers of many sizes.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// refData is the DATA reader's rule written out a line at a time, as a
// reference for the bulk loop: a line starts after CR+ LF (a run of CRs
// before LF is one line ending; a bare LF is not one); a line that is "."
// then CR+ LF ends DATA; any other line-leading dot is removed (RFC 5321
// 4.5.2). An input that stops inside a possible end marker hands on
// nothing of it. end is the length of the input up to and including the
// end marker (len(in) without one).
func refData(in []byte) (out []byte, eof bool, end int) {
	bol := true
	for i := 0; i < len(in); {
		if bol && in[i] == '.' {
			j := i + 1
			for j < len(in) && in[j] == '\r' {
				j++
			}
			switch {
			case j == len(in):
				return out, false, len(in)
			case j > i+1 && in[j] == '\n':
				return out, true, j + 1
			}
			i++ // a stuffed dot
			bol = false
			continue
		}
		c := in[i]
		out = append(out, c)
		bol = c == '\n' && i > 0 && in[i-1] == '\r'
		i++
	}
	return out, false, len(in)
}

// fastData reads in through the DATA reader as Conn sets it up: a
// bufio.Reader of bufSize over an unreadReader over a source that returns
// at most srcSize bytes a read, read readSize bytes at a time. After the
// end marker it returns what the bufio.Reader then reads (the commands
// that follow), which must be the rest of the input.
func fastData(in []byte, bufSize, readSize, srcSize int) (out []byte, eof bool, rest []byte, err error) {
	src := &unreadReader{r: &splitReader{b: in, n: srcSize}}
	br := bufio.NewReaderSize(src, bufSize)
	dr := &dataReader{r: br, src: src}
	p := make([]byte, readSize)
	for {
		n, err := dr.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			rest, err = io.ReadAll(br)
			return out, true, rest, err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return out, false, nil, nil
		}
		if err != nil {
			return out, false, nil, err
		}
	}
}

func checkData(t *testing.T, in []byte) {
	want, wantEOF, end := refData(in)
	for _, bs := range []int{16, 17, 64, 4096} {
		for _, rs := range []int{1, 3, 64, 32 << 10} {
			for _, ss := range []int{1, 5, 100, 1 << 20} {
				got, eof, rest, err := fastData(in, bs, rs, ss)
				if err != nil || eof != wantEOF || !bytes.Equal(got, want) || eof && !bytes.Equal(rest, in[end:]) {
					t.Fatalf("input %q (bufio %d, read %d, source %d):\n got %q eof=%v rest %q err=%v\nwant %q eof=%v rest %q",
						in, bs, rs, ss, got, eof, rest, err, want, wantEOF, in[end:])
				}
			}
		}
	}
}

var dataSeeds = []string{
	"", "a\r\n.\r\n", ".\r\n", "..x\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r.\r\nb\r\n.\r\n",
	"a\r\n.\rb\r\n.\r\n", "x\r\n\x00.\r\nMAIL FROM:<a>\r\n.\r\n", "no end",
	"line\r\n" + string(bytes.Repeat([]byte("y"), 5000)) + "\r\n.\r\nafter",
	// CR runs (BusyBox sendmail sends CR CR LF) and the smuggling sequences
	// built on them.
	"Subject: a\r\r\n\r\r\nbody\r\r\n.\r\n", "a\r\r\n.\r\r\nafter", "a\r\r\r\n.\r\r\r\n",
	"a\r\r\n.\rb\r\n.\r\n", "a\r\r\n.\r\rb\r\n.\r\n", "a\r.\r\r\nb\r\n.\r\n",
	"a\n.\r\r\nb\r\n.\r\n", "a\r\r.\r\nb\r\n.\r\n", "a\r\r\n.\n\r\n.\r\n", ".\r\r", ".\r\rx\r\n.\r\n",
}

func TestRelayboxDataReaderMatchesOriginal(t *testing.T) {
	for _, s := range dataSeeds {
		checkData(t, []byte(s))
	}
}

// FuzzRelayboxDataReader draws the bufio and read sizes from the input, so
// one run compares one combination: the fuzzer's minimisation of a new
// input then stays cheap (with all sizes per input, a long input took
// seconds to minimise and the fuzz run hit its deadline).
func FuzzRelayboxDataReader(f *testing.F) {
	for i, s := range dataSeeds {
		f.Add([]byte(s), uint8(i), uint8(3*i))
	}
	f.Fuzz(func(t *testing.T, in []byte, bs, rs uint8) {
		if len(in) > 16<<10 {
			return
		}
		want, wantEOF, end := refData(in)
		// Read sizes up to 2x the bufio size, so about half the reads
		// take the direct path (readDirect); the source's read size
		// follows from the other two.
		bufSize, readSize := 16+int(bs)%200, 1+int(rs)%400
		srcSize := 1 + (int(bs)*int(rs))%300
		got, eof, rest, err := fastData(in, bufSize, readSize, srcSize)
		if err != nil || eof != wantEOF || !bytes.Equal(got, want) || eof && !bytes.Equal(rest, in[end:]) {
			t.Fatalf("input %q (bufio %d, read %d, source %d):\n got %q eof=%v rest %q err=%v\nwant %q eof=%v rest %q",
				in, bufSize, readSize, srcSize, got, eof, rest, err, want, wantEOF, in[end:])
		}
	})
}

// refLineLimit is the original lineLimitReader loop over one read.
func refLineLimit(cur, limit int, b []byte) (int, bool) {
	for _, chr := range b {
		if chr == '\n' {
			cur = 0
		}
		cur++
		if cur > limit {
			return cur, false
		}
	}
	return cur, true
}

func TestRelayboxLineLimitMatchesOriginal(t *testing.T) {
	inputs := []string{"", "abc", "abc\n", "\n\n\n", "abcdef\nab", "abcdefgh", "ab\ncdefgh\nx", "abcde\n", "abcd\nabcd\n"}
	for _, in := range inputs {
		for limit := 1; limit <= 8; limit++ {
			for split := 1; split <= len(in)+1; split++ {
				// Reference, read by read.
				refCur, refOK, refFailAt := 0, true, -1
				for i, chunk := 0, []byte(in); len(chunk) > 0 && refOK; i++ {
					n := split
					if n > len(chunk) {
						n = len(chunk)
					}
					refCur, refOK = refLineLimit(refCur, limit, chunk[:n])
					if !refOK {
						refFailAt = i
					}
					chunk = chunk[n:]
				}
				// Fast, through the real reader.
				lr := &lineLimitReader{R: &splitReader{b: []byte(in), n: split}, LineLimit: limit}
				failAt := -1
				buf := make([]byte, 64)
				for i := 0; ; i++ {
					_, err := lr.Read(buf)
					if err == ErrTooLongLine {
						failAt = i
						if _, err2 := lr.Read(buf); err2 != ErrTooLongLine {
							t.Fatalf("%q limit %d: error not sticky", in, limit)
						}
						break
					}
					if err != nil {
						break
					}
				}
				if failAt != refFailAt {
					t.Errorf("%q limit %d split %d: fails at read %d, original at %d", in, limit, split, failAt, refFailAt)
				}
			}
		}
	}
}

type splitReader struct {
	b []byte
	n int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	m := s.n
	if m > len(p) {
		m = len(p)
	}
	k := copy(p[:m], s.b)
	s.b = s.b[k:]
	return k, nil
}

// BenchmarkRelayboxDataReader reads a 1 MiB body of 66-byte CRLF lines
// through the DATA reader set up as Conn sets it up, 32 KiB at a time (as
// io.Copy does), as a device upload does.
func BenchmarkRelayboxDataReader(b *testing.B) {
	line := append(bytes.Repeat([]byte("0123456789abcdef"), 4), '\r', '\n')
	body := append(bytes.Repeat(line, (1<<20)/len(line)), ".\r\n"...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	src := bytes.NewReader(body)
	ur := &unreadReader{r: src}
	br := bufio.NewReaderSize(ur, 4096)
	p := make([]byte, 32<<10)
	for b.Loop() {
		src.Reset(body)
		br.Reset(ur)
		dr := &dataReader{r: br, src: ur}
		for {
			if _, err := dr.Read(p); err != nil {
				break
			}
		}
	}
}

// TestRelayboxDataReaderEnds pins what ends DATA and what the body is, for
// the line endings devices send and the smuggling sequences built on them.
func TestRelayboxDataReaderEnds(t *testing.T) {
	for _, tt := range []struct {
		in, body string
		eof      bool
	}{
		// BusyBox sendmail fed a CRLF file: every line ends CR CR LF.
		{"Subject: a\r\r\n\r\r\nbody\r\r\n.\r\n", "Subject: a\r\r\n\r\r\nbody\r\r\n", true},
		{"a\r\r\n.\r\r\n", "a\r\r\n", true},
		{".\r\n", "", true},
		{".\r\r\r\n", "", true},
		{"a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", true},
		// Not the end marker: a bare LF is no line ending, and a CR run
		// not followed by LF is data, handed on whole.
		{"a\n.\nb", "a\n.\nb", false},
		{"a\n.\r\nb", "a\n.\r\nb", false},
		{"a\r\n.\nb", "a\r\n\nb", false},
		{"a\r.\r\nb", "a\r.\r\nb", false},
		{"a\r\n.\rb", "a\r\n\rb", false},
		{"a\r\r\n.\r\rb", "a\r\r\n\r\rb", false},
		{"a\r\r.\r\r\nb", "a\r\r.\r\r\nb", false},
		{"a\r\n\x00.\r\nb", "a\r\n\x00.\r\nb", false},
	} {
		// Through bufio (reads smaller than its buffer) and straight
		// into the caller's buffer (readDirect).
		for _, rs := range []int{7, 64} {
			got, eof, _, err := fastData([]byte(tt.in), 16, rs, 1<<20)
			if err != nil || eof != tt.eof || string(got) != tt.body {
				t.Errorf("%q (read %d): body %q eof=%v err=%v; want %q eof=%v", tt.in, rs, got, eof, err, tt.body, tt.eof)
			}
		}
	}
}
