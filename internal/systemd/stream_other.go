//go:build !unix

package systemd

import "os"

// IsJournal is false where there is no systemd.
func IsJournal(f *os.File, getenv func(string) string) bool { return false }
