package main

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"relaybox/internal/config"
)

// Each bind failure reads as its likely cause and the setting to change,
// exits 1 (startError, not usageError) and keeps the errno for errors.Is.
func TestListenErrorHints(t *testing.T) {
	sysErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
	}
	odd := errors.New("odd")
	for _, tt := range []struct {
		err   error
		cause error
		want  string
	}{
		{sysErr(syscall.EADDRINUSE), syscall.EADDRINUSE, "another program already listens on 0.0.0.0:25: stop it"},
		{sysErr(syscall.EACCES), syscall.EACCES, "no permission to listen on 0.0.0.0:25: ports below 1024 need root or CAP_NET_BIND_SERVICE"},
		{sysErr(syscall.EADDRNOTAVAIL), syscall.EADDRNOTAVAIL, "0.0.0.0:25 is not an address of this machine"},
		{odd, odd, "cannot listen on 0.0.0.0:25: odd; check listen.smtp"},
	} {
		err := listenError(config.Source{}, "listen.smtp[0]", "listen.smtp", "0.0.0.0:25", tt.err)
		var se startError
		var ue usageError
		if !errors.As(err, &se) || errors.As(err, &ue) {
			t.Errorf("%v: not a runtime start-up error", err)
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "listen.smtp") || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %q, want one line with %q", err, tt.want)
		}
		if !errors.Is(err, tt.cause) {
			t.Errorf("cause lost: %v", err)
		}
	}
	// A real address that is not this machine's (TEST-NET-1).
	if _, err := net.Listen("tcp", "192.0.2.1:0"); err != nil {
		got := listenError(config.Source{}, "listen.smtp[0]", "listen.smtp", "192.0.2.1:0", err)
		if !strings.Contains(got.Error(), "is not an address of this machine") {
			t.Errorf("real EADDRNOTAVAIL: %v", got)
		}
	}
}

// restartNeeded names the keys a reload cannot apply, and only those.
func TestRestartNeeded(t *testing.T) {
	old := config.Default()
	next := config.Default()
	next.Policy.RecipientDomains = []string{"campus.test"}
	next.Listen.SMTP = []string{"127.0.0.1:2626"}
	next.Listen.PerClientRate = 5
	next.Log.Level = "debug"
	next.Upstream = []config.Upstream{{Address: "smtp.campus.test:587"}}
	if got := restartNeeded(old, next); len(got) != 0 {
		t.Fatalf("reloadable changes reported as needing a restart: %v", got)
	}
	next.Hostname = "other"
	next.Admin.Listen = "127.0.0.1:9999"
	next.Listen.MaxMessageSize *= 2
	next.Console.Device = "/dev/ttyUSB0"
	got := strings.Join(restartNeeded(old, next), ",")
	if got != "hostname,listen.max_message_size,admin.listen,console" {
		t.Fatalf("restartNeeded = %s", got)
	}
}
