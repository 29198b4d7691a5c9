package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCached evicts the clean, unmapped page cache of [off, off+n) of f
// (n 0: to the end). Errors are ignored: only the cache is at stake.
func dropCached(f *os.File, off, n int64) {
	unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

// noReadahead makes reads through f bring in only the pages asked for, as
// single pages: readahead would build large folios (see bboltpages.go).
func noReadahead(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
}
