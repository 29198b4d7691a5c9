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

// adviseRandom tells the kernel that [addr, addr+n) of a bbolt mapping is
// read at random (or, random false, as usual again): a page fault then
// reads that page, not the 128 KiB around it. Start-up reads the record
// pages of a spool, scattered among the bodies; read-around read bodies
// beside each of them (33 MB instead of about 15 for 22,000 messages).
func adviseRandom(addr, n uintptr, random bool) {
	advice := unix.MADV_NORMAL
	if random {
		advice = unix.MADV_RANDOM
	}
	unix.Syscall(unix.SYS_MADVISE, addr, n, uintptr(advice))
}
