//go:build !unix

package main

// raiseFileLimit: Windows has no per-process descriptor limit to raise
// (sockets are handles, bounded by memory).
func raiseFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }
