package service

import "strings"

// Paths are where relaybox looks when `relaybox service` gets no -config:
// the config file and the data directory the sample config names.
type Paths struct {
	Config  string
	DataDir string
}

// windowsPaths builds the Windows defaults from %ProgramData%. It is plain
// string work (not filepath, which uses the host's separator) so every OS
// can test it.
func windowsPaths(programData string) Paths {
	base := strings.TrimRight(programData, `\/`)
	if base == "" {
		base = `C:\ProgramData`
	}
	dir := base + `\relaybox`
	return Paths{Config: dir + `\relaybox.toml`, DataDir: dir + `\data`}
}
