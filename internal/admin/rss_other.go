//go:build !linux

package admin

// residentBytes is not offered off Linux: process_resident_memory_bytes is
// left out rather than reported as 0 (relaybox_go_memory_bytes still is).
func residentBytes() (int64, bool) { return 0, false }
