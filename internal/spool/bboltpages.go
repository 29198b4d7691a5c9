package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

// The bbolt page layer: the files bboltpages*.go are the one place where
// the spool knows how bbolt lays out its file and how the kernel maps and
// caches it. Everything else in the package goes through bbolt's API. The
// knowledge is there for measured reasons (docs/performance.md): reading
// bodies without growing resident memory, and keeping the disk writes the
// kernel charges us close to the pages bbolt writes.
//
// The bbolt file-format facts relied on (go.etcd.io/bbolt/internal/common,
// bbolt's on-disk format, unchanged since boltdb; written in the machine's
// byte order):
//
//  1. Page n starts at byte n*PageSize; a page with overflow k spans k+1
//     pages, and a deleted bucket's pages are freed as that one run.
//  2. Every page starts with a 16-byte header {id u64, flags u16, count
//     u16, overflow u32}; a leaf page has flags 0x02 and count 16-byte
//     elements {flags, pos, ksize, vsize u32}, pos counted from the
//     element, the key at pos and the value right after it.
//  3. A nested bucket larger than PageSize/4 is not inlined: it has a root
//     page of its own (Bucket.Root), which for a chunk bucket is a leaf
//     holding the single element chunkValueKey.
//  4. Pages 0 and 1 are the two meta pages (bboltpages_meta.go).
//  5. DB.Info().Data is the read-only shared mapping of the file, tx.Size()
//     bytes long, and bbolt only remaps it with no read transaction open.
//
// What falls back when a fact does not hold:
//
//   - chunkRange checks every field it reads (page id, leaf flag, one
//     element, the key, bounds within the page run and the file; an inlined
//     bucket has no root page at all) and answers errUnexpectedPage on any
//     mismatch; readChunk then reads the value through bbolt (Bucket.Get):
//     correct, only more resident memory. TestChunkRangeMatchesBbolt
//     (bboltpages_test.go) fails if the reading disagrees with bbolt's.
//   - chunkSizeFor with other header sizes makes chunks a few bytes off
//     whole pages: more bytes written per message, nothing misread.
//   - freelistSynced answers false on any doubt (bad magic or checksum), so
//     Open takes the careful way: check the file, let bbolt rebuild.
//   - noteFreed skips a bucket whose page bbolt cannot describe; madvise and
//     fadvise errors are ignored, and both are no-ops where they do not
//     exist (bboltpages_other.go, bboltpages_nolinux.go). Dropping a page
//     from the mapping or the cache only means the next read maps or reads
//     it again: these calls trim memory and write accounting, never data.

// The spool reads chunk bodies with pread and keeps bbolt's read-only
// mapping of the file from growing in our resident memory. Every page the
// relay touches through the mapping stays mapped, and counts as its
// memory (PSS), until the kernel reclaims it; a read fault also maps up to
// 64 KiB of cached neighbours ("fault-around"), a large share of the
// relay's footprint under load.
//
// Two measures:
//   - chunkRange finds a chunk's bytes in the file from its bucket's root
//     page number, which bbolt keeps in the parent's leaf, reading the root
//     page's header with pread, so reading a body touches no chunk page;
//   - pages bbolt itself must touch (commits read the tree pages they
//     change, deleting a chunk bucket reads its root page, Open walks every
//     page) are dropped from the mapping afterwards: after Open, and by the
//     committer at most every defaultDropEvery (dropMapped: madvise
//     MADV_DONTNEED, which leaves the page cache be).

// bbolt's page layout: fact 2 above.
const (
	pageHeaderSize  = 16
	leafElementSize = 16
	leafPageFlag    = 0x02
	chunkHeaderSize = pageHeaderSize + leafElementSize
)

// chunkSizeFor is the default chunk size for a bbolt page size: about
// 256 KiB, less the root page's header, its one leaf element and
// chunkValueKey, so a full chunk's node is exactly a whole
// number of pages and no page is written nearly empty.
func chunkSizeFor(pageSize int) int {
	pages := max(1, defaultChunkSize/pageSize)
	return pages*pageSize - chunkHeaderSize - len(chunkValueKey)
}

// loneMessage is the message a lone writer keeps in memory whole, to store
// it in one transaction (Writer): 1 MiB, a scanner's PDF, the box's main
// case.
const loneMessage = 1 << 20

// commitPool splits the buffer budget between writers and bbolt. Writers
// keep enough chunks for loneMessage and its tail; bbolt keeps the rest
// as the page buffers of stored chunks between commits
// (bbolt.DB.LargePagePoolSize, a relaybox patch: third_party/bbolt), since
// otherwise it allocates a new buffer for every chunk it stores, the
// body's size in garbage at every commit (docs/performance.md). It returns
// how many chunks' page runs (a chunk bucket's root leaf with its value,
// whole pages) bbolt keeps and their bytes. Chunks that fit in a page have
// no run to keep.
func commitPool(chunkSize int, budget int64, pageSize int) (chunks int64, bytes int) {
	run := (chunkSize + chunkHeaderSize + len(chunkValueKey) + pageSize - 1) / pageSize * pageSize
	if run <= pageSize {
		return 0, 0
	}
	chunks = max(0, budget/int64(chunkSize)-(loneMessage/int64(chunkSize)+1))
	return chunks, int(chunks) * run
}

// inlineBucketMax is the largest nested bucket bbolt stores inline in its
// parent's leaf (fact 3): a larger chunk bucket has a root page of its own,
// which chunkRange can find.
func inlineBucketMax(pageSize int) int { return pageSize / 4 }

var errUnexpectedPage = errors.New("chunk root page is not the expected single-value leaf")

// chunkRange returns where the value of chunk bucket cb lies in the file,
// reading only its root page's header. cb must come from tx, which must
// stay open while the range is used: only then are its pages not reused.
func (s *Spool) chunkRange(tx *bbolt.Tx, cb *bbolt.Bucket) (off int64, n int, err error) {
	ps := int64(s.db.Info().PageSize)
	root := int64(cb.Root())
	var h [chunkHeaderSize + 1]byte
	if root <= 0 || (root+1)*ps > tx.Size() {
		return 0, 0, errUnexpectedPage
	}
	if k, err := s.rf.ReadAt(h[:], root*ps); k < len(h) {
		return 0, 0, fmt.Errorf("read spool file: %w", errors.Join(err, io.ErrUnexpectedEOF))
	}
	ne := binary.NativeEndian
	var (
		id       = int64(ne.Uint64(h[0:]))
		flags    = ne.Uint16(h[8:])
		count    = ne.Uint16(h[10:])
		overflow = int64(ne.Uint32(h[12:]))
		eflags   = ne.Uint32(h[16:])
		pos      = int64(ne.Uint32(h[20:]))
		ksize    = int64(ne.Uint32(h[24:]))
		vsize    = int64(ne.Uint32(h[28:]))
	)
	start := pageHeaderSize + pos + ksize // pos counts from the element
	if id != root || flags != leafPageFlag || count != 1 || eflags != 0 ||
		ksize != int64(len(chunkValueKey)) || pos != leafElementSize || h[chunkHeaderSize] != chunkValueKey[0] ||
		start+vsize > (overflow+1)*ps || root*ps+start+vsize > tx.Size() {
		return 0, 0, errUnexpectedPage
	}
	return root*ps + start, int(vsize), nil
}

// readChunk copies chunk bucket cb's bytes from pos on into dst, as many
// as fit, and returns how many it copied and the chunk's length. Should
// the root page not be what chunkRange expects, it reads the value through
// the mapping instead: correct, only costlier in resident memory.
func (s *Spool) readChunk(tx *bbolt.Tx, cb *bbolt.Bucket, pos int, dst []byte) (n, clen int, err error) {
	off, clen, err := s.chunkRange(tx, cb)
	if errors.Is(err, errUnexpectedPage) {
		v := cb.Get(chunkValueKey)
		if v == nil {
			return 0, 0, errors.New("chunk bucket holds no value")
		}
		return copy(dst, v[min(pos, len(v)):]), len(v), nil
	}
	if err != nil {
		return 0, 0, err
	}
	n = min(max(clen-pos, 0), len(dst))
	if n == 0 {
		return 0, clen, nil
	}
	if k, err := s.rf.ReadAt(dst[:n], off+int64(pos)); k < n {
		return 0, 0, fmt.Errorf("read spool file: %w", errors.Join(err, io.ErrUnexpectedEOF))
	}
	return n, clen, nil
}

// dropAll removes every page of the file from our mapping. It runs inside
// a read transaction: bbolt remaps only with no read transaction open, so
// the range stays ours meanwhile (madvise on an address bbolt had unmapped
// could hit the heap).
func (s *Spool) dropAll() {
	s.db.View(func(tx *bbolt.Tx) error {
		if tx.Size() > 0 {
			dropMapped(s.db.Info().Data, uintptr(tx.Size()))
		}
		return nil
	})
}

// adviseAll sets the access advice of the whole mapping (adviseRandom),
// inside a read transaction for the reason dropAll gives.
func (s *Spool) adviseAll(random bool) {
	s.db.View(func(tx *bbolt.Tx) error {
		if tx.Size() > 0 {
			adviseRandom(s.db.Info().Data, uintptr(tx.Size()), random)
		}
		return nil
	})
}

// Chunk pages in the page cache. The kernel charges a process for each
// page cache folio its writes make dirty, in whole folios (write_bytes in
// /proc/PID/io, what iotop shows). Filesystems with large folios (ext4
// since Linux 6.16) cache a chunk's 256 KiB pwrite, and the file's 16 KiB
// creation, as folios of that size. Once the chunk is deleted bbolt reuses
// its pages for 4 KiB tree and meta pages, and each such write is charged
// as the whole clean folio it lands in, far more than the disk sees
// (TestWriteBytesMatchPagesWritten holds the two together). So the spool
// keeps large folios out of the free space: the committer drops a deleted
// chunk's pages from the cache before the next transaction can reuse them,
// Open drops the whole file's cache, and body reads do no readahead (which
// builds large folios too). Pages read back later come in as single pages.

// pageRun is n pages from page id on.
type pageRun struct{ id, n int64 }

// noteFreed records the pages of chunk bucket cb, about to be deleted, in
// s.freed. Inline buckets own no pages.
func (s *Spool) noteFreed(tx *bbolt.Tx, cb *bbolt.Bucket) {
	if cb == nil || cb.Root() == 0 {
		return
	}
	info, err := tx.Page(int(cb.Root()))
	if err != nil || info == nil {
		return // only the cache is at stake
	}
	s.freed = append(s.freed, pageRun{int64(cb.Root()), int64(info.OverflowCount) + 1})
}

// dropFreed drops the page cache of the runs in s.freed, which the
// committed transaction freed, and empties it. Pages still mapped stay
// cached, so it runs after dropAll (deleting a bucket reads its root page
// through the mapping).
func (s *Spool) dropFreed() {
	ps := int64(s.db.Info().PageSize)
	for _, r := range s.freed {
		dropCached(s.rf, r.id*ps, r.n*ps)
	}
	s.freed = s.freed[:0]
}
