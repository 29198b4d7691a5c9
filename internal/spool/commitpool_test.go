package spool

import (
	"runtime"
	"testing"
)

// bbolt keeps the page buffers of stored chunks between commits within
// the spool's buffer budget (commitPool): storing a 1 MiB message no
// longer allocates a new buffer for each of its chunks. Without the pool
// a lone 1 MiB message allocated about 1.1 MB; a lone writer now reuses
// three of its four runs (about 280 KB; 540 KB if the runs of earlier
// odd-sized messages took a third of the pool).
func TestCommitReusesBboltBuffers(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	if want := 3 * (s.opt.ChunkSize + chunkHeaderSize + len(chunkValueKey)); s.db.LargePagePoolSize != want {
		t.Errorf("bbolt keeps %d bytes of commit buffers, want %d (3 chunk runs)", s.db.LargePagePoolSize, want)
	}
	if want := s.opt.BufferBudget - 3*int64(s.opt.ChunkSize); s.writerBudget != want {
		t.Errorf("writers' budget %d, want %d", s.writerBudget, want)
	}
	// Messages of other sizes first: their odd page runs must not keep
	// the pool from the full chunks' runs.
	for _, n := range []int{100 << 10, 300 << 10, 700 << 10} {
		put(t, s, testEnv(), randomBody(n))
	}
	body := randomBody(1 << 20)
	put(t, s, testEnv(), body) // fills the pools
	const n = 8
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		put(t, s, testEnv(), body)
	}
	runtime.ReadMemStats(&after)
	// bbolt's one fresh run per message, and now and then a writer's chunk
	// buffer (the spool's pool, which a GC may empty).
	perMsg := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per 1 MiB message", perMsg)
	if perMsg > 400<<10 {
		t.Errorf("%d bytes allocated per 1 MiB message, want at most 400 KiB: bbolt's commit buffers are not reused", perMsg)
	}
}
