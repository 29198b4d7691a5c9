package service

import "testing"

func TestWindowsPaths(t *testing.T) {
	for _, tt := range []struct{ programData, config, data string }{
		{`C:\ProgramData`, `C:\ProgramData\relaybox\relaybox.toml`, `C:\ProgramData\relaybox\data`},
		{`D:\Data\`, `D:\Data\relaybox\relaybox.toml`, `D:\Data\relaybox\data`},
		{"", `C:\ProgramData\relaybox\relaybox.toml`, `C:\ProgramData\relaybox\data`}, // variable missing
	} {
		p := windowsPaths(tt.programData)
		if p.Config != tt.config || p.DataDir != tt.data {
			t.Errorf("windowsPaths(%q) = %+v; want %s, %s", tt.programData, p, tt.config, tt.data)
		}
	}
}
