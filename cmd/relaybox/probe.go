package main

// check-config -probe: what `run` will do at start-up, tried one step at a
// time without starting anything, so a technician finds a taken port, a
// missing serial adapter or an unreadable key before the service fails.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"relaybox/internal/config"
	"relaybox/internal/console"
	"relaybox/internal/led"
)

// probeStep is one thing to try: its name (the config key) and the try.
type probeStep struct {
	name string
	try  func() (detail string, err error)
}

// probeConfig runs every step, printing each as upstream-check does, and
// fails when any step failed.
func probeConfig(cfg config.Config, out io.Writer) error {
	steps := probeSteps(cfg)
	fmt.Fprintln(out, "probe (what `relaybox run` will open):")
	failed := 0
	for _, s := range steps {
		detail, err := s.try()
		if err != nil {
			failed++
			fmt.Fprintf(out, "  %-28s FAILED: %v\n", s.name, err)
			continue
		}
		fmt.Fprintf(out, "  %-28s ok (%s)\n", s.name, detail)
	}
	if failed > 0 {
		return fmt.Errorf("probe: %d of %d steps failed", failed, len(steps))
	}
	fmt.Fprintf(out, "  result: ok, %d steps\n", len(steps))
	return nil
}

func probeSteps(cfg config.Config) []probeStep {
	var steps []probeStep
	listen := func(key, fix, addr string) {
		steps = append(steps, probeStep{key, func() (string, error) { return probeListen(key, fix, addr) }})
	}
	for i, a := range cfg.Listen.SMTP {
		listen(fmt.Sprintf("listen.smtp[%d]", i), "listen.smtp", a)
	}
	for i, a := range cfg.Listen.SMTPS {
		listen(fmt.Sprintf("listen.smtps[%d]", i), "listen.smtps", a)
	}
	if cfg.Admin.Listen != "" {
		listen("admin.listen", "admin.listen", cfg.Admin.Listen)
	}
	steps = append(steps, probeStep{"data_dir", func() (string, error) { return probeDataDir(cfg) }})
	file := func(key, path string) {
		if path != "" && path != config.TLSCertAuto {
			steps = append(steps, probeStep{key, func() (string, error) { return probeFile(path) }})
		}
	}
	file("listen.tls_cert", cfg.Listen.TLSCert)
	file("listen.tls_key", cfg.Listen.TLSKey)
	for i, u := range cfg.Upstream {
		k := fmt.Sprintf("upstream[%d].", i)
		file(k+"ca_file", u.CAFile)
		file(k+"password_file", u.PasswordFile)
		file(k+"cert_file", u.CertFile)
		file(k+"key_file", u.KeyFile)
	}
	file("admin.password_file", cfg.Admin.PasswordFile)
	if cfg.Console.Device != "" {
		steps = append(steps, probeStep{"console.device", func() (string, error) {
			p, err := console.Open(cfg.Console.Device, cfg.Console.Baud)
			if err != nil {
				return "", err // console says which device and what to check
			}
			_ = p.Close()
			return fmt.Sprintf("%s at %d baud", cfg.Console.Device, cfg.Console.Baud), nil
		}})
	}
	if cfg.LED.Pin != "" {
		steps = append(steps, probeStep{"led.pin", func() (string, error) {
			p, err := led.OpenPin(cfg.LED.Pin)
			if err != nil {
				return "", err
			}
			return p.Name(), nil
		}})
	}
	return steps
}

// probeListen binds addr and lets it go at once.
func probeListen(key, fix, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		var se startError
		if errors.As(listenError(config.Source{}, key, fix, addr, err), &se) {
			var ce *config.Error
			if errors.As(se.err, &ce) {
				return "", errors.New(ce.Msg)
			}
		}
		return "", err
	}
	_ = l.Close()
	return addr + " is free", nil
}

// probeDataDir creates data_dir if needed and writes, syncs and removes a
// file in it, as the spool will. Directories it had to create are removed
// again: made by whoever runs the probe (often root), they would stand in
// the service user's way.
func probeDataDir(cfg config.Config) (string, error) {
	dir := cfg.DataDir
	created := firstMissing(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot create %s: %w; create it for the relaybox user or change data_dir", dir, err)
	}
	if created != "" {
		defer os.RemoveAll(created)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return "", fmt.Errorf("cannot write in %s: %w; let the relaybox user write there or change data_dir", dir, err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, werr := f.Write([]byte("relaybox probe\n"))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return "", fmt.Errorf("writing %s failed: %w", name, err)
	}
	detail := dir + " is writable"
	if created != "" {
		detail = dir + " can be created and written (removed again; the relay creates it at start)"
	}
	if fi, err := os.Stat(cfg.SpoolPath()); err == nil {
		f, err := os.OpenFile(cfg.SpoolPath(), os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Errorf("the spool %s cannot be opened for writing: %w", cfg.SpoolPath(), err)
		}
		_ = f.Close()
		detail += fmt.Sprintf(", %s holds %d bytes", filepath.Base(cfg.SpoolPath()), fi.Size())
	}
	return detail, nil
}

// firstMissing is the outermost directory of dir that does not exist yet,
// "" when dir exists.
func firstMissing(dir string) string {
	missing := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			return missing
		}
		missing = d
		if parent := filepath.Dir(d); parent == d {
			return missing
		}
	}
}

// probeFile reads a file the config names; only its size is printed, as
// it may hold a secret.
func probeFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w; let the relaybox user read it or fix the path", err)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	return fmt.Sprintf("%s, %d bytes readable", path, len(b)), nil
}
