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

// refData is the original go-smtp v0.25.1 dataReader loop.
func refData(in []byte) (out []byte, eof bool) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	state := stateBeginLine
	for _, c := range in {
		if state == stateEOF {
			break
		}
		switch state {
		case stateBeginLine:
			if c == '.' {
				state = stateDot
				continue
			}
			if c == '\r' {
				state = stateCR
				break
			}
			state = stateData
		case stateDot:
			if c == '\r' {
				state = stateDotCR
				continue
			}
			state = stateData
		case stateDotCR:
			if c == '\n' {
				state = stateEOF
				continue
			}
			state = stateData
		case stateCR:
			if c == '\n' {
				state = stateBeginLine
				break
			}
			state = stateData
		case stateData:
			if c == '\r' {
				state = stateCR
			}
		}
		out = append(out, c)
	}
	return out, state == stateEOF
}

func fastData(in []byte, bufSize, readSize int) ([]byte, bool, error) {
	dr := &dataReader{r: bufio.NewReaderSize(bytes.NewReader(in), bufSize)}
	var out []byte
	p := make([]byte, readSize)
	for {
		n, err := dr.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, true, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return out, false, nil
		}
		if err != nil {
			return out, false, err
		}
	}
}

func checkData(t *testing.T, in []byte) {
	want, wantEOF := refData(in)
	for _, bs := range []int{16, 17, 64, 4096} {
		for _, rs := range []int{1, 3, 64, 32 << 10} {
			got, eof, err := fastData(in, bs, rs)
			if err != nil || eof != wantEOF || !bytes.Equal(got, want) {
				t.Fatalf("input %q (bufio %d, read %d):\n got %q eof=%v err=%v\nwant %q eof=%v",
					in, bs, rs, got, eof, err, want, wantEOF)
			}
		}
	}
}

var dataSeeds = []string{
	"", "a\r\n.\r\n", ".\r\n", "..x\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r.\r\nb\r\n.\r\n",
	"a\r\n.\rb\r\n.\r\n", "x\r\n\x00.\r\nMAIL FROM:<a>\r\n.\r\n", "no end",
	"line\r\n" + string(bytes.Repeat([]byte("y"), 5000)) + "\r\n.\r\nafter",
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
		want, wantEOF := refData(in)
		bufSize, readSize := 16+int(bs)%200, 1+int(rs)%200
		got, eof, err := fastData(in, bufSize, readSize)
		if err != nil || eof != wantEOF || !bytes.Equal(got, want) {
			t.Fatalf("input %q (bufio %d, read %d):\n got %q eof=%v err=%v\nwant %q eof=%v",
				in, bufSize, readSize, got, eof, err, want, wantEOF)
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
