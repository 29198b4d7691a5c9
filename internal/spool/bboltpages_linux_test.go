package spool

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// processWriteBytes is this process's write_bytes from /proc/self/io: what
// the kernel charged it for dirtying page cache, the per-process figure an
// operator reads (iotop, /proc/PID/io) to see what wears the card.
func processWriteBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no per-process I/O accounting here: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no write_bytes in /proc/self/io")
	return 0
}

// The kernel charges a writer for every page cache folio its write makes
// dirty, in whole folios. Chunk writes and the file's creation leave large
// folios in the cache (ext4 has had them since Linux 6.16); once a chunk is
// deleted, bbolt reuses its pages for 4 KiB tree and meta pages, and every
// such write was charged as the whole clean folio it landed in: 1.4-2.0 MB
// per 1 MiB message relayed, where the disk saw 1.08 MB. The spool drops a
// deleted chunk's pages from the cache before they can be reused, and the
// file's cache at Open, so writes land in folios of their own size.
func TestWriteBytesMatchPagesWritten(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	ps := int64(s.db.Info().PageSize)
	cycle := func(n int, size int) {
		for i := range n {
			m := put(t, s, testEnv(), randomBody(size+i))
			assertBody(t, s, m.ID, randomBody(size+i))
			if err := s.Delete(m.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	cycle(8, 1<<20) // freed chunk pages, ready for reuse
	w0, st0, c0 := processWriteBytes(t), s.db.Stats(), s.commits.Load()
	cycle(8, 1<<20)
	cycle(50, 1000)
	w1, st1, c1 := processWriteBytes(t), s.db.Stats(), s.commits.Load()
	if w1 == w0 {
		t.Skip("this filesystem charges no write_bytes (tmpfs?)")
	}
	d := st1.TxStats.Sub(&st0.TxStats)
	pages := d.GetPageAlloc() + (c1-c0)*ps
	t.Logf("bbolt wrote %d bytes in %d commits; the process was charged %d (%.3f per byte)",
		pages, c1-c0, w1-w0, float64(w1-w0)/float64(pages))
	if limit := pages * 110 / 100; w1-w0 > limit {
		t.Errorf("charged %d bytes for %d bytes of pages, want at most %d", w1-w0, pages, limit)
	}
}
