//go:build !unix

package deliver

import "time"

// processCPU is not measured here: BenchmarkDeliver1MiB then reports no
// cpu-ms/op.
func processCPU() (time.Duration, bool) { return 0, false }
