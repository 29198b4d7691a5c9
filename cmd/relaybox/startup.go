package main

// Start-up failures as one line each: the thing, its address or path, the
// likely cause and what to do. They exit 1 (runtime), not 2: a port taken
// at boot may be free in ten seconds, and the unit restarts on 1 but not
// on 2.

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"syscall"

	"relaybox/internal/config"
	"relaybox/internal/spool"
)

// startError is a start-up failure that is not the config's fault.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }
func (e startError) Unwrap() error { return e.err }

// listenError explains a failed bind of addr, configured at key
// ("listen.smtp[0]"; fix names the setting to change, "listen.smtp").
func listenError(src config.Source, key, fix, addr string, err error) error {
	var msg string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		msg = fmt.Sprintf("another program already listens on %s: stop it (another relaybox, or a system MTA such as postfix or exim) or change %s", addr, fix)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrPermission):
		msg = fmt.Sprintf("no permission to listen on %s: ports below 1024 need root or CAP_NET_BIND_SERVICE (the service unit grants it), or change %s", addr, fix)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		msg = fmt.Sprintf("%s is not an address of this machine: bring its interface up or change %s", addr, fix)
	default:
		msg = fmt.Sprintf("cannot listen on %s: %v; check %s", addr, err, fix)
	}
	return startError{src.KeyError(key, explained{msg, err})}
}

// spoolError explains a spool that does not open.
func spoolError(src config.Source, path string, err error) error {
	var msg string
	switch {
	case errors.Is(err, spool.ErrLocked):
		msg = fmt.Sprintf("the spool %s is locked by another process: another relaybox already runs on this data_dir; stop it or give this one its own data_dir", path)
	case errors.Is(err, spool.ErrDamaged):
		msg = err.Error() // says how to inspect and move the file aside
	case errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrPermission):
		msg = fmt.Sprintf("cannot open the spool %s: permission denied: let the relaybox user write data_dir (chown) or change data_dir", path)
	case errors.Is(err, syscall.ENOTDIR):
		msg = fmt.Sprintf("cannot open the spool %s: a part of data_dir is a file, not a directory: move the file or change data_dir", path)
	case errors.Is(err, syscall.EROFS):
		msg = fmt.Sprintf("cannot open the spool %s: the file system is read-only: remount it read-write or change data_dir", path)
	case errors.Is(err, syscall.ENOSPC):
		msg = fmt.Sprintf("cannot open the spool %s: the disk is full: free space on it", path)
	default:
		msg = fmt.Sprintf("cannot open the spool %s: %v", path, err)
	}
	return startError{src.KeyError("data_dir", explained{msg, err})}
}

// explained is a cause put in words a technician can act on; the words
// replace the cause's text, errors.Is still finds the cause.
type explained struct {
	msg   string
	cause error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.cause }

// onceListener makes Close idempotent: a listener closed by a reload is
// closed again by the server's Shutdown, which would report the second
// close as an error.
type onceListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
