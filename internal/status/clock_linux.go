package status

import "golang.org/x/sys/unix"

// KernelClockSynced asks the kernel (adjtimex, read only) whether NTP has
// synchronised the system clock. A board without a real-time clock boots
// with the time of its last shutdown and is unsynchronised until NTP steps
// it; meanwhile TLS to the upstream fails with "certificate not yet valid".
func KernelClockSynced() (synced, known bool) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, true
}
