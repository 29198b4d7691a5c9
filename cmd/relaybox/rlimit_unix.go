//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft limit on open files to the hard one: every
// client, refused or not, holds a descriptor until it is closed, and the
// common soft limit of 1024 is reached by a burst of refused clients long
// before memory is. The Go runtime does this at start on most Unix systems
// too; doing it here as well makes it certain and gives the figure to log.
func raiseFileLimit() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(r.Cur), uint64(r.Max), err
		}
		r = want
	}
	return uint64(r.Cur), uint64(r.Max), nil
}
