package main

import (
	"bytes"
	"strconv"
	"testing"

	"relaybox/internal/config"
	"relaybox/internal/spool"
)

// 32-bit ARM (Pi Zero/1, GOARM=6) is where bbolt's memory map is capped
// near 2 GiB and 64-bit atomics must be aligned. The default spool quota
// must fit there, and a spool must really grow past its initial map. `make
// test-arm` runs this under qemu-arm-static, where strconv.IntSize is 32.
func TestQuotaDefaultFits32Bit(t *testing.T) {
	c := config.Default()
	if c.Queue.MaxSize > config.GiB {
		t.Fatalf("default queue.max_size %v; 32-bit boards need at most 1GiB", c.Queue.MaxSize)
	}
	if err := c.Validate(); err != nil { // validates against this platform's int size
		t.Fatalf("defaults do not validate on %d-bit: %v", strconv.IntSize, err)
	}
	if strconv.IntSize != 32 {
		t.Logf("%d-bit build: the spool part runs only on 32-bit (make test-arm)", strconv.IntSize)
		return
	}
	path := t.TempDir() + "/spool.db"
	s, err := spool.Open(path, spool.Options{MaxSize: int64(c.Queue.MaxSize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // closes whichever spool s names at the end
	w, err := s.Create(spool.Envelope{From: "scanner@lab.example.edu", Recipients: []string{"a@example.edu"}})
	if err != nil {
		t.Fatal(err)
	}
	// 24 MiB: past the spool's 16 MiB initial map, so bbolt remaps on 32-bit.
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for range 24 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 1 || st.Bytes != 24<<20 {
		t.Fatalf("stats %+v; want one 24 MiB message", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = spool.Open(path, spool.Options{MaxSize: int64(c.Queue.MaxSize)})
	if err != nil {
		t.Fatalf("reopen on 32-bit: %v", err)
	}
	if _, err := s.Get(m.ID); err != nil {
		t.Fatalf("message lost across reopen: %v", err)
	}
}
