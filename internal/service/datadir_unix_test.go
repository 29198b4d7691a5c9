//go:build !windows

package service

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestPrepareDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "relaybox")
	if err := PrepareDataDir(dir, ""); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("new data dir mode %v; want 0700", m)
	}
	// An existing, too open directory is tightened: it holds other people's mail.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spool.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Skipf("no current user: %v", err)
	}
	// Handing it to ourselves needs no root and walks the same code.
	if err := PrepareDataDir(dir, me.Username); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("existing data dir mode %v; want 0700", m)
	}
	if err := PrepareDataDir(dir, "no-such-user-relaybox-test"); err == nil {
		t.Fatal("an unknown owner must be an error")
	}
}
