package bbolt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

const lpPageSize = 4096

// lpValue returns a value that makes a bucket holding it under the one-byte
// key "k" a leaf of exactly pages pages, tail bytes short of the last
// page's end (16-byte page header, 16-byte leaf element, key).
func lpValue(pages, tail int, fill byte) []byte {
	return bytes.Repeat([]byte{fill}, pages*lpPageSize-16-16-1-tail)
}

func openLargePages(t *testing.T, limit int) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "db"), 0o600, &Options{PageSize: lpPageSize, LargePagePoolSize: limit})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func putValue(t *testing.T, db *DB, bucket string, v []byte) {
	t.Helper()
	require.NoError(t, db.Update(func(tx *Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), v)
	}))
}

// A multi-page buffer is reused by the next commit, and what reaches the
// disk past the new node's end is zeros, not the earlier node's bytes.
func TestLargePagePool_ReuseWritesNoStaleBytes(t *testing.T) {
	db := openLargePages(t, 1<<20)

	putValue(t, db, "b", lpValue(3, 100, 0xAA))
	require.Len(t, db.largePages.free[3], 1, "the 3-page leaf's buffer is kept")
	require.Equal(t, 3*lpPageSize, db.largePages.held)
	kept := unsafe.SliceData(db.largePages.free[3][0])
	require.Equal(t, make([]byte, 3*lpPageSize), db.largePages.free[3][0], "a kept buffer is zeroed")

	// Same page count, 2,000 bytes shorter: the old value's bytes sit in
	// the reused buffer's tail unless it was zeroed.
	short := lpValue(3, 2000, 0x55)
	putValue(t, db, "b", short)
	require.Len(t, db.largePages.free[3], 1)
	require.Equal(t, kept, unsafe.SliceData(db.largePages.free[3][0]), "the second commit reused the first one's buffer")

	var root uint64
	require.NoError(t, db.View(func(tx *Tx) error {
		root = uint64(tx.Bucket([]byte("b")).Root())
		return nil
	}))
	f, err := os.ReadFile(db.Path())
	require.NoError(t, err)
	run := f[root*lpPageSize : (root+3)*lpPageSize]
	end := 16 + 16 + 1 + len(short)
	require.Equal(t, short, run[end-len(short):end])
	require.Equal(t, make([]byte, len(run)-end), run[end:], "bytes past the node's end on disk")
}

// The pool never holds more than its limit; with no limit it holds nothing
// (bbolt's behaviour without the option).
func TestLargePagePool_Bound(t *testing.T) {
	for _, tc := range []struct {
		limit, wantHeld int
	}{
		{limit: 0, wantHeld: 0},
		{limit: 3*lpPageSize - 1, wantHeld: 0},
		{limit: 4 * lpPageSize, wantHeld: 3 * lpPageSize},
		{limit: 6 * lpPageSize, wantHeld: 6 * lpPageSize},
	} {
		db := openLargePages(t, tc.limit)
		// Three 3-page leaves in one commit, then the same again: the pool
		// keeps what the limit allows from each commit.
		for range 2 {
			require.NoError(t, db.Update(func(tx *Tx) error {
				for _, name := range []string{"a", "b", "c"} {
					b, err := tx.CreateBucketIfNotExists([]byte(name))
					if err != nil {
						return err
					}
					if err := b.Put([]byte("k"), lpValue(3, 100, name[0])); err != nil {
						return err
					}
				}
				return nil
			}))
			require.Equal(t, tc.wantHeld, db.largePages.held, "limit %d", tc.limit)
			sum := 0
			for _, bufs := range db.largePages.free {
				for _, b := range bufs {
					sum += len(b)
				}
			}
			require.Equal(t, tc.wantHeld, sum)
		}
		require.NoError(t, db.View(func(tx *Tx) error {
			for _, name := range []string{"a", "b", "c"} {
				require.Equal(t, lpValue(3, 100, name[0]), tx.Bucket([]byte(name)).Get([]byte("k")))
			}
			return nil
		}))
	}
}

// DB.LargePagePoolSize may be lowered between transactions: the buffers
// kept are used up and no more are kept.
func TestLargePagePool_Lowered(t *testing.T) {
	db := openLargePages(t, 1<<20)
	putValue(t, db, "b", lpValue(3, 100, 'x'))
	require.Equal(t, 3*lpPageSize, db.largePages.held)
	db.LargePagePoolSize = 0
	putValue(t, db, "b", lpValue(3, 100, 'y'))
	require.Equal(t, 0, db.largePages.held)
	require.Empty(t, db.largePages.free[3])
}

// A buffer that does not fit makes room by dropping kept buffers of other
// page counts, so sizes seen once do not take the pool for good.
func TestLargePagePool_NewSizeDropsOthers(t *testing.T) {
	db := openLargePages(t, 6*lpPageSize)
	putValue(t, db, "a", lpValue(2, 100, 'a'))
	putValue(t, db, "b", lpValue(3, 100, 'b'))
	require.Len(t, db.largePages.free[2], 1)
	require.Len(t, db.largePages.free[3], 1)
	require.Equal(t, 5*lpPageSize, db.largePages.held)

	putValue(t, db, "c", lpValue(4, 100, 'c'))
	require.Len(t, db.largePages.free[4], 1)
	require.Equal(t, 4*lpPageSize+len(db.largePages.free[2])*2*lpPageSize+len(db.largePages.free[3])*3*lpPageSize, db.largePages.held)
	require.LessOrEqual(t, db.largePages.held, 6*lpPageSize)
}
