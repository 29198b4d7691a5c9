//go:build !windows

package service

import "log/slog"

// LogHandler returns next unchanged: under systemd, stderr already goes to
// the journal, and a second copy through syslog would log every line twice.
func LogHandler(next slog.Handler, level slog.Leveler) (slog.Handler, error) {
	return next, nil
}
