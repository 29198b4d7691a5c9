package deliver

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strings"
	"testing"
)

// The fast path must put exactly the bytes on the wire that net/textproto's
// DotWriter would, once DataCommand.Close adds its "\r\n.\r\n".
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
	}
	for _, body := range bodies {
		for _, split := range []int{1, 2, 7, 4096, 1 << 20} {
			var want bytes.Buffer
			bw := bufio.NewWriter(&want)
			dw := textproto.NewWriter(bw).DotWriter()
			dw.Write([]byte(body))
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
