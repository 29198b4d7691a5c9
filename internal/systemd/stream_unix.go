//go:build unix

package systemd

import (
	"fmt"
	"os"
	"syscall"
)

// IsJournal reports whether f (stderr) is the journal stream systemd
// connected, by comparing its device and inode with JOURNAL_STREAM
// ("DEV:INODE"). A stderr redirected elsewhere by a child's shell keeps
// the variable but not the match, so it gets no prefixes.
func IsJournal(f *os.File, getenv func(string) string) bool {
	want := getenv("JOURNAL_STREAM")
	if want == "" || f == nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
