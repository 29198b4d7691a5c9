package spool

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"relaybox/internal/clocktest"
)

// spoolFile makes a closed spool with a few messages and returns its bytes
// and bbolt page size.
func spoolFile(t *testing.T) ([]byte, int) {
	t.Helper()
	path := tempPath(t)
	s := openAt(t, path, Options{ChunkSize: 1024})
	for i := range 30 {
		put(t, s, testEnv(), bytes.Repeat([]byte{byte('a' + i%26)}, 3000))
	}
	pageSize := s.db.Info().PageSize
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data, pageSize
}

// pagesOfType lists the pages of a spool file that bbolt reports as typ.
func pagesOfType(t *testing.T, data []byte, typ string) []int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []int
	db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == typ {
				out = append(out, id)
			}
		}
	})
	return out
}

func TestOpenDamaged(t *testing.T) {
	orig, pageSize := spoolFile(t)
	garbage := func(data []byte, page int) {
		rng := rand.New(rand.NewPCG(uint64(page), 7))
		for i := page * pageSize; i < (page+1)*pageSize && i < len(data); i++ {
			data[i] = byte(rng.Uint32())
		}
	}
	leaves := pagesOfType(t, orig, "leaf")
	branches := pagesOfType(t, orig, "branch")
	if len(leaves) == 0 || len(branches) == 0 {
		t.Fatalf("test spool has %d leaf and %d branch pages; need both", len(leaves), len(branches))
	}
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"both meta pages", func(d []byte) []byte { garbage(d, 0); garbage(d, 1); return d }},
		{"a leaf page", func(d []byte) []byte { garbage(d, leaves[len(leaves)/2]); return d }},
		{"a branch page", func(d []byte) []byte { garbage(d, branches[0]); return d }},
		{"truncated", func(d []byte) []byte { return d[:pageSize/2] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.corrupt(bytes.Clone(orig))
			path := filepath.Join(t.TempDir(), "spool.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged spool succeeded")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("error %v does not match ErrDamaged", err)
			}
			for _, want := range []string{"damaged", "bbolt check " + path, "keep the file", path + ".damaged"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			// The admin's evidence stays as it was, never a fresh spool.
			if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
				t.Error("Open changed the damaged file")
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	path := tempPath(t)
	openAt(t, path, Options{})
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("second Open of the same spool succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not match ErrLocked", err)
	}
	if want := "spool: " + path + " is locked: is another relaybox running?"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestCheck(t *testing.T) {
	s := openAt(t, tempPath(t), Options{})
	put(t, s, testEnv(), []byte("x"))
	if err := s.Check(); err != nil {
		t.Errorf("Check of a healthy spool: %v", err)
	}
}

// Close leaves a saved freelist, so the next Open neither walks every page
// to rebuild it nor checks the bodies; a spool that was not closed (a
// crash: here a copy of an open one) has none and takes the long way.
func TestCloseSavesFreelist(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	put(t, s, testEnv(), bytes.Repeat([]byte("x"), 100_000))
	if freelistSynced(path) {
		t.Fatal("an open spool's file claims a saved freelist")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !freelistSynced(path) {
		t.Fatal("no saved freelist after Close")
	}
	s = openAt(t, path, Options{})
	m := put(t, s, testEnv(), []byte("y"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "spool.db")
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if freelistSynced(crashed) {
		t.Fatal("a spool copied while open claims a saved freelist")
	}
	c, err := Open(crashed, Options{})
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	defer c.Close()
	if _, err := c.Get(m.ID); err != nil {
		t.Fatalf("message committed before the crash: %v", err)
	}
}

// The run clock sums the time the spool was open over every run: Close
// saves it, and a commit saves it every runSaveEvery, so a crash loses at
// most that. Messages carry it as QueuedRun.
func TestRunClock(t *testing.T) {
	clk := newClock()
	path := tempPath(t)
	s := openAt(t, path, Options{Now: clk.Now, Mono: clk.Mono})
	if s.Run() <= 0 {
		t.Fatalf("Run() = %v, want > 0 (0 means unknown)", s.Run())
	}
	clk.Add(2 * time.Hour)
	m := put(t, s, testEnv(), []byte("x"))
	if m.QueuedRun != s.Run() || m.QueuedRun < 2*time.Hour {
		t.Fatalf("QueuedRun %v, Run %v", m.QueuedRun, s.Run())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Jump(30 * 24 * time.Hour) // the box was off, or its clock stepped: neither counts
	clk2 := clocktest.New(clk.Now())
	s = openAt(t, path, Options{Now: clk2.Now, Mono: clk2.Mono})
	if r := s.Run(); r < 2*time.Hour || r > 2*time.Hour+time.Second {
		t.Fatalf("after a restart Run() = %v, want 2h as saved", r)
	}
	// A commit after runSaveEvery saves it; a crash then loses less.
	clk2.Add(runSaveEvery + time.Minute)
	put(t, s, testEnv(), []byte("y"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "spool.db")
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(crashed, Options{Mono: clocktest.New(clk.Now()).Mono})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := c.Run(); r < 2*time.Hour+runSaveEvery {
		t.Fatalf("after a crash Run() = %v, want at least %v", r, 2*time.Hour+runSaveEvery)
	}
}

// After a clean shutdown Open does not read the bodies; a damaged body
// page is then found when the message is read, as an error for that
// message (never a panic), while the rest of the spool works.
func TestDamagedBodyAfterCleanClose(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	bad := put(t, s, testEnv(), bytes.Repeat([]byte("b"), 100_000))
	good := put(t, s, testEnv(), bytes.Repeat([]byte("g"), 100_000))
	var root int64
	s.db.View(func(tx *bbolt.Tx) error {
		root = int64(tx.Bucket(bucketMsgs).Bucket(chunkKey(bad.ID, 0)).Root())
		return nil
	})
	pageSize := int64(s.db.Info().PageSize)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, int(pageSize)), root*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = openAt(t, path, Options{})
	_, err = io.ReadAll(s.BodyOf(mustGet(t, s, bad.ID)))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "body of "+bad.ID+" is damaged") {
		t.Fatalf("reading the damaged body: %v", err)
	}
	assertBody(t, s, good.ID, bytes.Repeat([]byte("g"), 100_000))
}

func mustGet(t *testing.T, s *Spool, id string) *Message {
	t.Helper()
	m, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
