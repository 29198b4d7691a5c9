package service

import "os"

// DefaultPaths are under %ProgramData%\relaybox, which services can write
// and ordinary users cannot change once PrepareDataDir has set its ACL.
func DefaultPaths() Paths { return windowsPaths(os.Getenv("ProgramData")) }

// DefaultUser is "": the service runs as LocalSystem, which needs no
// password and may bind port 25.
func DefaultUser() string { return "" }

// dependencies: start after the TCP/IP stack.
func dependencies() []string { return []string{"Tcpip"} }
