package spool

import (
	"testing"
	"unsafe"

	"go.etcd.io/bbolt"
)

// chunkRange reads bbolt's page layout itself; it must agree with where
// bbolt's own Get finds the value.
func TestChunkRangeMatchesBbolt(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	m := put(t, s, testEnv(), randomBody(3*s.opt.ChunkSize+5000))
	err := s.db.View(func(tx *bbolt.Tx) error {
		base := s.db.Info().Data
		for idx := range m.Chunks {
			cb := tx.Bucket(bucketMsgs).Bucket(chunkKey(m.ID, idx))
			if cb == nil {
				t.Fatalf("chunk %d has no bucket", idx)
			}
			off, n, err := s.chunkRange(tx, cb)
			if err != nil {
				t.Fatalf("chunk %d: %v", idx, err)
			}
			v := cb.Get(chunkValueKey)
			want := int64(uintptr(unsafe.Pointer(unsafe.SliceData(v))) - base)
			if off != want || n != len(v) {
				t.Errorf("chunk %d: range %d+%d, bbolt has it at %d+%d", idx, off, n, want, len(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
