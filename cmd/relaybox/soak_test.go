package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/selfsign"
	"relaybox/internal/sink"
)

// upstreamMode is how the soak's upstream behaves at the moment.
type upstreamMode int32

const (
	upGood      upstreamMode = iota
	upFlaky                  // random 4xx, slow replies, connections cut mid-DATA
	upUntrusted              // presents a certificate relaybox does not trust
)

func (m upstreamMode) String() string {
	return [...]string{"good", "flaky", "untrusted"}[m]
}

// safeRand is a rand.Rand for many goroutines.
type safeRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (r *safeRand) intN(n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.IntN(n)
}

func (r *safeRand) percent(p int) bool { return r.intN(100) < p }

// TestSoak is the fault soak: minutes of a misbehaving upstream and a
// misbehaving client population around well-behaved clients whose 250s are
// tracked. The daemon's memory and goroutines must stay flat, nothing
// accepted may be lost, and the status must read degraded while the
// upstream misbehaves and ok after. Run it with -soak.duration=3m
// (scripts/soak.sh).
func TestSoak(t *testing.T) {
	dur := *soakDuration
	if dur == 0 {
		t.Skip("fault soak: set -soak.duration (e.g. 3m), or run scripts/soak.sh")
	}
	seed := uint64(time.Now().UnixNano())
	rng := &safeRand{r: rand.New(rand.NewPCG(seed, 0x50a6))}
	t.Logf("soak: %s, %d well-behaved clients, seed %d", dur, *soakClients, seed)

	dir := t.TempDir()
	good, err := selfsign.New([]string{"localhost", "127.0.0.1"}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := selfsign.New([]string{"localhost", "127.0.0.1"}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var mode atomic.Int32
	tl := newTally()
	up, err := sink.Start("127.0.0.1:0", sink.Options{
		Discard:   true,
		OnMessage: tl.add,
		// The same address, another key: as if the relay's certificate
		// were swapped for one we do not trust.
		TLS: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if upstreamMode(mode.Load()) == upUntrusted {
				return &bad.TLS, nil
			}
			return &good.TLS, nil
		}},
		Reject: func(stage string) error {
			if upstreamMode(mode.Load()) != upFlaky {
				return nil
			}
			if rng.percent(10) {
				time.Sleep(time.Duration(200+rng.intN(1800)) * time.Millisecond)
			}
			if rng.percent(8) {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "soak: try again later"}
			}
			return nil
		},
		Cut: func(stage string) bool {
			if upstreamMode(mode.Load()) != upFlaky {
				return false
			}
			if stage == "data" {
				return rng.percent(8)
			}
			return rng.percent(2)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })

	cfg := relayConfig{dataDir: filepath.Join(dir, "data"), smtp: freeAddr(t), admin: freeAddr(t),
		upstream: up.Addr(), caFile: writeFile(t, filepath.Join(dir, "ca.pem"), string(good.CertPEM)),
		maxMessageSize: "1MiB", idleTimeout: "3s", connections: 2}
	const idleTimeout = 3 * time.Second
	p := startRelay(t, writeFile(t, filepath.Join(dir, "relaybox.toml"), cfg.String()), cfg.smtp)
	pid := p.cmd.Process.Pid

	smp := &sampler{pid: pid, admin: cfg.admin}
	time.Sleep(time.Second)
	idle := smp.take(t, "idle")

	// Phases: warm-up with a good upstream, then half the run misbehaving
	// (flaky and untrusted periods in turn), then good again to the end.
	warm := max(dur/6, 10*time.Second)
	badEnd := warm + dur/2
	period := max(dur/12, 6*time.Second)
	var phase atomic.Value
	phase.Store("warm")

	var stop atomic.Bool
	var wg sync.WaitGroup
	states := &stateLog{byPhase: map[string]map[string]int{}}
	wg.Go(func() { states.poll(cfg.admin, &phase, &stop) })
	ld := startLoad(cfg.smtp, *soakClients, 100*time.Millisecond, []int{400, 3000, 20000})
	fl := &flakyClients{addr: cfg.smtp, rng: rng, idleTimeout: idleTimeout, stop: &stop}
	fl.start(&wg)

	start := time.Now()
	var warmed sample
	var restarts int64
	for el := time.Duration(0); el < dur; el = time.Since(start) {
		switch {
		case el < warm:
			mode.Store(int32(upGood))
		case el < badEnd:
			if warmed.at.IsZero() {
				warmed = smp.take(t, "warmed-up")
			}
			m := upFlaky
			if (el-warm)/period%2 == 1 {
				m = upUntrusted
			}
			if prev := upstreamMode(mode.Swap(int32(m))); m == upUntrusted && prev != upUntrusted {
				// The relay comes back with the new certificate: sessions
				// opened under the old one end, every new one fails.
				_ = up.Stop()
				restarts++
				if err := up.Restart(); err != nil {
					t.Fatal(err)
				}
			}
			phase.Store(m.String())
		default:
			mode.Store(int32(upGood))
			phase.Store("recovered")
		}
		if time.Since(smp.last()) >= 10*time.Second {
			smp.take(t, phase.Load().(string))
		}
		time.Sleep(250 * time.Millisecond)
	}
	peakLoad := smp.take(t, "end of load")
	ld.stop()
	stop.Store(true)
	wg.Wait()
	phase.Store("drained")

	v := waitDrained(t, ld, tl, cfg.admin, 90*time.Second)
	// Goroutines return to the idle figure once sessions (idle_timeout)
	// and upstream connections (idle_close 2s) have closed.
	var end sample
	deadline := time.Now().Add(idleTimeout + 20*time.Second)
	for {
		end = smp.take(t, "after drain")
		if end.goroutines <= idle.goroutines+goroutineSlack || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	st, err := getStatus(cfg.admin)
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
	assertSpoolEmpty(t, filepath.Join(cfg.dataDir, "spool.db"))
	// VmRSS also counts the spool file's pages bbolt has mapped; they are
	// bounded by the file, which shows how much of the growth is theirs.
	var spoolSize int64
	if fi, err := os.Stat(filepath.Join(cfg.dataDir, "spool.db")); err == nil {
		spoolSize = fi.Size()
	}

	t.Logf("soak states by phase: %s", states)
	t.Logf("soak clients: accepted=%d lost=%d delivery_duplicates=%d (upstream restarts %d) failed_submissions=%d other_arrivals=%v; flaky: %s",
		v.accepted, len(v.missing), v.deliverDup, restarts, ld.fails.Load(), tl.other, fl)
	t.Logf("soak summary: duration=%s rss idle=%s warmed=%s end-of-load=%s end=%s peak=%s | rss_anon idle=%s warmed=%s end=%s peak=%s | "+
		"goroutines idle=%d warmed=%d end-of-load=%d end=%d peak=%d | heap warmed=%s end=%s | spool file %s | final state=%s",
		dur, mib(idle.rss), mib(warmed.rss), mib(peakLoad.rss), mib(end.rss), mib(smp.peakRSS), mib(idle.anon), mib(warmed.anon),
		mib(end.anon), mib(smp.peakAnon), idle.goroutines, warmed.goroutines, peakLoad.goroutines, end.goroutines, smp.peakG,
		mib(warmed.heap), mib(end.heap), mib(spoolSize), st.State)

	if len(v.missing) > 0 {
		t.Errorf("%d accepted submissions lost: numbers %v", len(v.missing), head(v.missing, 20))
	}
	// No kills here. The flaky upstream cuts before it records, so the
	// only duplicates come from its restarts into an untrusted period,
	// which can drop a session between its 250 and our commit.
	if bound := restarts * int64(cfg.connections); int64(v.deliverDup) > bound {
		t.Errorf("%d duplicate deliveries; at most %d can be in flight at %d upstream restarts", v.deliverDup, bound, restarts)
	}
	tl.mu.Lock()
	for subj, n := range tl.other {
		// Cut, idle, oversize and garbage sessions must get nothing through.
		t.Errorf("%d %q messages reached the upstream from misbehaving clients", n, subj)
	}
	tl.mu.Unlock()
	// Flat: a leak of one buffer or goroutine per session would add up
	// over thousands of sessions.
	if limit := warmed.anon*3/2 + 16<<20; end.anon > limit {
		t.Errorf("anonymous RSS grew from %s after warm-up to %s (limit %s)", mib(warmed.anon), mib(end.anon), mib(limit))
	}
	if end.goroutines > idle.goroutines+goroutineSlack {
		t.Errorf("goroutines: %d idle before the load, %d after it (slack %d): sessions leak", idle.goroutines, end.goroutines, goroutineSlack)
	}
	// A flaky upstream reads degraded only between a failure and the next
	// success (status.Options.DegradedAfter = 1), so it need only show; an
	// untrusted one fails every attempt and must read degraded throughout,
	// bar the samples before the first attempt of each period.
	if states.count("flaky", "degraded") == 0 {
		t.Errorf("status never read degraded while the upstream was flaky: %s", states)
	}
	if d, all := states.count("untrusted", "degraded"), states.total("untrusted"); d*2 < all {
		t.Errorf("status read degraded in %d of %d samples while the upstream's certificate was untrusted: %s", d, all, states)
	}
	if st.State != "ok" {
		t.Errorf("status after recovery: %s (%s), want ok", st.State, st.Reason)
	}
	if fl.idleLate.Load() > 0 {
		t.Errorf("%d idle sessions were not closed in time (idle_timeout %s): %s", fl.idleLate.Load(), idleTimeout, fl)
	}
	if fl.oversizeOK.Load() > 0 {
		t.Errorf("%d oversize messages got a 250", fl.oversizeOK.Load())
	}
}

// goroutineSlack is how many goroutines above the idle figure still count
// as back to baseline (timers, the runtime's own, a scrape in flight).
const goroutineSlack = 8

type sample struct {
	at              time.Time
	rss, anon, heap int64
	goroutines      int64
}

// sampler reads the daemon's memory from /proc and its goroutines and heap
// from /metrics, and keeps the peaks.
type sampler struct {
	pid                      int
	admin                    string
	mu                       sync.Mutex
	lastAt                   time.Time
	peakRSS, peakAnon, peakG int64
}

func (s *sampler) take(t *testing.T, label string) sample {
	t.Helper()
	sm := sample{at: time.Now()}
	var err error
	if sm.rss, sm.anon, err = procMem(s.pid); err != nil {
		t.Fatalf("reading the daemon's memory: %v", err)
	}
	if sm.goroutines, err = getGauge(s.admin, "go_goroutines"); err != nil {
		t.Fatalf("reading goroutines: %v", err)
	}
	if sm.heap, err = getGauge(s.admin, "relaybox_process_heap_bytes"); err != nil {
		t.Fatalf("reading heap: %v", err)
	}
	s.mu.Lock()
	s.lastAt = sm.at
	s.peakRSS, s.peakAnon, s.peakG = max(s.peakRSS, sm.rss), max(s.peakAnon, sm.anon), max(s.peakG, sm.goroutines)
	s.mu.Unlock()
	t.Logf("sample %-12s rss=%s rss_anon=%s heap=%s goroutines=%d", label, mib(sm.rss), mib(sm.anon), mib(sm.heap), sm.goroutines)
	return sm
}

func (s *sampler) last() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAt
}

// stateLog counts the status model's state per soak phase.
type stateLog struct {
	mu      sync.Mutex
	byPhase map[string]map[string]int
}

func (sl *stateLog) poll(admin string, phase *atomic.Value, stop *atomic.Bool) {
	for !stop.Load() {
		st, err := getStatus(admin)
		state := st.State
		if err != nil {
			state = "unreachable"
		}
		ph := phase.Load().(string)
		sl.mu.Lock()
		if sl.byPhase[ph] == nil {
			sl.byPhase[ph] = map[string]int{}
		}
		sl.byPhase[ph][state]++
		sl.mu.Unlock()
		time.Sleep(500 * time.Millisecond)
	}
}

func (sl *stateLog) count(phase, state string) int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.byPhase[phase][state]
}

func (sl *stateLog) total(phase string) int {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	n := 0
	for _, c := range sl.byPhase[phase] {
		n += c
	}
	return n
}

func (sl *stateLog) String() string {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	var b strings.Builder
	for _, ph := range []string{"warm", "flaky", "untrusted", "recovered"} {
		fmt.Fprintf(&b, "%s%v ", ph, sl.byPhase[ph])
	}
	return strings.TrimSpace(b.String())
}

// flakyClients is the misbehaving device population: one goroutine each
// for cutting mid-DATA, idling until the timeout, sending oversize
// messages and sending garbage.
type flakyClients struct {
	addr        string
	rng         *safeRand
	idleTimeout time.Duration
	stop        *atomic.Bool

	cuts, idles, idleLate, oversize, oversizeOK, garbage atomic.Int64

	mu                   sync.Mutex
	idleMax, idleDataMax time.Duration // longest wait for the hang-up: after the greeting, mid-DATA
}

func (f *flakyClients) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprintf("cut_mid_data=%d idled_out=%d (late %d; longest after greeting %s, mid-DATA %s) oversize=%d (250: %d) garbage_sessions=%d",
		f.cuts.Load(), f.idles.Load(), f.idleLate.Load(), f.idleMax.Round(100*time.Millisecond), f.idleDataMax.Round(100*time.Millisecond),
		f.oversize.Load(), f.oversizeOK.Load(), f.garbage.Load())
}

func (f *flakyClients) start(wg *sync.WaitGroup) {
	loop := func(pause time.Duration, fn func()) {
		wg.Go(func() {
			for !f.stop.Load() {
				fn()
				time.Sleep(pause)
			}
		})
	}
	loop(50*time.Millisecond, f.cutMidData)
	loop(0, f.idleOut)
	loop(0, f.idleOut)
	loop(500*time.Millisecond, f.sendOversize)
	loop(50*time.Millisecond, f.sendGarbage)
}

func (f *flakyClients) dial() (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 15 * time.Second
	c.SubmissionTimeout = 15 * time.Second
	return c, nil
}

// cutMidData starts a message and drops the connection partway through
// the body: nothing of it may reach the upstream.
func (f *flakyClients) cutMidData() {
	c, err := f.dial()
	if err != nil {
		return
	}
	defer c.Close()
	if c.Mail("cut@campus.test", nil) != nil || c.Rcpt("alice@campus.test", nil) != nil {
		return
	}
	w, err := c.Data()
	if err != nil {
		return
	}
	fmt.Fprintf(w, "Subject: soak cut\r\n\r\n")
	line := strings.Repeat("c", 70) + "\r\n"
	for n := f.rng.intN(2000); n > 0; n-- {
		io.WriteString(w, line)
	}
	f.cuts.Add(1) // c.Close drops the connection without the final dot
}

// idleOut connects and goes quiet, after the greeting or partway through
// DATA, and checks the relay hangs up. After the greeting that takes one
// listen.idle_timeout. Mid-DATA it takes up to three: smtpd abandons the
// body after one, go-smtp then waits another for the rest of the body
// before it replies 451, and a third for the next command before its 421.
func (f *flakyClients) idleOut() {
	conn, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		return
	}
	midData := f.rng.percent(50)
	limit := f.idleTimeout + 2*time.Second
	if midData {
		fmt.Fprintf(conn, "EHLO idler\r\nMAIL FROM:<idle@campus.test>\r\nRCPT TO:<alice@campus.test>\r\nDATA\r\nSubject: soak idle\r\n\r\npart of a body\r\n")
		limit = 3*f.idleTimeout + 2*time.Second
	}
	began := time.Now()
	_ = conn.SetReadDeadline(began.Add(3*f.idleTimeout + 30*time.Second))
	for {
		if _, err := r.ReadString('\n'); err != nil {
			took := time.Since(began)
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || took > limit {
				f.idleLate.Add(1)
			}
			f.idles.Add(1)
			f.mu.Lock()
			if midData {
				f.idleDataMax = max(f.idleDataMax, took)
			} else {
				f.idleMax = max(f.idleMax, took)
			}
			f.mu.Unlock()
			return
		}
	}
}

// sendOversize sends 1.5 MiB against max_message_size = 1MiB without
// declaring SIZE: the relay must refuse it at the end of DATA.
func (f *flakyClients) sendOversize() {
	c, err := f.dial()
	if err != nil {
		return
	}
	defer c.Close()
	if c.Mail("big@campus.test", nil) != nil || c.Rcpt("alice@campus.test", nil) != nil {
		return
	}
	w, err := c.Data()
	if err != nil {
		return
	}
	f.oversize.Add(1)
	fmt.Fprintf(w, "Subject: soak oversize\r\n\r\n")
	line := strings.Repeat("o", 76) + "\r\n"
	for range 1536 * 1024 / len(line) {
		if _, err := io.WriteString(w, line); err != nil {
			return
		}
	}
	if w.Close() == nil {
		f.oversizeOK.Add(1)
	}
}

// garbageLines are things broken or hostile devices send. No recipient
// here passes the policy, so garbage never forms a deliverable message.
var garbageLines = []string{
	"HELO\r\n", "MAIL FROM:<x@campus.test>\r\n", "RCPT TO:<alice@campus.test.evil.example>\r\n", "DATA\r\n",
	"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\n", "RCPT TO:<alice%campus.test@evil.example>\r\n",
	"\x00\x01\x02\xff\xfe\r\n", "GET / HTTP/1.1\r\nHost: relay\r\n\r\n", "AUTH PLAIN\r\n=\r\n",
	"STARTTLS\r\n", "BDAT 10 LAST\r\n", "VRFY root\r\nEXPN staff\r\n", "NOOP\r\nRSET\r\n",
	"MAIL FROM:<" + strings.Repeat("a", 3000) + "@campus.test>\r\n", strings.Repeat("Z", 5000) + "\r\n",
	"\r\n\r\n\r\n", "EHLO\tx\r\n", "mail from:<>\r\nrcpt to:<>\r\n", "DATA\r\n.\r\n",
}

// sendGarbage sends a few garbage lines, reads whatever comes back, and
// hangs up with or without QUIT.
func (f *flakyClients) sendGarbage() {
	conn, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	f.garbage.Add(1)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	for n := 1 + f.rng.intN(6); n > 0; n-- {
		if _, err := io.WriteString(conn, garbageLines[f.rng.intN(len(garbageLines))]); err != nil {
			return
		}
	}
	if f.rng.percent(50) {
		io.WriteString(conn, "QUIT\r\n")
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.Copy(io.Discard, conn)
}
