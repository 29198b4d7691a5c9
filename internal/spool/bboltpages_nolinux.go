//go:build !linux

package spool

import "os"

// dropCached and noReadahead are no-ops outside Linux: the folio
// accounting they work around (bboltpages.go) is Linux's.
func dropCached(f *os.File, off, n int64) {}
func noReadahead(f *os.File)              {}
