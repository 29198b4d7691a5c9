package smtpd

import (
	"crypto/sha256"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// dupTracker notices a device sending the same message over and over (a
// copier stuck in a resend loop): the same client, sender, recipients and
// body. Past max copies within window, the repeats are held in the spool
// instead of burying the campus relay. Only identical content counts
// (DESIGN.md), so the body hash covers everything the device sent, its own
// Date and Message-ID included, and none of the headers the relay adds.
type dupTracker struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen sweptMap[dupKey, dupEntry]
}

type dupKey [sha256.Size]byte

type dupEntry struct {
	recent []time.Time // the newest copies, at most max, oldest first
	copies int         // copies in this run: none was more than window apart
	since  time.Time   // when this run started
}

func newDupTracker(max int, window time.Duration, now func() time.Time) *dupTracker {
	if max <= 0 || window <= 0 {
		return nil
	}
	d := &dupTracker{max: max, window: window, now: now}
	// A content with no copy left in the window is as if never seen.
	d.seen = newSweptMap[dupKey](func(e *dupEntry, now time.Time) bool {
		e.prune(now, d.window)
		return len(e.recent) == 0
	})
	return d
}

// dupKeyOf identifies one message's content as the device sent it.
func dupKeyOf(client netip.Addr, device, from string, rcpts []string, body [sha256.Size]byte) dupKey {
	h := sha256.New()
	sorted := slices.Sorted(slices.Values(rcpts))
	for _, s := range append([]string{client.String(), device, from}, sorted...) {
		h.Write([]byte(s))
		h.Write([]byte{0}) // no address holds a NUL, so fields cannot run together
	}
	h.Write(body[:])
	var k dupKey
	h.Sum(k[:0])
	return k
}

// dupVerdict is what record decided about one stored message.
type dupVerdict struct {
	hold  bool
	copy  int       // this message is copy number copy of its run
	since time.Time // when the run started
}

// record notes one stored message and says whether to hold it: it is held
// when max copies already came within the window before it. Held copies
// count too, so a device that keeps sending stays held.
func (d *dupTracker) record(k dupKey) dupVerdict {
	if d == nil {
		return dupVerdict{copy: 1}
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e, _ := d.seen.get(k, now)
	e.prune(now, d.window)
	if len(e.recent) == 0 { // a new key, or a quiet window: a new run
		e.copies, e.since = 0, now
	}
	e.copies++
	v := dupVerdict{hold: len(e.recent) >= d.max, copy: e.copies, since: e.since}
	if len(e.recent) == d.max {
		e.recent = append(e.recent[:0], e.recent[1:]...)
	}
	e.recent = append(e.recent, now)
	return v
}

// prune drops copies older than the window.
func (e *dupEntry) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(e.recent) && now.Sub(e.recent[i]) >= window {
		i++
	}
	e.recent = append(e.recent[:0], e.recent[i:]...)
}
