package main

// Helpers shared by the crash torture and the fault soak: a numbered-message
// load generator written in Go (it must tell a 250 from a cut connection
// exactly, and run for minutes), a tally of what the upstream sink received,
// and readers for the daemon's admin API and /proc figures.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/sink"
)

var (
	tortureKills   = flag.Int("torture.kills", 10, "SIGKILLs of relaybox in TestTorture (10 = the short run in make test; scripts/torture.sh uses 100)")
	tortureClients = flag.Int("torture.clients", 8, "concurrent sending clients in TestTorture")
	soakDuration   = flag.Duration("soak.duration", 0, "run TestSoak for this long (e.g. 3m); 0 skips it")
	soakClients    = flag.Int("soak.clients", 4, "well-behaved sending clients in TestSoak (flaky ones come on top)")
)

// relayConfig is a relaybox config for the torture and the soak: the e2e
// accept settings, an admin API to poll, one STARTTLS upstream trusted
// through caFile, and quick retries so outages heal within seconds. Every
// test client comes from 127.0.0.1, so the per-client flood limits are off:
// with them on, these runs would measure the limiter, not the relay.
type relayConfig struct {
	dataDir, smtp, admin, upstream, caFile string
	maxMessageSize                         string // "" = 10MiB
	idleTimeout                            string // "" = the default (5m)
	connections                            int
}

func (c relayConfig) String() string {
	size := c.maxMessageSize
	if size == "" {
		size = "10MiB"
	}
	idle := ""
	if c.idleTimeout != "" {
		idle = fmt.Sprintf("idle_timeout = %q\n", c.idleTimeout)
	}
	return fmt.Sprintf(`hostname = "relaybox.torture.test"
data_dir = %q
[listen]
smtp = [%q]
allowed_networks = ["127.0.0.0/8"]
max_message_size = %q
shutdown_grace = "5s"
per_client_connections = 0
per_client_rate = 0
%s[policy]
recipient_domains = ["campus.test"]
[admin]
listen = %q
[log]
level = "warn"
[delivery]
connections = %d
min_backoff = "1s"
max_backoff = "2s"
upstream_hold = "1s"
idle_close = "2s"
connect_timeout = "5s"
command_timeout = "10s"
data_timeout = "10s"
[[upstream]]
address = %q
tls = "starttls"
ca_file = %q
`, c.dataDir, c.smtp, size, idle, c.admin, c.connections, c.upstream, c.caFile)
}

// numbered builds message n, attempt a: both numbers are in the Subject
// and the body, so the upstream's copy names the exact submission.
func numbered(n, a int64, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: torture message %d attempt %d\r\nFrom: <dev@campus.test>\r\nTo: <alice@campus.test>\r\n"+
		"Message-ID: <torture-%d-%d@campus.test>\r\nDate: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nmessage number %d attempt %d\r\n",
		n, a, n, a, n, a)
	line := strings.Repeat("t", 76) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

var numberedRe = regexp.MustCompile(`Subject: torture message (\d+) attempt (\d+)\r\n`)

// submission is one (message number, attempt) pair.
type submission struct{ n, a int64 }

// sendOne submits body over a fresh connection. nil means DATA got a 250,
// the relay's promise that the message is on disk.
func sendOne(addr string, body []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout = 15 * time.Second
	c.SubmissionTimeout = 15 * time.Second
	if err := c.Hello("torture-client"); err != nil {
		return err
	}
	if err := c.Mail("dev@campus.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt("alice@campus.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit() // the 250 is what counts; a lost QUIT reply is not a loss
	return nil
}

// load is a population of clients sending numbered messages; a message
// that gets no 250 is sent again as the next attempt of the same number.
type load struct {
	addr    string
	sizes   []int
	pace    time.Duration // pause between one client's messages; 0 = flat out
	next    atomic.Int64
	stopped atomic.Bool
	wg      sync.WaitGroup
	fails   atomic.Int64 // submissions that got no 250 (cut, refused, 4xx)

	mu       sync.Mutex
	accepted map[submission]bool
}

func startLoad(addr string, clients int, pace time.Duration, sizes []int) *load {
	l := &load{addr: addr, sizes: sizes, pace: pace, accepted: map[submission]bool{}}
	for range clients {
		l.wg.Go(l.client)
	}
	return l
}

func (l *load) client() {
	for !l.stopped.Load() {
		n := l.next.Add(1)
		size := l.sizes[int(n)%len(l.sizes)]
		for a := int64(1); !l.stopped.Load(); a++ {
			if err := sendOne(l.addr, numbered(n, a, size)); err != nil {
				l.fails.Add(1)
				time.Sleep(20 * time.Millisecond) // the relay may be restarting
				continue
			}
			l.mu.Lock()
			l.accepted[submission{n, a}] = true
			l.mu.Unlock()
			break
		}
		time.Sleep(l.pace)
	}
}

// stop lets each client finish the submission it is in, then returns.
func (l *load) stop() {
	l.stopped.Store(true)
	l.wg.Wait()
}

func (l *load) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// tally counts what the upstream received, by submission, as it arrives
// (sink.Options.OnMessage with Discard: a long run keeps no bodies).
type tally struct {
	mu       sync.Mutex
	copies   map[submission]int
	messages int
	other    map[string]int // messages that are not numbered submissions, by Subject
}

func newTally() *tally { return &tally{copies: map[submission]int{}, other: map[string]int{}} }

var subjectRe = regexp.MustCompile(`(?m)^Subject: ([^\r\n]*)`)

func (tl *tally) add(m sink.Message) {
	sm := numberedRe.FindSubmatch(m.Body)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.messages++
	if sm == nil {
		subj := "(none)"
		if m := subjectRe.FindSubmatch(m.Body); m != nil {
			subj = string(m[1])
		}
		tl.other[subj]++
		return
	}
	n, _ := strconv.ParseInt(string(sm[1]), 10, 64)
	a, _ := strconv.ParseInt(string(sm[2]), 10, 64)
	tl.copies[submission{n, a}]++
}

func (tl *tally) received() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.messages
}

// verdict compares the load's 250s with what arrived.
type verdict struct {
	accepted   int   // submissions that got a 250
	missing    []int // message numbers with a 250'd submission that never arrived
	deliverDup int   // extra copies of one submission: a delivery repeated by the relay
	unacked    int   // submissions that arrived without the client seeing a 250 (reply lost at a kill)
}

func (l *load) verdict(tl *tally) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	v := verdict{accepted: len(l.accepted)}
	for s := range l.accepted {
		if tl.copies[s] == 0 {
			v.missing = append(v.missing, int(s.n))
		}
	}
	sort.Ints(v.missing)
	for s, c := range tl.copies {
		v.deliverDup += c - 1
		if !l.accepted[s] {
			v.unacked++
		}
	}
	return v
}

// adminStatus is the part of /api/status these tests read.
type adminStatus struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
	Queue  struct {
		Messages int `json:"messages"`
		Dead     int `json:"dead"`
	} `json:"queue"`
}

var adminHTTP = &http.Client{Timeout: 5 * time.Second}

func getStatus(adminAddr string) (adminStatus, error) {
	var st adminStatus
	resp, err := adminHTTP.Get("http://" + adminAddr + "/api/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/api/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// getGauge reads one unlabelled sample from /metrics.
func getGauge(adminAddr, name string) (int64, error) {
	resp, err := adminHTTP.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// waitDrained waits until every 250'd submission reached the upstream and
// the relay's queue is empty.
func waitDrained(t *testing.T, l *load, tl *tally, adminAddr string, timeout time.Duration) verdict {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := l.verdict(tl)
		st, err := getStatus(adminAddr)
		if len(v.missing) == 0 && err == nil && st.Queue.Messages == 0 {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d accepted submissions never arrived (numbers %v), queue %+v (%v)",
				timeout, len(v.missing), head(v.missing, 20), st.Queue, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func head(s []int, n int) []int { return s[:min(n, len(s))] }

// procMem reads a process's resident memory from /proc (Linux): VmRSS is
// all of it, including the spool file's mapped pages; RssAnon is the part
// a leak would grow (heap, stacks).
func procMem(pid int) (vmRSS, rssAnon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			vmRSS = v * 1024
		case "RssAnon:":
			rssAnon = v * 1024
		}
	}
	if vmRSS == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return vmRSS, rssAnon, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
