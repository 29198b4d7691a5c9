package spool

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"relaybox/internal/clocktest"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// clock is a settable time source for Options.Now.

func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC))
}

// syncBuffer collects log output written from the committer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data", "spool.db")
}

// openAt opens a spool and closes it at the end of the test (a second
// Close is harmless).
func openAt(t testing.TB, path string, opt Options) *Spool {
	t.Helper()
	s, err := Open(path, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEnv(rcpts ...string) Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"alice@example.edu"}
	}
	return Envelope{
		ClientAddr: "192.0.2.10:40000",
		Helo:       "scanner-3",
		From:       "scanner@lab.example.edu",
		Recipients: rcpts,
		AuthUser:   "scan",
		Device:     "Copier 2nd floor",
	}
}

// put stores one message and fails the test on any error.
func put(t *testing.T, s *Spool, env Envelope, body []byte) *Message {
	t.Helper()
	w, err := s.Create(env)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatalf("Write: %v", err)
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return m
}

// keyCount counts the keys in a bucket that start with prefix ("" = all).
func keyCount(t *testing.T, s *Spool, bucket []byte, prefix string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
			if bytes.HasPrefix(k, []byte(prefix)) {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("count keys: %v", err)
	}
	return n
}

// assertBody reads message id's body back (the Read path) and compares it.
func assertBody(t *testing.T, s *Spool, id string, want []byte) {
	t.Helper()
	r, err := s.OpenBody(id)
	if err != nil {
		t.Fatalf("OpenBody(%s): %v", id, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("body of %s: read %d bytes, %v; want the %d stored", id, len(got), err, len(want))
	}
}

// assertEmptyStore checks that no body chunk and no writer marker is left.
func assertNoLeftovers(t *testing.T, s *Spool, id string) {
	t.Helper()
	if n := keyCount(t, s, bucketMsgs, id); n != 0 {
		t.Errorf("%d keys of %s left in msgs", n, id)
	}
	if n := keyCount(t, s, bucketIncoming, ""); n != 0 {
		t.Errorf("%d incoming markers left", n)
	}
}
