package bbolt

// largePagePool keeps the buffers of multi-page nodes (a node larger than a
// page: large values, wide leaves) between write transactions, as
// DB.pagePool does for single pages, so that a store of large values does
// not allocate its own size in garbage at every commit. It holds at most
// DB.LargePagePoolSize bytes; a buffer that would take it past that is
// left to the garbage collector. Buffers are kept by page count and are zeroed before
// they are kept, for the reason single pages are: node.write and
// freelist.Write leave the tail of a node's last page as they find it, and
// Tx.write writes whole pages, so a reused buffer must not carry an earlier
// node's bytes to the disk.
//
// Only the writable transaction uses it (DB.allocate, Tx.write), under
// DB.rwlock, so it needs no lock of its own.
type largePagePool struct {
	held int // bytes in free
	free map[int][][]byte
}

// get returns a zeroed buffer of count pages of pageSize bytes.
func (lp *largePagePool) get(count, pageSize int) []byte {
	if bufs := lp.free[count]; len(bufs) > 0 {
		buf := bufs[len(bufs)-1]
		bufs[len(bufs)-1] = nil
		lp.free[count] = bufs[:len(bufs)-1]
		lp.held -= len(buf)
		return buf
	}
	return make([]byte, count*pageSize)
}

// put zeroes buf, a buffer of count pages from get that nothing refers to
// any longer, and keeps it if that keeps the pool within limit bytes.
func (lp *largePagePool) put(buf []byte, count, limit int) {
	if lp.held+len(buf) > limit {
		return
	}
	clear(buf)
	if lp.free == nil {
		lp.free = make(map[int][][]byte)
	}
	lp.free[count] = append(lp.free[count], buf)
	lp.held += len(buf)
}
