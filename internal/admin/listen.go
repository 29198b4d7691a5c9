package admin

import (
	"fmt"
	"net"
	"os"
	"strings"

	"relaybox/internal/config"
)

// Listen opens the admin listener on addr (admin.listen) and reads the
// password from passwordFile (admin.password_file, "" = none). It refuses
// an address reachable from the LAN without a password: the API can delete
// mail, so it is never open to the network. Config validation says the
// same; this is the last line of defence.
func Listen(addr, passwordFile string) (net.Listener, string, error) {
	pass := ""
	if passwordFile != "" {
		var err error
		if pass, err = ReadPassword(passwordFile); err != nil {
			return nil, "", err
		}
	}
	if pass == "" && !config.IsLoopback(addr) {
		return nil, "", fmt.Errorf("admin: admin.listen %s is reachable from the LAN; set admin.password_file (or listen on 127.0.0.1)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("admin: admin.listen %s: %w", addr, err)
	}
	return &limitListener{Listener: l, max: maxConns}, pass, nil
}

// ReadPassword reads an admin password file: its content without the
// trailing newline an editor adds. An empty file is an error, since it
// would silently turn authentication off.
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: admin.password_file: %w", err)
	}
	pass := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(pass) == "" {
		return "", fmt.Errorf("admin: admin.password_file %s is empty; put the admin password in it", path)
	}
	return pass, nil
}
