// Package systemd speaks the two small protocols relaybox needs from
// systemd, without a dependency: sd_notify (READY=1, STOPPING=1,
// WATCHDOG=1 on the datagram socket named by NOTIFY_SOCKET) and journald's
// syslog priority prefix ("<4>" before a warning) on a stderr that is a
// journal stream. Outside systemd every call is a cheap no-op.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Notify states (sd_notify(3)).
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends states to the service manager. The zero value and a nil
// *Notifier send nothing: not started by systemd with Type=notify.
type Notifier struct {
	addr *net.UnixAddr
}

// NewNotifier reads NOTIFY_SOCKET through getenv (os.Getenv in the daemon,
// a map in tests). It returns nil when the variable is unset.
func NewNotifier(getenv func(string) string) *Notifier {
	name := getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	// A leading '@' names a socket in the abstract namespace (Linux).
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Notify sends one or more states, newline-separated, in one datagram.
func (n *Notifier) Notify(states ...string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	msg := ""
	for i, s := range states {
		if i > 0 {
			msg += "\n"
		}
		msg += s
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("systemd: notify socket %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("systemd: notify %q: %w", msg, err)
	}
	return nil
}

// WatchdogInterval is how often WATCHDOG=1 must reach systemd, from
// WATCHDOG_USEC (WatchdogSec= in the unit), when it is meant for pid
// (WATCHDOG_PID unset or equal). ok is false when no watchdog is asked for.
func WatchdogInterval(getenv func(string) string, pid int) (d time.Duration, ok bool, err error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, errors.New("systemd: WATCHDOG_USEC=" + usec + " is not a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, true, nil
}
