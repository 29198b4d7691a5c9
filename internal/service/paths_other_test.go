//go:build !linux && !windows

package service

import "testing"

func TestDefaultPathsOther(t *testing.T) {
	p := DefaultPaths()
	if p.Config != "/usr/local/etc/relaybox/relaybox.toml" || p.DataDir != "/var/db/relaybox" {
		t.Fatalf("DefaultPaths() = %+v", p)
	}
}
