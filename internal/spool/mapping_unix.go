//go:build unix

package spool

import "golang.org/x/sys/unix"

// dropMapped unmaps the pages of [addr, addr+n) from bbolt's read-only
// shared mapping without touching the page cache: the next access maps
// them again from the same cached file pages. Errors are ignored: this
// only trims resident memory.
func dropMapped(addr, n uintptr) {
	unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_DONTNEED)
}
