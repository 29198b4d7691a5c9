package service

import (
	"fmt"
	"log/slog"
	"reflect"
	"testing"
)

// fakeLogger is a kardianos Logger that records "severity: line".
type fakeLogger struct{ lines []string }

func (f *fakeLogger) add(sev string, v ...any) error {
	f.lines = append(f.lines, sev+": "+fmt.Sprint(v...))
	return nil
}
func (f *fakeLogger) Error(v ...any) error   { return f.add("E", v...) }
func (f *fakeLogger) Warning(v ...any) error { return f.add("W", v...) }
func (f *fakeLogger) Info(v ...any) error    { return f.add("I", v...) }
func (f *fakeLogger) Errorf(format string, a ...any) error {
	return f.add("E", fmt.Sprintf(format, a...))
}
func (f *fakeLogger) Warningf(format string, a ...any) error {
	return f.add("W", fmt.Sprintf(format, a...))
}
func (f *fakeLogger) Infof(format string, a ...any) error {
	return f.add("I", fmt.Sprintf(format, a...))
}

func TestSysHandler(t *testing.T) {
	f := &fakeLogger{}
	log := slog.New(newSysHandler(f, slog.LevelInfo))
	log.Debug("not shown")
	log.Info("relaybox started", "version", "v1")
	log.With("id", "Q1").Warn("deferred", "reply", "451 4.3.0 try later")
	log.WithGroup("spool").Error("damaged", "path", `C:\ProgramData\relaybox\data\spool.db`)
	want := []string{
		"I: msg=\"relaybox started\" version=v1",
		"W: msg=deferred id=Q1 reply=\"451 4.3.0 try later\"",
		`E: msg=damaged spool.path=C:\ProgramData\relaybox\data\spool.db`,
	}
	if !reflect.DeepEqual(f.lines, want) {
		t.Fatalf("event log lines\n got %q\nwant %q", f.lines, want)
	}
}
