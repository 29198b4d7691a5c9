package service

import "testing"

func TestDefaultPathsWindows(t *testing.T) {
	t.Setenv("ProgramData", `E:\PD`)
	p := DefaultPaths()
	if p.Config != `E:\PD\relaybox\relaybox.toml` || p.DataDir != `E:\PD\relaybox\data` {
		t.Fatalf("DefaultPaths() = %+v", p)
	}
	if DefaultUser() != "" {
		t.Fatal("the Windows service runs as LocalSystem")
	}
}
