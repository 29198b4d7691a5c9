package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"relaybox/internal/config"
	"relaybox/internal/service"
)

// cmdService is `relaybox service install|uninstall|start|stop|restart|status
// [-config FILE]`, plus `unit`, which prints the systemd unit install would
// write (board/rpi/install.sh uses it, and it lets an admin review it first).
func cmdService(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("service", stderr)
	path := fs.String("config", "", "config file (default: "+service.DefaultPaths().Config+")")
	words, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	action, err := serviceAction(words)
	if err != nil {
		return err
	}
	opts, err := serviceOptions(action, *path)
	if err != nil {
		return err
	}
	if action == "unit" {
		unit, err := service.SystemdUnit(opts)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, unit)
		return err
	}
	if action == "install" {
		if err := service.PrepareDataDir(opts.DataDir, opts.User); err != nil {
			return err
		}
	}
	m, err := service.New(opts)
	if err != nil {
		return err
	}
	msg, err := service.Control(m, action, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, msg)
	return nil
}

func serviceAction(words []string) (string, error) {
	valid := append(service.Actions(), "unit")
	if len(words) != 1 || !slices.Contains(valid, words[0]) {
		return "", usageError{fmt.Errorf("want one of: %s [-config FILE]", strings.Join(valid, "|"))}
	}
	return words[0], nil
}

// serviceOptions resolves what the installed service will run. The config
// path is made absolute because the service starts in / (or System32).
// install and unit read the config, and refuse one that does not validate:
// a service that cannot start is worse than no service.
func serviceOptions(action, cfgPath string) (service.Options, error) {
	def := service.DefaultPaths()
	if cfgPath == "" {
		cfgPath = def.Config
	}
	abs, err := filepath.Abs(cfgPath)
	if err != nil {
		return service.Options{}, fmt.Errorf("config path: %w", err)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe) // a symlink may be repointed to another version later
	}
	if err != nil {
		return service.Options{}, fmt.Errorf("locate the relaybox binary: %w", err)
	}
	opts := service.Options{Executable: exe, ConfigPath: abs, DataDir: def.DataDir}
	if action != "install" && action != "unit" {
		return opts, nil // control actions name the service; paths are informational
	}
	cfg, err := config.Load(abs)
	if err != nil {
		return opts, usageError{fmt.Errorf("refusing to %s: %s does not validate (check it with `relaybox check-config -config %s`):\n%w", action, abs, abs, err)}
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return opts, fmt.Errorf("data_dir: %w", err)
	}
	opts.DataDir = cfg.DataDir
	opts.ShutdownGrace = cfg.Listen.ShutdownGrace.D()
	opts.User = service.DefaultUser()
	return opts, nil
}
