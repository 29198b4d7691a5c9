package spool

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkCommit1KiB measures accepting 1 KiB messages (Create, Write,
// Commit: one durable fsynced commit each) from 1 and 8 concurrent
// sessions. commits/msg below 1 shows group commit sharing fsyncs. The
// goroutines are started by hand rather than with b.RunParallel, whose
// count scales with GOMAXPROCS and could not give exactly 1 on any machine.
func BenchmarkCommit1KiB(b *testing.B) {
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for _, sessions := range []int{1, 8} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			s, err := Open(b.TempDir()+"/spool.db", Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			start := s.commits.Load()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						w, err := s.Create(testEnv())
						if err != nil {
							b.Error(err)
							return
						}
						w.Write(body)
						if _, err := w.Commit(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(s.commits.Load()-start)/float64(b.N), "commits/msg")
		})
	}
}
