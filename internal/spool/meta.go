package spool

import (
	"encoding/binary"
	"hash/fnv"
	"os"
)

// bbolt's meta page (go.etcd.io/bbolt/internal/common/meta.go, part of its
// stable file format): after the 16-byte page header, {magic, version,
// pageSize, flags u32; root {pgid, sequence u64}; freelist, pgid, txid,
// checksum u64}, the checksum being FNV-64a of the fields before it. Pages
// 0 and 1 hold the two alternating copies; the valid one with the higher
// txid is current. bbolt does not say, before it has built the freelist,
// whether the file holds one; openDB needs to know beforehand.
const (
	metaMagic      = 0xED0CDAED
	metaOffset     = pageHeaderSize
	metaChecksumAt = 56 // bytes of meta covered by the checksum
	noFreelist     = ^uint64(0)
)

// freelistSynced reports whether the current meta page of the bbolt file at
// path names a saved freelist (Close leaves one: syncFreelist). Any doubt
// (unreadable, garbled) answers false: the careful way.
func freelistSynced(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var best struct {
		ok             bool
		txid, freelist uint64
	}
	pageSize := int64(0)
	for i := range 2 {
		var buf [metaOffset + metaChecksumAt + 8]byte
		if _, err := f.ReadAt(buf[:], int64(i)*pageSize); err != nil {
			return false
		}
		m := buf[metaOffset:]
		ne := binary.NativeEndian
		h := fnv.New64a()
		h.Write(m[:metaChecksumAt])
		valid := ne.Uint32(m[0:]) == metaMagic && h.Sum64() == ne.Uint64(m[metaChecksumAt:])
		if i == 0 {
			if !valid {
				return false // the page size is only known from page 0
			}
			pageSize = int64(ne.Uint32(m[8:]))
		}
		if txid := ne.Uint64(m[48:]); valid && (!best.ok || txid > best.txid) {
			best.ok, best.txid, best.freelist = true, txid, ne.Uint64(m[32:])
		}
	}
	return best.ok && best.freelist != noFreelist
}
