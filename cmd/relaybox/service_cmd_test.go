package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"reload"},
		{"install", "extra"},
		{"-config"},
		{"-nope", "status"},
	} {
		var out, errb bytes.Buffer
		err := cmdService(args, &out, &errb)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("service %q = %v; want a usage error (exit 2)", args, err)
		}
	}
	err := cmdService([]string{"reload"}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "install|uninstall|start|stop|restart|status|unit") {
		t.Errorf("unknown action should list the actions: %v", err)
	}
}

// relTo returns p relative to the working directory, to prove the command
// makes paths absolute without the test changing directory.
func relTo(t *testing.T, p string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, p)
	if err != nil || filepath.IsAbs(rel) {
		t.Skipf("no relative path from %s to %s", wd, p)
	}
	return rel
}

func TestServiceRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "relaybox.toml")
	if err := os.WriteFile(bad, []byte("[listen]\nmax_mesage_size = \"10MiB\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ action, path string }{
		{"install", bad},
		{"unit", bad},
		{"install", filepath.Join(dir, "missing.toml")},
	} {
		err := cmdService([]string{tt.action, "-config", tt.path}, new(bytes.Buffer), new(bytes.Buffer))
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "refusing to "+tt.action) {
			t.Errorf("%s %s = %v; want a usage error refusing to %s", tt.action, tt.path, err, tt.action)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "relaybox-data")); !os.IsNotExist(err) {
		t.Error("a refused install must not create the data dir")
	}
}

// `service unit` runs the same path as install up to the service manager:
// flags after the action, a relative -config made absolute, data_dir from
// the config (relative to the config file), the binary's own path.
func TestServiceUnitUsesAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relaybox.toml")
	if err := os.WriteFile(cfg, []byte("data_dir = \"spool\"\n[listen]\nshutdown_grace = \"10s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdService([]string{"unit", "-config", relTo(t, cfg)}, &out, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ = filepath.EvalSymlinks(exe)
	unit := out.String()
	for _, want := range []string{
		"\nExecStart=" + exe + " run -config " + cfg + "\n",
		"\nReadWritePaths=" + filepath.Join(dir, "spool") + "\n",
		"\nTimeoutStopSec=40\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", strings.TrimSpace(want), unit)
		}
	}
}

func TestServiceOptionsDefaultConfig(t *testing.T) {
	o, err := serviceOptions("status", "")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(o.ConfigPath) || !filepath.IsAbs(o.Executable) || !filepath.IsAbs(o.DataDir) {
		t.Fatalf("status options %+v; want absolute default paths", o)
	}
}
