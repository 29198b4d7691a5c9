package bbolt

// largePagePool keeps the buffers of multi-page nodes (a node larger than a
// page: large values, wide leaves) between write transactions, as
// DB.pagePool does for single pages, so that a store of large values does
// not allocate its own size in garbage at every commit. It holds at most
// DB.LargePagePoolSize bytes (put says which buffers it keeps). Buffers
// are kept by page count and are zeroed before they are kept, for the
// reason single pages are: node.write and freelist.Write leave the tail of
// a node's last page as they find it, and Tx.write writes whole pages, so
// a reused buffer must not carry an earlier node's bytes to the disk.
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
// any longer, and keeps it within limit bytes. To make room it drops kept
// buffers of other page counts: the pool follows the sizes the commits
// use now, rather than keeping an odd size it saw once (with values of
// many sizes, most counts never come back).
func (lp *largePagePool) put(buf []byte, count, limit int) {
	if len(buf) > limit {
		return
	}
	for n, bufs := range lp.free {
		if lp.held+len(buf) <= limit {
			break
		}
		if n == count {
			continue
		}
		for len(bufs) > 0 && lp.held+len(buf) > limit {
			lp.held -= len(bufs[len(bufs)-1])
			bufs[len(bufs)-1] = nil
			bufs = bufs[:len(bufs)-1]
		}
		if len(bufs) == 0 {
			delete(lp.free, n)
		} else {
			lp.free[n] = bufs
		}
	}
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
