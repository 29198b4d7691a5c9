package service

import (
	"fmt"
	"log/slog"

	ks "github.com/kardianos/service"
)

// LogHandler adds the Windows Event Log (source "relaybox") to next when
// relaybox runs as a service, where stderr goes nowhere. Records below
// level stay out of the Event Log.
func LogHandler(next slog.Handler, level slog.Leveler) (slog.Handler, error) {
	if Interactive() {
		return next, nil
	}
	s, err := ks.New(program{}, &ks.Config{Name: Name})
	if err != nil {
		return next, fmt.Errorf("service: event log: %w", err)
	}
	l, err := s.SystemLogger(nil)
	if err != nil {
		return next, fmt.Errorf("service: event log: %w", err)
	}
	return slog.NewMultiHandler(next, newSysHandler(l, level)), nil
}
