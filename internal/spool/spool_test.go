package spool

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCommitSurvivesReopen(t *testing.T) {
	path := tempPath(t)
	clk := newClock()
	s := openAt(t, path, Options{Now: clk.Now})
	env := testEnv("alice@example.edu", "bob@sub.example.edu")
	body := []byte("Subject: scan\r\n\r\nhello\r\n")
	got := put(t, s, env, body)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Options{Now: clk.Now})
	m, err := s.Get(got.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if m.ClientAddr != env.ClientAddr || m.Helo != env.Helo || m.From != env.From ||
		m.AuthUser != env.AuthUser || m.Device != env.Device {
		t.Errorf("envelope changed: %+v", m)
	}
	if len(m.Recipients) != 2 || m.Recipients[0].Address != "alice@example.edu" ||
		m.Recipients[1].Address != "bob@sub.example.edu" {
		t.Fatalf("recipients = %+v", m.Recipients)
	}
	for _, r := range m.Recipients {
		if r.State != RcptPending {
			t.Errorf("recipient %s state %q, want pending", r.Address, r.State)
		}
	}
	if m.State != StateQueued || !m.Received.Equal(clk.Now()) || !m.NextAttempt.Equal(m.Received) {
		t.Errorf("state %q received %v next %v; want queued, due at receipt %v", m.State, m.Received, m.NextAttempt, clk.Now())
	}
	if m.Size != int64(len(body)) || m.Chunks != 1 {
		t.Errorf("size %d chunks %d", m.Size, m.Chunks)
	}
	assertBody(t, s, m.ID, body)
	if st := s.Stats(); st.Messages != 1 || st.Bytes != int64(len(body)) || !st.Oldest.Equal(m.Received) {
		t.Errorf("stats after reopen = %+v", st)
	}
}

func TestBodyRoundTrip(t *testing.T) {
	const cs = 1024
	rng := rand.New(rand.NewPCG(1, 2)) // write sizes
	tests := []struct {
		name      string
		chunkSize int
		size      int
	}{
		{"empty", cs, 0},
		{"one byte", cs, 1},
		{"chunk-1", cs, cs - 1},
		{"chunk", cs, cs},
		{"chunk+1", cs, cs + 1},
		{"3 chunks+17", cs, 3*cs + 17},
		{"3 MiB default chunks", 0, 3<<20 + 5},
		// Chunks over a piece get a bucket each; the tail may be either.
		{"bucket chunks, bucket tail", 5000, 3*5000 + 2500},
		{"bucket chunks, piece tail", 5000, 2*5000 + 17},
	}
	s := openAt(t, tempPath(t), Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.opt.ChunkSize = tt.chunkSize
			if tt.chunkSize == 0 {
				s.opt.ChunkSize = chunkSizeFor(s.db.Info().PageSize)
			}
			body := randomBody(tt.size)
			w, err := s.Create(testEnv())
			if err != nil {
				t.Fatal(err)
			}
			// Uneven writes exercise the buffering across chunk edges.
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(3000))
				if k, err := w.Write(rest[:n]); err != nil || k != n {
					t.Fatalf("Write = %d, %v", k, err)
				}
				rest = rest[n:]
			}
			m, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			wantChunks := (tt.size + s.opt.ChunkSize - 1) / s.opt.ChunkSize
			if m.Size != int64(tt.size) || m.Chunks != wantChunks {
				t.Errorf("size %d chunks %d, want %d and %d", m.Size, m.Chunks, tt.size, wantChunks)
			}
			// A chunk is one bucket, or pieces of at most pieceSize when
			// it is small.
			wantKeys := 0
			for c := 0; c < wantChunks; c++ {
				n := min(s.opt.ChunkSize, tt.size-c*s.opt.ChunkSize)
				if n > s.inlineMax {
					wantKeys++
				} else {
					wantKeys += max(1, (n+pieceSize-1)/pieceSize)
				}
			}
			if n := keyCount(t, s, bucketMsgs, m.ID) - 1; n != wantKeys { // less the record
				t.Errorf("%d keys stored, want %d", n, wantKeys)
			}
			r, _ := s.OpenBody(m.ID)
			got, err := io.ReadAll(r) // Read path
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("ReadAll: %d bytes, %v; want %d identical bytes", len(got), err, len(body))
			}
			r.Close()
			r, _ = s.OpenBody(m.ID)
			var buf bytes.Buffer
			if n, err := io.Copy(&buf, r); err != nil || n != int64(len(body)) || !bytes.Equal(buf.Bytes(), body) {
				t.Errorf("io.Copy (WriteTo path): %d bytes, %v", n, err)
			}
			r.Close()
		})
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		name string
		body string
		max  int
		want string
	}{
		{"crlf", "Subject: a\r\nFrom: b\r\n\r\nbody\r\n", 100, "Subject: a\r\nFrom: b\r\n"},
		{"bare lf", "Subject: a\nFrom: b\n\nbody\n", 100, "Subject: a\nFrom: b\n"},
		{"no blank line", "Subject: a\r\nFrom: b\r\n", 100, "Subject: a\r\nFrom: b\r\n"},
		{"cut at max", "Subject: abcdef\r\n\r\nbody", 5, "Subje"},
		{"blank line right at max", "Subject: a\r\n\r\nbody", 12, "Subject: a\r\n"},
		{"no headers", "\r\nbody\r\n", 100, ""},
		{"empty body", "", 100, ""},
		{"spans chunks", strings.Repeat("X-Pad: 0123456789\r\n", 10) + "\r\nbody", 1000,
			strings.Repeat("X-Pad: 0123456789\r\n", 10)},
	}
	s := openAt(t, tempPath(t), Options{ChunkSize: 16})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := put(t, s, testEnv(), []byte(tt.body))
			got, err := s.Headers(m.ID, tt.max)
			if err != nil || string(got) != tt.want {
				t.Errorf("Headers = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := s.Headers("0000000000000", 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("Headers of unknown id: %v, want ErrNotFound", err)
	}
}

func TestQuota(t *testing.T) {
	const limit = 10000
	path := tempPath(t)
	s := openAt(t, path, Options{MaxSize: limit, ChunkSize: 1024})
	a := put(t, s, testEnv(), bytes.Repeat([]byte("a"), 6000))

	w, err := s.Create(testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3000)); err != nil {
		t.Fatalf("Write within quota: %v", err)
	}
	if _, err := w.Write(make([]byte, 1001)); !errors.Is(err, ErrQuota) {
		t.Fatalf("Write past quota: %v, want ErrQuota", err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrQuota) {
		t.Errorf("Commit after refused Write: %v, want ErrQuota", err)
	}
	if st := s.Stats(); st.Used != 6000 || st.Pending != 0 {
		t.Errorf("after failed message: %+v, want Used 6000 and no writer", st)
	}

	// Exactly up to the limit is allowed; then Create refuses.
	b := put(t, s, testEnv(), make([]byte, limit-6000))
	if _, err := s.Create(testEnv()); !errors.Is(err, ErrQuota) {
		t.Fatalf("Create at quota: %v, want ErrQuota", err)
	}
	// Messages already queued are untouched and still readable.
	assertBody(t, s, a.ID, bytes.Repeat([]byte("a"), 6000))
	// Deletes work at quota and free space; the quota survives a restart.
	if err := s.Delete(b.ID); err != nil {
		t.Fatalf("Delete at quota: %v", err)
	}
	s.Close()
	s = openAt(t, path, Options{MaxSize: limit, ChunkSize: 1024})
	if st := s.Stats(); st.Used != 6000 {
		t.Errorf("Used after reopen = %d, want 6000", st.Used)
	}
	w, err = s.Create(testEnv())
	if err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	if _, err := w.Write(make([]byte, 4000)); err != nil {
		t.Errorf("Write into freed space: %v", err)
	}
	w.Abort()
}

func TestCrashedWriterLeavesNothing(t *testing.T) {
	path := tempPath(t)
	clk := newClock()
	// A budget of one chunk: each is stored as it fills.
	s := openAt(t, path, Options{ChunkSize: 1024, BufferBudget: 1024, Now: clk.Now})
	keep := put(t, s, testEnv(), []byte("kept\r\n"))
	w, err := s.Create(testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 3*1024+500)); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, s, bucketMsgs, w.ID()); n != 3 {
		t.Fatalf("%d chunks stored before the crash, want 3", n)
	}
	// The crash: the session neither commits nor aborts.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	clk.Add(-time.Hour) // a clock that stepped back must not reuse IDs
	s = openAt(t, path, Options{ChunkSize: 1024, Now: clk.Now, Logger: testLogger(&logs)})
	assertNoLeftovers(t, s, w.ID())
	if !strings.Contains(logs.String(), w.ID()) {
		t.Errorf("recovery not logged; log: %q", logs.String())
	}
	if _, err := s.Get(w.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of crashed writer: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(keep.ID); err != nil {
		t.Errorf("committed message lost: %v", err)
	}
	if st := s.Stats(); st.Used != keep.Size || st.Messages != 1 {
		t.Errorf("stats after recovery = %+v", st)
	}
	if next := put(t, s, testEnv(), nil); next.ID <= w.ID() {
		t.Errorf("new ID %s not after crashed writer's %s", next.ID, w.ID())
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, w *Writer)
	}{
		{"nothing written", func(*testing.T, *Writer) {}},
		{"part of a chunk", func(_ *testing.T, w *Writer) { w.Write(make([]byte, 100)) }},
		{"several chunks", func(_ *testing.T, w *Writer) { w.Write(make([]byte, 5*1024+1)) }},
		{"after refused write", func(t *testing.T, w *Writer) {
			w.Write(make([]byte, 2048))
			if _, err := w.Write(make([]byte, 1<<20)); !errors.Is(err, ErrQuota) {
				t.Fatalf("Write past quota: %v", err)
			}
		}},
	}
	s := openAt(t, tempPath(t), Options{ChunkSize: 1024, MaxSize: 64 << 10})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := s.Create(testEnv())
			if err != nil {
				t.Fatal(err)
			}
			tt.write(t, w)
			if err := w.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Errorf("second Abort: %v", err)
			}
			if _, err := w.Commit(); err == nil {
				t.Error("Commit after Abort succeeded")
			}
			assertNoLeftovers(t, s, w.ID())
			if n := keyCount(t, s, bucketMsgs, ""); n != 0 {
				t.Errorf("%d records after Abort", n)
			}
			if st := s.Stats(); st.Used != 0 || st.Pending != 0 {
				t.Errorf("stats after Abort = %+v", st)
			}
		})
	}
	w, _ := s.Create(testEnv())
	w.Write([]byte("y"))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if _, err := s.Get(w.ID()); err != nil {
		t.Errorf("Abort after Commit removed the message: %v", err)
	}
}

func TestWriterMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 25 MiB")
	}
	s := openAt(t, tempPath(t), Options{})
	w, err := s.Create(testEnv())
	if err != nil {
		t.Fatal(err)
	}
	piece := make([]byte, 32<<10)
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 25<<20/len(piece); i++ {
		if _, err := w.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&during)
	// The writer's two chunk buffers and bbolt's bookkeeping; the whole
	// message would be 25 MiB.
	if grown := int64(during.HeapAlloc) - int64(before.HeapAlloc); grown > 2<<20 {
		t.Errorf("heap grew by %d bytes while writing 25 MiB", grown)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if cs := s.opt.ChunkSize; m.Size != 25<<20 || m.Chunks != (25<<20+cs-1)/cs {
		t.Errorf("size %d chunks %d", m.Size, m.Chunks)
	}
}

func TestClosed(t *testing.T) {
	s := openAt(t, tempPath(t), Options{BufferBudget: 1}) // chunks stored as they fill
	m := put(t, s, testEnv(), []byte("x"))
	w, _ := s.Create(testEnv())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Create(testEnv()); !errors.Is(err, ErrClosed) {
		t.Errorf("Create: %v", err)
	}
	if _, err := w.Write(make([]byte, 300<<10)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write of a full chunk: %v", err)
	}
	if _, err := s.Get(m.ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Get: %v", err)
	}
	if _, err := s.Update(m.ID, func(*Message) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update: %v", err)
	}
	if err := s.Delete(m.ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete: %v", err)
	}
}

func TestOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix modes")
	}
	path := tempPath(t)
	openAt(t, path, Options{})
	for p, want := range map[string]os.FileMode{path: 0o600, path[:strings.LastIndex(path, "/")]: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", p, got, want)
		}
	}
}

// SetMaxSize (a config reload) moves the quota both ways at once.
func TestSetMaxSize(t *testing.T) {
	s := openAt(t, tempPath(t), Options{MaxSize: 10000, ChunkSize: 1024})
	put(t, s, testEnv(), make([]byte, 6000))
	s.SetMaxSize(5000)
	if _, err := s.Create(testEnv()); !errors.Is(err, ErrQuota) {
		t.Fatalf("Create over the lowered quota: %v, want ErrQuota", err)
	}
	s.SetMaxSize(20000)
	put(t, s, testEnv(), make([]byte, 6000))
}
