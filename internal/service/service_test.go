package service

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"runtime"
	"strings"
	"testing"

	ks "github.com/kardianos/service"
)

func testOptions() Options {
	return Options{
		Executable: "/usr/local/bin/relaybox",
		ConfigPath: "/etc/relaybox/relaybox.toml",
		DataDir:    "/var/lib/relaybox",
		User:       "relaybox",
	}
}

func TestConfig(t *testing.T) {
	c, err := Config(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "relaybox" || c.Executable != "/usr/local/bin/relaybox" || c.UserName != "relaybox" {
		t.Fatalf("Name/Executable/UserName = %q %q %q", c.Name, c.Executable, c.UserName)
	}
	if want := []string{"run", "-config", "/etc/relaybox/relaybox.toml"}; !reflect.DeepEqual(c.Arguments, want) {
		t.Fatalf("Arguments = %q; want %q", c.Arguments, want)
	}
	unit, _ := SystemdUnit(testOptions())
	if c.Option["SystemdScript"] != unit {
		t.Fatal("the systemd unit handed to kardianos is not SystemdUnit's")
	}
	if c.Option["OnFailure"] != "restart" || c.Option["StartType"] != "automatic" {
		t.Fatalf("Windows recovery options = %v", c.Option)
	}
	wantDeps := []string(nil)
	if runtime.GOOS == "windows" {
		wantDeps = []string{"Tcpip"}
	}
	if !reflect.DeepEqual(c.Dependencies, wantDeps) {
		t.Fatalf("Dependencies = %q; want %q", c.Dependencies, wantDeps)
	}
}

func TestConfigRefusesRelativeOrTemplatePaths(t *testing.T) {
	for _, mut := range []func(*Options){
		func(o *Options) { o.ConfigPath = "relaybox.toml" },
		func(o *Options) { o.Executable = "" },
		func(o *Options) { o.DataDir = "data" },
		func(o *Options) { o.ConfigPath = "/etc/{{Name}}/x.toml" },
	} {
		o := testOptions()
		mut(&o)
		if _, err := Config(o); err == nil || !strings.HasPrefix(err.Error(), "service: ") {
			t.Errorf("Config(%+v) = %v; want a service: error", o, err)
		}
	}
}

// fakeManager records calls and answers with the configured error/status.
type fakeManager struct {
	calls  []string
	err    error
	status ks.Status
}

func (f *fakeManager) call(name string) error { f.calls = append(f.calls, name); return f.err }
func (f *fakeManager) Install() error         { return f.call("Install") }
func (f *fakeManager) Uninstall() error       { return f.call("Uninstall") }
func (f *fakeManager) Start() error           { return f.call("Start") }
func (f *fakeManager) Stop() error            { return f.call("Stop") }
func (f *fakeManager) Restart() error         { return f.call("Restart") }
func (f *fakeManager) Platform() string       { return "fake-systemd" }
func (f *fakeManager) Status() (ks.Status, error) {
	return f.status, f.call("Status")
}

func TestControlCallsTheManager(t *testing.T) {
	tests := []struct {
		action, call, msg string
	}{
		{"install", "Install", "installed service relaybox (fake-systemd): /usr/local/bin/relaybox run -config /etc/relaybox/relaybox.toml"},
		{"uninstall", "Uninstall", "removed service relaybox; the config and the spool are kept"},
		{"start", "Start", "service relaybox: start done"},
		{"stop", "Stop", "service relaybox: stop done"},
		{"restart", "Restart", "service relaybox: restart done"},
	}
	for _, tt := range tests {
		f := &fakeManager{}
		msg, err := Control(f, tt.action, testOptions())
		if err != nil || !strings.HasPrefix(msg, tt.msg) {
			t.Errorf("%s: %q, %v; want %q", tt.action, msg, err, tt.msg)
		}
		if !reflect.DeepEqual(f.calls, []string{tt.call}) {
			t.Errorf("%s called %v; want [%s]", tt.action, f.calls, tt.call)
		}
	}
	if _, err := Control(&fakeManager{}, "reload", testOptions()); err == nil || !strings.Contains(err.Error(), `unknown action "reload"`) {
		t.Errorf("unknown action: %v", err)
	}
}

func TestControlStatus(t *testing.T) {
	msg, err := Control(&fakeManager{status: ks.StatusRunning}, "status", testOptions())
	if err != nil || msg != "service relaybox: running" {
		t.Errorf("running: %q %v", msg, err)
	}
	if _, err := Control(&fakeManager{status: ks.StatusStopped}, "status", testOptions()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stopped: %v; want ErrNotRunning (non-zero exit for scripts)", err)
	}
	_, err = Control(&fakeManager{err: ks.ErrNotInstalled}, "status", testOptions())
	if err == nil || !strings.Contains(err.Error(), "not installed; install it with `relaybox service install") {
		t.Errorf("not installed: %v", err)
	}
}

func TestControlErrorHints(t *testing.T) {
	perm := &fs.PathError{Op: "open", Path: "/etc/systemd/system/relaybox.service", Err: fs.ErrPermission}
	_, err := Control(&fakeManager{err: perm}, "install", testOptions())
	wantHint := "run it as root"
	if runtime.GOOS == "windows" {
		wantHint = "elevated prompt"
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), wantHint) {
		t.Errorf("permission: %v; want the cause kept and %q", err, wantHint)
	}
	exists := fmt.Errorf("Init already exists: /etc/systemd/system/relaybox.service")
	if _, err := Control(&fakeManager{err: exists}, "install", testOptions()); err == nil || !strings.Contains(err.Error(), "uninstall` first") {
		t.Errorf("already installed: %v", err)
	}
	if _, err := Control(&fakeManager{err: errors.New("boom")}, "stop", testOptions()); err == nil || err.Error() != "service: stop: boom" {
		t.Errorf("plain error: %v", err)
	}
}

func TestProgramCallsStartAndStop(t *testing.T) {
	var got []string
	p := program{
		start: func() error { got = append(got, "start"); return nil },
		stop:  func() error { got = append(got, "stop"); return errors.New("spool close") },
	}
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err == nil || err.Error() != "spool close" {
		t.Fatalf("Stop = %v; want the daemon's shutdown error", err)
	}
	if !reflect.DeepEqual(got, []string{"start", "stop"}) {
		t.Fatalf("calls %v", got)
	}
	if (program{}).Start(nil) != nil || (program{}).Stop(nil) != nil {
		t.Fatal("a control-only program must do nothing")
	}
}
