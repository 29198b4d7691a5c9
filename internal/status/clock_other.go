//go:build !linux

package status

// KernelClockSynced cannot tell on this system: known is false.
func KernelClockSynced() (synced, known bool) { return false, false }
