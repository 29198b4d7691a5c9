package spool

import (
	"fmt"
	"io"
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
			s := openAt(b, tempPath(b), Options{})
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

// BenchmarkRoundTrip1MiB is a 1 MiB message's whole life in the spool:
// stored in 32 KiB writes, its delivery attempt recorded, read back (as
// delivery does) and deleted, from 8 concurrent sessions. allocs and B/op
// are the garbage the relay's GC pays for per message; commits/msg the
// group commits; written-B/msg the pages bbolt wrote (meta pages included),
// what the disk sees of the spool.
func BenchmarkRoundTrip1MiB(b *testing.B) {
	piece := make([]byte, 32<<10)
	for i := range piece {
		piece[i] = 'a' + byte(i%26)
	}
	const sessions = 8
	s := openAt(b, tempPath(b), Options{})
	var next atomic.Int64
	var wg sync.WaitGroup
	start, st0 := s.commits.Load(), s.db.Stats()
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for range sessions {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				w, err := s.Create(testEnv())
				if err != nil {
					b.Error(err)
					return
				}
				for range (1 << 20) / len(piece) {
					w.Write(piece)
				}
				m, err := w.Commit()
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Update(m.ID, func(m *Message) error { m.Attempts++; return nil }); err != nil {
					b.Error(err)
					return
				}
				r, err := s.OpenBody(m.ID)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					b.Error(err)
				}
				r.Close()
				if err := s.Delete(m.ID); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	commits, st1 := s.commits.Load()-start, s.db.Stats()
	d := st1.TxStats.Sub(&st0.TxStats)
	b.ReportMetric(float64(commits)/float64(b.N), "commits/msg")
	b.ReportMetric(float64(d.GetPageAlloc()+commits*int64(s.db.Info().PageSize))/float64(b.N), "written-B/msg")
}
