package deliver

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

// refFold breaks the lines of a CRLF body as Postfix's
// smtp_line_length_limit does, the simple way: a line whose octets on the
// wire (a dot to be stuffed counted) pass maxLineOctets goes on after
// CRLF and a space.
func refFold(body string) string {
	var b strings.Builder
	lines := strings.SplitAfter(body, "\n")
	for _, line := range lines {
		text, end := strings.CutSuffix(line, "\r\n")
		nl := ""
		if end {
			nl = "\r\n"
		}
		room := maxLineOctets
		if strings.HasPrefix(text, ".") {
			room--
		}
		for len(text) > room {
			b.WriteString(text[:room] + "\r\n ")
			text = text[room:]
			room = maxLineOctets - 1
		}
		b.WriteString(text + nl)
	}
	return b.String()
}

// The fast path must put exactly the bytes on the wire that net/textproto's
// DotWriter would, once DataCommand.Close adds its "\r\n.\r\n", given the
// body with its long lines folded.
func TestDotStufferMatchesTextproto(t *testing.T) {
	bodies := []string{
		"",
		"a\r\n",
		".\r\n",
		"..\r\n",
		"Subject: x\r\n\r\n.leading\r\nmid.dle\r\n..two\r\n.\r\n",
		"no final newline",
		"ends with dot line\r\n.",
		strings.Repeat(".x\r\n", 20000),
		strings.Repeat("y", dotStufferFlush-1) + "\r\n.z\r\n",
		strings.Repeat("y", dotStufferFlush-2) + "\r\n",
		strings.Repeat("y", dotStufferFlush-2) + "\r\n.z\r\n",  // "\n." across a run's end
		strings.Repeat("z", 3*dotStufferFlush+5) + "\r\n.\r\n", // a line longer than a run
		// Around the 998-octet line limit.
		strings.Repeat("a", 998) + "\r\n" + strings.Repeat("b", 999) + "\r\n",
		"." + strings.Repeat("c", 997) + "\r\n." + strings.Repeat("d", 998) + "\r\n",
		strings.Repeat("e", 997) + "\r\n" + strings.Repeat("f", 5000) + "\r\n.\r\n",
		strings.Repeat("g", 1996) + "\r\n" + strings.Repeat("h", 1997),
		strings.Repeat(strings.Repeat("i", 76)+"\r\n", 3000),
	}
	for _, body := range bodies {
		for _, split := range []int{1, 2, 7, 4096, 1 << 20} {
			var want bytes.Buffer
			bw := bufio.NewWriter(&want)
			dw := textproto.NewWriter(bw).DotWriter()
			dw.Write([]byte(refFold(body)))
			dw.Close()

			var got bytes.Buffer
			d := newDotStuffer(&got)
			for b := []byte(body); len(b) > 0; {
				n := min(split, len(b))
				if _, err := d.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
				b = b[n:]
			}
			if err := d.Finish(); err != nil {
				t.Fatal(err)
			}
			// What DataCommand.Close adds from the DotWriter's first state.
			var tail bytes.Buffer
			tbw := bufio.NewWriter(&tail)
			textproto.NewWriter(tbw).DotWriter().Close()
			got.Write(tail.Bytes())
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("body %.40q split %d:\n got %.80q\nwant %.80q", body, split, got.Bytes(), want.Bytes())
			}
		}
	}
}

// No line on the wire passes 998 octets, whatever the body.
func TestDotStufferLineLimit(t *testing.T) {
	body := "Subject: x\r\n\r\n" + strings.Repeat("w", 64<<10) + "\r\n." + strings.Repeat("v", 3000) + "\r\nshort\r\n"
	var got bytes.Buffer
	d := newDotStuffer(&got)
	if _, err := d.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(got.String(), "\r\n") {
		if len(line) > maxLineOctets {
			t.Fatalf("line %d has %d octets", i, len(line))
		}
	}
	unfolded := strings.ReplaceAll(got.String(), "\r\n ", "")
	if !strings.Contains(unfolded, strings.Repeat("w", 64<<10)+"\r\n..") {
		t.Fatalf("folding lost text")
	}
}

// BenchmarkDotStuffer: lines without a dot (base64, the bulk of large
// messages) and prose with a full stop or two in most lines.
func BenchmarkDotStuffer(b *testing.B) {
	for name, line := range map[string]string{
		"base64": strings.Repeat("0123456789abcdef", 4) + "\r\n",
		"prose":  "The scan is attached. Please check page 3, it is faint. Thanks.\r\n",
	} {
		b.Run(name, func(b *testing.B) {
			body := bytes.Repeat([]byte(line), (1<<20)/len(line))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			d := newDotStuffer(io.Discard)
			for b.Loop() {
				_, _ = d.Write(body)
			}
		})
	}
}

// Random bodies of dots, line ends and runs of text, written in random
// pieces, come out as textproto's DotWriter would put them (refFold's
// folding included): the dot search and the runs' ends must not miss a
// dot at a line start wherever it falls.
//
// The second set is mostly base64 lines, with now and then a dot at a
// line start, a line over the limit or a lone CR or LF: long runs that
// Write passes through uncopied, and their ends.
func TestDotStufferRandomBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 5))
	mixed := []string{".", "..", "\r\n", "\r\n.", "a", "b.c", strings.Repeat("x", 700), strings.Repeat("y", 1100)}
	b64 := strings.Repeat("QUJD", 19) + "\r\n"
	rare := []string{"\r\n.", ".", strings.Repeat("z", 997), strings.Repeat("w", 2500), "\r\n"}
	for i := range 400 {
		var body strings.Builder
		for size := rng.IntN(3 * dotStufferFlush); body.Len() < size; {
			switch {
			case i%2 == 0:
				body.WriteString(mixed[rng.IntN(len(mixed))])
			case rng.IntN(400) == 0:
				body.WriteString(rare[rng.IntN(len(rare))])
			default:
				body.WriteString(b64)
			}
		}
		b := body.String() + "\r\n"
		var want bytes.Buffer
		bw := bufio.NewWriter(&want)
		dw := textproto.NewWriter(bw).DotWriter()
		dw.Write([]byte(refFold(b)))
		dw.Close()
		want.Truncate(want.Len() - len("\r\n.\r\n")) // what DataCommand.Close adds

		var got bytes.Buffer
		d := newDotStuffer(&got)
		for p := []byte(b); len(p) > 0; {
			n := min(1+rng.IntN(80<<10), len(p))
			if _, err := d.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		d.release()
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("body of %d bytes: output differs from textproto's (%d vs %d bytes)", len(b), got.Len(), want.Len())
		}
	}
}

func TestLineDot(t *testing.T) {
	for p, want := range map[string]int{"": -1, ".": -1, "\n": -1, "\n.": 0, ".\n.": 1, "a.b\n.c": 3, "a.b.c\r\n": -1, "x\r\n..": 2,
		"a.b.c.d.e.f\n.": 11, "a.b.c.d.e.f\n": -1, "a.b.c.d.\n.": 8, "a.b.c.d\n.": 7, ".a.b.c.d\n.": 8} {
		if got := lineDot([]byte(p)); got != want {
			t.Errorf("lineDot(%q) = %d, want %d", p, got, want)
		}
	}
}

// firstWrite keeps the first slice written to it, unchanged.
type firstWrite struct {
	first []byte
	all   bytes.Buffer
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if f.first == nil {
		f.first = p
	}
	return f.all.Write(p)
}

// A long run that needs no dot and no fold reaches the writer as the
// caller's own bytes, not a copy (and, at the body's end, without its
// final CRLF, which the DATA terminator supplies). The body here is two
// such runs (32,760 and 17,160 octets), so the dot-stuffer never needs a
// buffer of its own.
func TestDotStufferPassesCleanRunsThrough(t *testing.T) {
	body := bytes.Repeat([]byte(strings.Repeat("QUJD", 19)+"\r\n"), 640)
	var w firstWrite
	d := newDotStuffer(&w)
	if _, err := d.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	if d.pool != nil {
		t.Errorf("a body passed through took a buffer from the pool")
	}
	if len(w.first) < 16<<10 || &w.first[0] != &body[0] {
		t.Errorf("the first write (%d bytes) is a copy, not the body itself", len(w.first))
	}
	if !bytes.Equal(w.all.Bytes(), body[:len(body)-2]) {
		t.Errorf("output differs from the body")
	}
}
