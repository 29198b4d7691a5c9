//go:build !unix

package smtpd

import "testing"

type cpuMark struct{}

func startCPU() cpuMark { return cpuMark{} }

// report has no CPU times to give where there is no getrusage.
func (cpuMark) report(*testing.B) {}
