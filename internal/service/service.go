// Package service installs and controls relaybox as an OS service (systemd
// on Linux, the Service Control Manager on Windows) through
// github.com/kardianos/service, and runs the daemon under that manager.
package service

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	ks "github.com/kardianos/service"
)

// Name is the service's name: the systemd unit relaybox.service, the
// Windows service "relaybox".
const Name = "relaybox"

// Actions returns the words Control understands, in usage order.
func Actions() []string {
	return []string{"install", "uninstall", "start", "stop", "restart", "status"}
}

// Options describe the installed service. Every path is absolute: a
// service starts in / (or C:\Windows\System32), where a relative path
// would find nothing.
type Options struct {
	Executable    string        // the relaybox binary
	ConfigPath    string        // relaybox.toml, passed as run -config
	DataDir       string        // the spool's directory: the only place the hardened unit may write
	User          string        // run as this account; "" = root (limited to CAP_NET_BIND_SERVICE) / LocalSystem
	ShutdownGrace time.Duration // listen.shutdown_grace; the manager waits this plus a margin on stop
}

// stopMargin is added to the shutdown grace for closing delivery and the
// spool after the listeners have drained.
const stopMargin = 30 * time.Second

func (o Options) check() error {
	for _, p := range []struct{ name, v string }{
		{"executable", o.Executable}, {"config", o.ConfigPath}, {"data_dir", o.DataDir},
	} {
		if p.v == "" || !filepath.IsAbs(p.v) {
			return fmt.Errorf("service: %s path %q must be absolute", p.name, p.v)
		}
		// kardianos renders the unit through a template engine; "{{" would be read as an action.
		if strings.Contains(p.v, "{{") {
			return fmt.Errorf("service: %s path %q must not contain \"{{\"", p.name, p.v)
		}
	}
	return nil
}

// Config is the kardianos configuration for o: the service runs
// `<Executable> run -config <ConfigPath>`, restarts on failure, and on
// systemd uses the hardened unit from SystemdUnit.
func Config(o Options) (*ks.Config, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	unit, err := SystemdUnit(o)
	if err != nil {
		return nil, err
	}
	return &ks.Config{
		Name:         Name,
		DisplayName:  "relaybox SMTP relay",
		Description:  "Store-and-forward SMTP relay for LAN devices (printers, scanners, instruments).",
		Executable:   o.Executable,
		Arguments:    []string{"run", "-config", o.ConfigPath},
		UserName:     o.User,
		Dependencies: dependencies(),
		Option: ks.KeyValue{
			"SystemdScript": unit, // our reviewed unit replaces kardianos's default
			// Windows service recovery: restart 5s after a crash; the
			// failure count resets after a quiet day.
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "5s",
			"OnFailureResetPeriod":   24 * 60 * 60,
			"StartType":              "automatic",
		},
	}, nil
}

// New returns the OS service for o, for Control.
func New(o Options) (ks.Service, error) {
	c, err := Config(o)
	if err != nil {
		return nil, err
	}
	s, err := ks.New(program{}, c)
	if err != nil {
		return nil, fmt.Errorf("service: %w%s", err, managerHint(err))
	}
	return s, nil
}

// Manager is the part of a kardianos Service that Control drives; tests
// pass a fake.
type Manager interface {
	Install() error
	Uninstall() error
	Start() error
	Stop() error
	Restart() error
	Status() (ks.Status, error)
	Platform() string
}

// ErrNotRunning is returned by Control("status") when the service is
// installed but stopped, so scripts see a non-zero exit.
var ErrNotRunning = errors.New("service: relaybox is installed but not running; start it with `relaybox service start`")

// Control performs action on m and returns the sentence to print.
func Control(m Manager, action string, o Options) (string, error) {
	var err error
	switch action {
	case "install":
		if err = m.Install(); err == nil {
			return fmt.Sprintf("installed service %s (%s): %s run -config %s\nstart it with: relaybox service start",
				Name, m.Platform(), o.Executable, o.ConfigPath), nil
		}
	case "uninstall":
		if err = m.Uninstall(); err == nil {
			return fmt.Sprintf("removed service %s; the config and the spool are kept", Name), nil
		}
	case "start", "stop", "restart":
		switch action {
		case "start":
			err = m.Start()
		case "stop":
			err = m.Stop()
		default:
			err = m.Restart()
		}
		if err == nil {
			return fmt.Sprintf("service %s: %s done", Name, action), nil
		}
	case "status":
		st, serr := m.Status()
		switch {
		case errors.Is(serr, ks.ErrNotInstalled):
			return "", fmt.Errorf("service: %s is not installed; install it with `relaybox service install -config FILE`", Name)
		case serr != nil:
			err = serr
		case st == ks.StatusRunning:
			return fmt.Sprintf("service %s: running", Name), nil
		case st == ks.StatusStopped:
			return "", ErrNotRunning
		default:
			return "", fmt.Errorf("service: %s: status unknown", Name)
		}
	default:
		return "", fmt.Errorf("service: unknown action %q; want one of %s", action, strings.Join(Actions(), ", "))
	}
	return "", fmt.Errorf("service: %s: %w%s", action, err, controlHint(action, err))
}

// controlHint says what to do next for the errors people actually meet.
func controlHint(action string, err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, fs.ErrPermission) || strings.Contains(msg, "access is denied") || strings.Contains(msg, "permission denied"):
		if runtime.GOOS == "windows" {
			return " (run it from an elevated prompt: Run as administrator)"
		}
		return " (run it as root, e.g. with sudo)"
	case action == "install" && strings.Contains(msg, "exists"):
		return " (already installed: run `relaybox service uninstall` first to reinstall with new paths)"
	case errors.Is(err, ks.ErrNotInstalled) || strings.Contains(msg, "not installed") || strings.Contains(msg, "does not exist"):
		return " (not installed: run `relaybox service install -config FILE`)"
	}
	return ""
}

func managerHint(err error) string {
	if errors.Is(err, ks.ErrNoServiceSystemDetected) {
		return " (relaybox installs itself under systemd or the Windows Service Control Manager; elsewhere run `relaybox run` from your init system)"
	}
	return ""
}

// program adapts two funcs to kardianos's Interface.
type program struct{ start, stop func() error }

// Start implements ks.Interface.
func (p program) Start(ks.Service) error {
	if p.start == nil {
		return nil // a control-only service object never runs
	}
	return p.start()
}

// Stop implements ks.Interface.
func (p program) Stop(ks.Service) error {
	if p.stop == nil {
		return nil
	}
	return p.stop()
}

// Interactive reports whether relaybox runs from a terminal (or a test, or
// a container) rather than under the OS service manager.
func Interactive() bool { return ks.Interactive() }

// RunService runs the daemon under the OS service manager: start is called
// when the manager starts the service and must return once the daemon is
// up (an error fails the start); stop is called when the manager (or, under
// systemd, SIGTERM) stops it, and RunService returns after stop has. Call it
// from `relaybox run` when Interactive is false: the Windows SCM kills a
// service binary that does not answer it.
func RunService(start, stop func() error) error {
	s, err := ks.New(program{start: start, stop: stop}, &ks.Config{Name: Name})
	if err != nil {
		return fmt.Errorf("service: %w%s", err, managerHint(err))
	}
	if err := s.Run(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}
