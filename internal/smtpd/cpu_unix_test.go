//go:build unix

package smtpd

import (
	"syscall"
	"testing"
	"time"
)

// cpuMark is the process's CPU time at the start of a benchmark loop.
type cpuMark struct{ user, sys time.Duration }

func startCPU() cpuMark { return readCPU() }

func readCPU() cpuMark {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuMark{}
	}
	return cpuMark{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// report adds the CPU time per iteration since m as user-ns/op and
// sys-ns/op: unlike ns/op, it does not count time waiting for the other
// core, so it survives a loaded machine.
func (m cpuMark) report(b *testing.B) {
	now := readCPU()
	n := float64(b.N)
	b.ReportMetric(float64(now.user-m.user)/n, "user-ns/op")
	b.ReportMetric(float64(now.sys-m.sys)/n, "sys-ns/op")
}
