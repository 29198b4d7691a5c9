package service

import "testing"

func TestDefaultPathsLinux(t *testing.T) {
	p := DefaultPaths()
	if p.Config != "/etc/relaybox/relaybox.toml" || p.DataDir != "/var/lib/relaybox" {
		t.Fatalf("DefaultPaths() = %+v", p)
	}
	if len(dependencies()) != 0 {
		t.Fatal("on Linux the unit text carries the ordering; kardianos must add none")
	}
}
