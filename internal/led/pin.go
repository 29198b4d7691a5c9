package led

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
	"periph.io/x/host/v3"
)

// SysfsPrefix selects a kernel LED instead of a GPIO: led.pin = "sysfs:ACT"
// drives /sys/class/leds/ACT, the Raspberry Pi's own green LED.
const SysfsPrefix = "sysfs:"

// sysfsLEDs is where the kernel lists its LEDs.
const sysfsLEDs = "/sys/class/leds"

// OpenPin finds the LED named by led.pin: a GPIO name known to periph
// ("GPIO17"), or "sysfs:NAME" for a kernel LED. A machine without GPIO
// loads no driver and finds no pin; that is an error the caller reports once
// before carrying on without an LED.
func OpenPin(name string) (gpio.PinOut, error) {
	if led, ok := strings.CutPrefix(name, SysfsPrefix); ok {
		if led == "" || strings.ContainsAny(led, `/\`) || led == "." || led == ".." {
			return nil, fmt.Errorf("led: %q: name one LED of %s, e.g. %q", name, sysfsLEDs, SysfsPrefix+"ACT")
		}
		return OpenSysfsLED(filepath.Join(sysfsLEDs, led))
	}
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("led: load GPIO drivers: %w", err)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("led: LED pin %s not found on this machine; check led.pin (e.g. \"GPIO17\", or %q for the board's own LED)", name, SysfsPrefix+"ACT")
	}
	return p, nil
}

// SysfsLED is a kernel LED (/sys/class/leds/NAME) used as an output pin.
// It implements gpio.PinOut; High lights it at full brightness.
type SysfsLED struct {
	dir string
	max string // value written for High, from max_brightness
}

var _ gpio.PinOut = (*SysfsLED)(nil)

// OpenSysfsLED takes over the LED in dir: it sets its trigger to "none" so
// the kernel (for the ACT LED: SD card activity) stops blinking it too.
// Writing needs root or a udev rule granting the relaybox user the files.
func OpenSysfsLED(dir string) (*SysfsLED, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "max_brightness"))
	if err != nil {
		return nil, fmt.Errorf("led: LED %s not found: %w", dir, err)
	}
	max := strings.TrimSpace(string(raw))
	if n, err := strconv.Atoi(max); err != nil || n <= 0 {
		return nil, fmt.Errorf("led: %s: max_brightness %q is not a positive number", dir, max)
	}
	trigger := filepath.Join(dir, "trigger")
	if _, err := os.Stat(trigger); err == nil {
		if err := os.WriteFile(trigger, []byte("none"), 0); err != nil {
			return nil, fmt.Errorf("led: take over %s (writing needs root or a udev rule): %w", dir, err)
		}
	}
	return &SysfsLED{dir: dir, max: max}, nil
}

// String implements conn.Resource.
func (s *SysfsLED) String() string { return s.Name() }

// Halt implements conn.Resource; it switches the LED off.
func (s *SysfsLED) Halt() error { return s.Out(gpio.Low) }

// Name implements pin.Pin.
func (s *SysfsLED) Name() string { return SysfsPrefix + filepath.Base(s.dir) }

// Number implements pin.Pin; a kernel LED has no GPIO number.
func (s *SysfsLED) Number() int { return -1 }

// Function implements pin.Pin.
func (s *SysfsLED) Function() string { return string(s.Func()) }

// Func implements pin.PinFunc.
func (s *SysfsLED) Func() pin.Func { return gpio.OUT }

// Out implements gpio.PinOut by writing the brightness file.
func (s *SysfsLED) Out(l gpio.Level) error {
	v := "0"
	if l == gpio.High {
		v = s.max
	}
	// WriteFile truncates, which sysfs ignores and a plain file (tests) needs.
	if err := os.WriteFile(filepath.Join(s.dir, "brightness"), []byte(v), 0); err != nil {
		return fmt.Errorf("led: %s: %w", s.Name(), err)
	}
	return nil
}

// errNoPWM is returned by PWM: the brightness file is on/off for our use.
var errNoPWM = errors.New("led: a sysfs LED has no PWM; use Out")

// PWM implements gpio.PinOut; it is not supported.
func (s *SysfsLED) PWM(gpio.Duty, physic.Frequency) error { return errNoPWM }
