package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"relaybox/internal/sink"
)

// TestTorture is the crash torture: clients send numbered messages through
// the real binary to a TLS upstream while relaybox is killed with SIGKILL
// at random moments (including in the middle of group commits, with 8
// clients committing at once) and restarted, and the upstream goes down and
// comes back at random. Every submission that got a 250 must arrive; the
// spool must end empty and pass bbolt's check. -torture.kills=10 is the
// short run inside `make test`; scripts/torture.sh runs 100.
func TestTorture(t *testing.T) {
	kills, clients := *tortureKills, *tortureClients
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x7047))
	t.Logf("torture: %d kills, %d clients, seed %d", kills, clients, seed)

	dir := t.TempDir()
	tl := newTally()
	up := startUpstream(t, dir, false, sink.Options{OnMessage: tl.add, Discard: true})
	cfg := relayConfig{dataDir: filepath.Join(dir, "data"), smtp: freeAddr(t), admin: freeAddr(t),
		upstream: up.sink.Addr(), caFile: up.caFile, connections: 2}
	cfgPath := writeFile(t, filepath.Join(dir, "relaybox.toml"), cfg.String())
	p := startRelay(t, cfgPath, cfg.smtp)
	start := time.Now()

	// Sizes from one line to several spool chunks (2000-byte pieces).
	// A short pause per client keeps the accept rate near what two
	// upstream connections deliver, so the backlog drains in seconds; 8
	// clients still commit concurrently all the time.
	ld := startLoad(cfg.smtp, clients, 10*time.Millisecond, []int{300, 1500, 6000, 25000})
	var upStops atomic.Int64
	upDone := make(chan struct{})
	var upWG sync.WaitGroup
	upWG.Go(func() { flapUpstream(t, up.sink, rng.Uint64(), upDone, &upStops) })

	for k := range kills {
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		p.kill()
		if k%10 == 9 || k == kills-1 {
			t.Logf("kill %d/%d: %d submissions accepted so far", k+1, kills, ld.acceptedCount())
		}
		p = startRelay(t, cfgPath, cfg.smtp)
	}
	ld.stop()
	close(upDone)
	upWG.Wait()
	if err := up.sink.Restart(); err != nil {
		t.Fatal(err)
	}
	loadTime := time.Since(start)

	drainStart := time.Now()
	v := waitDrained(t, ld, tl, cfg.admin, 60*time.Second+loadTime)
	drain := time.Since(drainStart)
	// A message whose upstream 250 was lost to a kill or an upstream stop
	// is sent again after its recorded backoff (max_backoff 2s): let those
	// arrive before counting duplicates.
	time.Sleep(3 * time.Second)
	v = ld.verdict(tl)
	p.stop()
	assertSpoolEmpty(t, filepath.Join(cfg.dataDir, "spool.db"))

	// Each kill or upstream stop can interrupt at most one delivery per
	// upstream connection between the upstream's 250 and our commit.
	bound := (int64(kills) + upStops.Load()) * int64(cfg.connections)
	t.Logf("torture summary: kills=%d upstream_stops=%d clients=%d load=%s drain=%s accepted=%d lost=%d "+
		"delivery_duplicates=%d (bound %d) client_retries_after_lost_250=%d failed_submissions=%d upstream_received=%d",
		kills, upStops.Load(), clients, loadTime.Round(time.Second), drain.Round(100*time.Millisecond), v.accepted, len(v.missing),
		v.deliverDup, bound, v.unacked, ld.fails.Load(), tl.received())
	if len(v.missing) > 0 {
		t.Errorf("%d accepted submissions lost: numbers %v", len(v.missing), head(v.missing, 20))
	}
	if int64(v.deliverDup) > bound {
		t.Errorf("%d duplicate deliveries: more than the %d that can be in flight at %d kills and %d upstream stops",
			v.deliverDup, bound, kills, upStops.Load())
	}
	if v.accepted < kills {
		t.Errorf("only %d submissions accepted: the load did not run", v.accepted)
	}
}

// flapUpstream stops the upstream for 0.2-1.5s every 0.5-3s until done.
func flapUpstream(t *testing.T, s *sink.Sink, seed uint64, done <-chan struct{}, stops *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	pause := func(minMS, spanMS int) bool {
		select {
		case <-done:
			return false
		case <-time.After(time.Duration(minMS+rng.IntN(spanMS)) * time.Millisecond):
			return true
		}
	}
	for pause(500, 2500) {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the upstream: %v", err)
		}
		stops.Add(1)
		ok := pause(200, 1300)
		if err := s.Restart(); err != nil {
			t.Errorf("restarting the upstream: %v", err)
			return
		}
		if !ok {
			return
		}
	}
}

// TestSpoolDamageRefusesStart approximates a power cut that tore the spool
// file: a copy of a spool written by a real run is truncated, or has a page
// in the middle overwritten. relaybox must refuse to start, name the file
// and a recovery step, and leave the evidence exactly as it was.
func TestSpoolDamageRefusesStart(t *testing.T) {
	dir := t.TempDir()
	// No upstream: the messages stay in the spool, so its pages are live.
	addr := freeAddr(t)
	dataDir := filepath.Join(dir, "data")
	cfgPath := writeFile(t, filepath.Join(dir, "relaybox.toml"), acceptConfig(dataDir, addr))
	p := startRelay(t, cfgPath, addr)
	for n := range int64(40) {
		if err := sendOne(addr, numbered(n, 1, 300+int(n)*700)); err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
	}
	p.stop()
	orig, err := os.ReadFile(filepath.Join(dataDir, "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.LittleEndian.Uint32(orig[24:28])) // meta page: 16-byte header, magic, version, page size
	hwm := int(binary.LittleEndian.Uint64(orig[56:64]))      // meta: pages in use
	leaves := livePages(t, orig, "leaf")
	last := slices.Max(append(livePages(t, orig, "branch"), leaves...))
	if len(leaves) < 3 || pageSize < 512 || hwm*pageSize > len(orig) {
		t.Fatalf("unexpected spool: page size %d, %d pages in use, %d bytes, %d live leaves", pageSize, hwm, len(orig), len(leaves))
	}
	t.Logf("spool from the real run: %d bytes, page size %d, %d pages in use, %d live leaf pages, last live page %d",
		len(orig), pageSize, hwm, len(leaves), last)

	cases := []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		// Writes that never reached the disk: the file ends before the
		// last page the tree points to, or halfway through the used pages.
		// (A page past the end of the file but inside bbolt's mapping
		// raises SIGBUS when read, which no recover() catches.)
		{"truncated tail", func(d []byte) []byte { return d[:last*pageSize] }},
		{"truncated to half", func(d []byte) []byte { return d[:hwm/2*pageSize] }},
		// A page of the tree start-up reads (records, not a message
		// body: after a clean shutdown bodies are read when sent, and a
		// damaged one costs that message only; see spool's
		// TestDamagedBodyAfterCleanClose).
		{"garbage page in the middle", func(d []byte) []byte {
			tree := treeLeaves(d, leaves, pageSize)
			if len(tree) == 0 {
				t.Fatal("no record leaf page in the spool")
			}
			pg := tree[len(tree)/2]
			rng := rand.New(rand.NewPCG(uint64(pg), 9))
			for i := pg * pageSize; i < (pg+1)*pageSize; i++ {
				d[i] = byte(rng.Uint32())
			}
			return d
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := t.TempDir()
			damaged := c.corrupt(bytes.Clone(orig))
			path := filepath.Join(sub, "data", "spool.db")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, string(damaged))
			want := sha256.Sum256(damaged)
			cfg := writeFile(t, filepath.Join(sub, "relaybox.toml"), acceptConfig(filepath.Join(sub, "data"), freeAddr(t)))

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, relayBinary, "run", "-config", cfg).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("relaybox on a damaged spool: %v, want exit status 1\n%s", err, out)
			}
			for _, s := range []string{path + " is damaged", "keep the file", "bbolt check " + path, "mv " + path + " " + path + ".damaged"} {
				if !strings.Contains(string(out), s) {
					t.Errorf("output does not say %q:\n%s", s, out)
				}
			}
			if strings.Contains(string(out), "goroutine ") {
				t.Errorf("relaybox crashed instead of reporting:\n%s", out)
			}
			now, err := os.ReadFile(path)
			if err != nil || sha256.Sum256(now) != want {
				t.Errorf("the damaged spool was changed (or removed: %v); it must stay as evidence", err)
			}
			t.Logf("relaybox said: %s", strings.TrimSpace(string(out)))
		})
	}
}

// livePages lists the pages of a spool file that bbolt reports as typ and
// are reachable (not on the free list), so damaging one must be noticed.
// treeLeaves drops from leaves the root pages of body chunk buckets: a
// leaf holding the single key "d" (bbolt's page layout: 16-byte header
// with the count at byte 10, then 16-byte elements {flags, pos, ksize,
// vsize}, pos counted from the element).
func treeLeaves(data []byte, leaves []int, pageSize int) []int {
	var out []int
	for _, pg := range leaves {
		p := data[pg*pageSize:]
		count := binary.LittleEndian.Uint16(p[10:])
		pos := int(binary.LittleEndian.Uint32(p[20:]))
		ksize := binary.LittleEndian.Uint32(p[24:])
		if count == 1 && ksize == 1 && p[16+pos] == 'd' {
			continue
		}
		out = append(out, pg)
	}
	return out
}

func livePages(t *testing.T, data []byte, typ string) []int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe.db")
	writeFile(t, path, string(data))
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []int
	_ = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			pi, err := tx.Page(id)
			if err != nil || pi == nil {
				return nil
			}
			if pi.Type == typ {
				out = append(out, id)
			}
		}
	})
	return out
}
