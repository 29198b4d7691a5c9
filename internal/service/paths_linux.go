package service

import "os/user"

// DefaultPaths are the FHS places: config in /etc, state in /var/lib.
func DefaultPaths() Paths {
	return Paths{Config: "/etc/relaybox/relaybox.toml", DataDir: "/var/lib/relaybox"}
}

// DefaultUser is "relaybox" when that system user exists (board/rpi/install.sh
// creates it), else "" and the unit runs as a capability-stripped root.
func DefaultUser() string {
	if _, err := user.Lookup(Name); err == nil {
		return Name
	}
	return ""
}

// dependencies are kardianos Dependencies; on Linux the unit text carries
// its own ordering, so none.
func dependencies() []string { return nil }
