package led

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
)

// fakeLEDDir lays out the files of /sys/class/leds/NAME.
func fakeLEDDir(t *testing.T, max, trigger string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ACT")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"max_brightness": max + "\n", "brightness": "0\n", "trigger": trigger}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSysfsLED(t *testing.T) {
	dir := fakeLEDDir(t, "255", "none [mmc0] timer heartbeat")
	s, err := OpenSysfsLED(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "trigger")); got != "none" {
		t.Fatalf("trigger = %q; want none (the kernel must stop blinking it)", got)
	}
	if s.Name() != "sysfs:ACT" || s.Number() != -1 || s.Function() != "OUT" {
		t.Fatalf("Name/Number/Function = %q %d %q", s.Name(), s.Number(), s.Function())
	}
	bright := filepath.Join(dir, "brightness")
	for _, step := range []struct {
		l    gpio.Level
		want string
	}{{gpio.High, "255"}, {gpio.Low, "0"}, {gpio.High, "255"}} {
		if err := s.Out(step.l); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, bright); got != step.want {
			t.Fatalf("after Out(%v) brightness = %q; want %q", step.l, got, step.want)
		}
	}
	if err := s.Halt(); err != nil || readFile(t, bright) != "0" {
		t.Fatalf("Halt must switch the LED off (err %v)", err)
	}
	if s.PWM(gpio.DutyHalf, 0) == nil {
		t.Fatal("PWM must report that it is unsupported")
	}
}

func TestSysfsLEDErrors(t *testing.T) {
	if _, err := OpenSysfsLED(filepath.Join(t.TempDir(), "nope")); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing LED: %v", err)
	}
	if _, err := OpenSysfsLED(fakeLEDDir(t, "zero", "none")); err == nil || !strings.Contains(err.Error(), "max_brightness") {
		t.Fatalf("bad max_brightness: %v", err)
	}
	for _, name := range []string{"sysfs:", "sysfs:../../etc", "sysfs:..", `sysfs:a\b`} {
		if _, err := OpenPin(name); err == nil || !strings.Contains(err.Error(), "name one LED") {
			t.Errorf("OpenPin(%q) = %v; want a refusal", name, err)
		}
	}
}

// A machine without that GPIO (this one, or CI) loads the drivers without
// error and finds no pin: the message the daemon logs once.
func TestOpenPinNotFound(t *testing.T) {
	_, err := OpenPin("GPIO9999")
	if err == nil || !strings.Contains(err.Error(), "LED pin GPIO9999 not found") {
		t.Fatalf("OpenPin = %v; want \"LED pin GPIO9999 not found\"", err)
	}
}
