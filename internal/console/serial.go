package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"go.bug.st/serial"
)

// Open opens a serial device at baud, 8 data bits, no parity, one stop
// bit, raw (no echo or line editing by the kernel: the console does its
// own). Errors name the device and say what to check.
func Open(device string, baud int) (io.ReadWriteCloser, error) {
	if device == "" {
		return nil, errors.New("console: no device: set console.device, e.g. /dev/serial0, /dev/ttyUSB0 or COM3")
	}
	if baud <= 0 {
		return nil, fmt.Errorf("console: %s: baud rate %d: set console.baud, e.g. 115200", device, baud)
	}
	p, err := serial.Open(device, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("console: open %s at %d baud: %w (%s)", device, baud, err, openHint(err, baud))
	}
	return p, nil
}

// openHint says what to do about a failed open.
func openHint(err error, baud int) string {
	var pe *serial.PortError
	code := serial.PortErrorCode(-1)
	if errors.As(err, &pe) {
		code = pe.Code()
	}
	switch {
	case code == serial.PermissionDenied || errors.Is(err, fs.ErrPermission):
		return "relaybox may not use it: on Linux add its user to the dialout group, or check console.device"
	case code == serial.PortBusy:
		return "another program holds it, often a login getty on that port: disable it (serial-getty@) or pick another device"
	case code == serial.PortNotFound || errors.Is(err, fs.ErrNotExist):
		return "no such device: check console.device; a USB-serial adapter may be unplugged"
	case code == serial.InvalidSpeed:
		return fmt.Sprintf("the port does not support %d baud: check console.baud", baud)
	case code == serial.InvalidSerialPort:
		return "it is not a serial port: check console.device"
	}
	return "check console.device and its permissions (dialout group on Linux)"
}

// Run keeps a console on device until ctx ends, then returns nil. It
// opens the device, serves sessions on it one after another (exit ends a
// session, Enter starts the next) and, when the device fails or vanishes
// (a USB-serial adapter pulled out), reopens it with a backoff. An error
// is returned only for a setting that can never work.
func (c *Console) Run(ctx context.Context, device string, baud int, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if device == "" || baud <= 0 {
		_, err := Open(device, baud)
		return err
	}
	backoff := c.minBackoff
	lastErr := ""
	for ctx.Err() == nil {
		port, err := Open(device, baud)
		if err != nil {
			// A missing adapter fails the same way every few seconds
			// for days: say so once, then only when the error changes.
			level := slog.LevelDebug
			if err.Error() != lastErr {
				level, lastErr = slog.LevelWarn, err.Error()
			}
			log.Log(ctx, level, "console: cannot open the device; retrying", "device", device, "err", err.Error(), "retry_in", backoff.String())
		} else {
			lastErr = ""
			opened := c.opt.Now()
			log.Info("console: listening", "device", device, "baud", baud)
			err = c.sessions(ctx, port, log)
			_ = port.Close()
			if ctx.Err() != nil {
				break
			}
			log.Warn("console: device failed; reopening", "device", device, "err", err.Error())
			if c.opt.Now().Sub(opened) >= c.stableAfter {
				backoff = c.minBackoff
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
	log.Info("console: stopped", "device", device)
	return nil
}

// sessions serves one session after another on an open port until it
// fails. Closing the port when ctx ends is what unblocks a pending Read.
func (c *Console) sessions(ctx context.Context, port io.ReadWriteCloser, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { _ = port.Close() })
	defer stop()
	in := newInput(port)
	for {
		err := c.serve(ctx, in, port)
		if !errors.Is(err, errExit) {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("console: read: %w", err)
			}
			return err
		}
		log.Info("console: session ended")
		if _, err := io.WriteString(port, "session ended; press Enter for a new one\r\n"); err != nil {
			return fmt.Errorf("console: write: %w", err)
		}
		if err := waitEnter(ctx, in); err != nil {
			return fmt.Errorf("console: read: %w", err)
		}
	}
}

// waitEnter discards input up to a line end (the LF of a CRLF that ended
// the last command does not count).
func waitEnter(ctx context.Context, in *input) error {
	for {
		b, err := in.next(ctx)
		if err != nil {
			return err
		}
		wasCR := in.lastCR
		in.lastCR = b == '\r'
		if b == '\r' || (b == '\n' && !wasCR) {
			return nil
		}
	}
}
