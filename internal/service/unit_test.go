package service

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite board/linux/relaybox.service from SystemdUnit")

func TestSystemdUnit(t *testing.T) {
	o := testOptions()
	o.ShutdownGrace = 45 * time.Second
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/local/bin/relaybox run -config /etc/relaybox/relaybox.toml\n",
		"\nUser=relaybox\n",
		"\nRestart=on-failure\n",
		"\nRestartPreventExitStatus=2\n",
		"\nType=notify\n",
		"\nNotifyAccess=main\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n",
		"\nWatchdogSec=2min\n",
		"\nWatchdogSignal=SIGKILL\n",
		"\nTimeoutStopSec=75\n",
		"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
		"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nNoNewPrivileges=yes\n",
		"\nProtectSystem=strict\n",
		"\nReadWritePaths=/var/lib/relaybox\n",
		"\nPrivateTmp=yes\n",
		"\nProtectHome=yes\n",
		"\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	for _, bad := range []string{"\nPrivateDevices", "\nProtectClock", "{{"} {
		if strings.Contains(unit, bad) {
			t.Errorf("unit has %q", strings.TrimSpace(bad))
		}
	}
}

func TestSystemdUnitWithoutUser(t *testing.T) {
	o := testOptions()
	o.User = ""
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(unit, "\nUser=") || !strings.Contains(unit, "No relaybox user existed") {
		t.Fatalf("without a user the unit must run as root and say so:\n%s", unit)
	}
	if !strings.Contains(unit, "\nTimeoutStopSec=60\n") {
		t.Fatal("zero grace must default to 30s + margin")
	}
}

func TestSystemdUnitQuoting(t *testing.T) {
	o := testOptions()
	o.Executable = "/opt/relay box/relaybox"
	o.ConfigPath = `/etc/relay"box/100%.toml`
	unit, err := SystemdUnit(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `ExecStart="/opt/relay box/relaybox" run -config "/etc/relay\"box/100%%.toml"`
	if !strings.Contains(unit, want+"\n") {
		t.Fatalf("unit lacks %s:\n%s", want, unit)
	}
	o = testOptions()
	o.DataDir = "/srv/relay box"
	if _, err := SystemdUnit(o); err == nil || !strings.Contains(err.Error(), "must not contain spaces") {
		t.Fatalf("data dir with a space: %v", err)
	}
}

// board/linux/relaybox.service is what people install by hand, and
// packaging/deb/relaybox.service what the .deb ships: each must be exactly
// what `relaybox service install` / `service unit` writes for its paths.
func TestBoardUnitMatchesGenerated(t *testing.T) {
	for _, c := range []struct{ exe, file string }{
		{"/usr/local/bin/relaybox", filepath.Join("..", "..", "board", "linux", "relaybox.service")},
		{"/usr/bin/relaybox", filepath.Join("..", "..", "packaging", "deb", "relaybox.service")},
	} {
		o := Options{
			Executable:    c.exe,
			ConfigPath:    "/etc/relaybox/relaybox.toml",
			DataDir:       "/var/lib/relaybox",
			User:          "relaybox",
			ShutdownGrace: 30 * time.Second,
		}
		unit, err := SystemdUnit(o)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(c.file, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != unit {
			t.Errorf("%s differs from SystemdUnit; review the change, then run go test ./internal/service -run BoardUnit -update", c.file)
		}
	}
}
