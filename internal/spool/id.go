package spool

import (
	"sync"
	"time"
)

// Queue IDs are a 64-bit number, milliseconds since the Unix epoch in the
// top 42 bits (enough until the year 2109) and a counter in the low 22,
// written as 13 characters of Crockford base32. The alphabet is in ASCII
// order, so IDs sort as strings in the order they were made, and it has no
// I, L, O or U, so an ID read aloud or copied from a log is hard to get wrong.
const (
	idLen      = 13
	idSeqBits  = 22
	idMaxMilli = 1<<(64-idSeqBits) - 1
	crockford  = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// idGen makes unique, increasing IDs. It never goes backwards, even when
// the clock does: last is restored from the spool at Open.
type idGen struct {
	mu   sync.Mutex
	last uint64
}

func (g *idGen) next(now time.Time) string {
	ms := now.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	if ms > idMaxMilli {
		ms = idMaxMilli
	}
	v := uint64(ms) << idSeqBits
	g.mu.Lock()
	if v <= g.last {
		// Same millisecond (or the clock stepped back): count on from the
		// last ID; past 2^22 in one millisecond this borrows the next one.
		v = g.last + 1
	}
	g.last = v
	g.mu.Unlock()
	return encodeID(v)
}

// seen raises the generator past an ID found in the spool.
func (g *idGen) seen(id string) {
	v, ok := decodeID(id)
	if !ok {
		return
	}
	g.mu.Lock()
	if v > g.last {
		g.last = v
	}
	g.mu.Unlock()
}

func encodeID(v uint64) string {
	var b [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		b[i] = crockford[v&31]
		v >>= 5
	}
	return string(b[:])
}

func decodeID(s string) (uint64, bool) {
	if len(s) != idLen {
		return 0, false
	}
	var v uint64
	for i := 0; i < idLen; i++ {
		d := -1
		for j := 0; j < len(crockford); j++ {
			if crockford[j] == s[i] {
				d = j
				break
			}
		}
		if d < 0 || (i == 0 && d > 15) {
			// 13*5 = 65 bits: the first character carries only 4.
			return 0, false
		}
		v = v<<5 | uint64(d)
	}
	return v, true
}

// validID reports whether s looks like an ID this package made. Lookups
// check it first so a hostile ID from the admin API never reaches a key.
func validID(s string) bool {
	_, ok := decodeID(s)
	return ok
}
