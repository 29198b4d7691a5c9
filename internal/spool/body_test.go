package spool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

func randomBody(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// mappedKiB sums the resident size (Rss) of this process's mappings of
// path, from /proc/self/smaps.
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			// A mapping's header line: address perms offset dev inode [path].
			in = len(fields) == 6 && fields[5] == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

// Delivering a body must not leave it in our memory: reading it through
// bbolt's mapping kept every page mapped (counted in the relay's PSS) until
// the kernel reclaimed it, and deleting it mapped 64 KiB around each
// chunk's root page. Open's walk of the whole file is dropped too.
func TestBodyNotLeftMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/smaps")
	}
	path := tempPath(t)
	body := randomBody(4 << 20)
	s := openAt(t, path, Options{})
	m := put(t, s, testEnv(), body)
	s.Close()
	s = openAt(t, path, Options{dropEvery: time.Nanosecond}) // after every commit
	// Through the mapping, each step below maps up to 4096 KiB; fault-
	// around alone, 64 KiB per chunk (1 MiB).
	const limit = 256
	if kib := mappedKiB(t, path); kib > limit {
		t.Errorf("after Open, %d KiB of the spool file are mapped", kib)
	}
	assertBody(t, s, m.ID, body)
	if kib := mappedKiB(t, path); kib > limit {
		t.Errorf("after reading a 4 MiB body, %d KiB of the spool file are mapped", kib)
	}
	if err := s.Delete(m.ID); err != nil {
		t.Fatal(err)
	}
	if kib := mappedKiB(t, path); kib > limit {
		t.Errorf("after deleting a 4 MiB body, %d KiB of the spool file are mapped", kib)
	}
}

// A body is written to disk once: each chunk's pages are written when its
// bucket is created and never again (see putChunk; stored as neighbouring
// values, every chunk would rewrite the ones before it in its leaf). The
// figure is bbolt's own: the pages it allocated and wrote, plus one meta
// page per commit.
// (The process's write_bytes in /proc/self/io counts whole page-cache
// folios and overstates small writes; scripts/diskwrite-bench.sh reads the
// disk's own counter.)
func TestBodyWrittenOnce(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	const size = 8 << 20
	put(t, s, testEnv(), randomBody(1000)) // the buckets exist and hold a key
	st0, c0 := s.db.Stats(), s.commits.Load()
	put(t, s, testEnv(), randomBody(size))
	st1, c1 := s.db.Stats(), s.commits.Load()
	d := st1.TxStats.Sub(&st0.TxStats)
	written := d.GetPageAlloc() + (c1-c0)*int64(s.db.Info().PageSize)
	// Per chunk transaction, beyond its own pages: the meta page and the
	// body and root leaves, about 3% of a chunk where one writer commits
	// alone.
	if limit := int64(size) * 105 / 100; written > limit {
		t.Errorf("storing %d body bytes wrote %d bytes (%.3f per byte) in %d commits, want at most %d",
			size, written, float64(written)/size, c1-c0, limit)
	}
	t.Logf("%d body bytes: %d written in %d commits (%.3f per byte)", size, written, c1-c0, float64(written)/size)
}

// An older relaybox must refuse a newer schema rather than misread it;
// this one refuses what it does not know with the same message.
func TestSchemaFromTheFutureRefused(t *testing.T) {
	// "1" and "2" were pre-release layouts (bodies in a "body" bucket) that
	// no release wrote: refused like any schema this relaybox does not know.
	for _, v := range []string{"99", "2", "1"} {
		t.Run(v, func(t *testing.T) {
			path := tempPath(t)
			s := openAt(t, path, Options{})
			s.Close()
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte(v)) })
			db.Close()
			_, err = Open(path, Options{})
			if err == nil || !strings.Contains(err.Error(), `schema version "`+v+`"`) {
				t.Fatalf("Open = %v, want a schema refusal", err)
			}
		})
	}
}

// BodyOf reads from a record in hand; once the message is deleted, the
// reader says so rather than returning a short body.
func TestBodyOf(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	body := randomBody(3*s.opt.ChunkSize + 100)
	m := put(t, s, testEnv(), body)
	r := s.BodyOf(m)
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, %v; want the %d stored", len(got), err, len(body))
	}
	if err := s.Delete(m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(s.BodyOf(m)); !errors.Is(err, ErrNotFound) {
		t.Errorf("reading a deleted message: %v, want ErrNotFound", err)
	}
}
