//go:build !unix

package spool

// dropMapped is a no-op where madvise does not exist (Windows trims a
// process's working set by itself under memory pressure).
func dropMapped(addr, n uintptr) {}

// adviseRandom is a no-op where madvise does not exist.
func adviseRandom(addr, n uintptr, random bool) {}
