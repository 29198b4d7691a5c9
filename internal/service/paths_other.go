//go:build !linux && !windows

package service

// DefaultPaths on the BSDs and macOS follow their ports' layout.
func DefaultPaths() Paths {
	return Paths{Config: "/usr/local/etc/relaybox/relaybox.toml", DataDir: "/var/db/relaybox"}
}

// DefaultUser is "": the service manager decides.
func DefaultUser() string { return "" }

func dependencies() []string { return nil }
