//go:build unix

package deliver

import (
	"syscall"
	"time"
)

// processCPU is the user and system time this process has used so far
// (its children not counted); ok is false where it cannot be read.
func processCPU() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
