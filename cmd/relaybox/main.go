// Command relaybox is a store-and-forward SMTP relay for printers, scanners
// and lab instruments. This file only dispatches subcommands; the wiring is
// in run.go and the logic lives in internal/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"relaybox/internal/config"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes from the contract in DESIGN.md.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks a problem the user fixes by changing the command line or
// the config: exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(rest, stdout, stderr)
	case "upstream-check":
		err = cmdUpstreamCheck(rest, stdout, stderr)
	case "send-test":
		err = cmdSendTest(rest, stdout, stderr)
	case "service":
		err = cmdService(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "queue":
		err = cmdQueue(rest, stdout, stderr)
	case "log":
		err = cmdLog(rest, stdout, stderr)
	case "oauth-login":
		err = cmdOAuthLogin(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "relaybox %s (%s, %s/%s)\n", version, goVersion(), runtime.GOOS, runtime.GOARCH)
	case "help", "-h", "-help", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "relaybox: unknown command %q\n\n", cmd)
		usage(stderr)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "relaybox %s: %v\n", cmd, err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: relaybox <command> [flags]

commands:
  run            [-config FILE]   run the relay in the foreground
  demo                            relay on 127.0.0.1:2525 plus a local TLS upstream that prints what it gets
  check-config   [-config FILE]   validate and print the effective config (secrets redacted)
  upstream-check [-config FILE]   connect to each upstream: TLS, verify, EHLO, AUTH; sends nothing
  send-test      -to ADDR [-server HOST:PORT] [-from ADDR]   send one test message
  status         [-config FILE | -admin HOST:PORT] [-json]   the running daemon's health
  queue          list|dead|show ID|retry [-force] ID|retry-all|retry-dead|delete ID
                 [-config FILE | -admin HOST:PORT] [-json]   the running daemon's queue
  log            [-n N] [-config FILE | -admin HOST:PORT] [-json]   the running daemon's recent events
  oauth-login    -config FILE [-upstream N]   first OAuth refresh token by device code (the box needs no browser)
  service        install|uninstall|start|stop|restart|status|unit [-config FILE]   run as a systemd / Windows service
  version                         print the version

Without -config, relaybox runs on built-in defaults: listen 127.0.0.1:2525,
data in ./relaybox-data, no upstream (mail is held until one is configured).
`)
}

// loadConfig reads -config FILE, or the built-in defaults when it is empty.
func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	c, err := config.Load(path)
	if err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("relaybox "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses fs, allowing flags before and after positional words
// ("queue show ID -json" and "queue -json show ID" both work).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return words, nil
		}
		words = append(words, args[0])
		args = args[1:]
	}
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", stderr)
	path := fs.String("config", "", "config file (default: built-in defaults)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*path)
	if err != nil {
		return err
	}
	for _, w := range warnings(c) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err := c.WriteTOML(stdout); err != nil {
		return err
	}
	src := *path
	if src == "" {
		src = "built-in defaults"
	}
	fmt.Fprintf(stderr, "config OK (%s)\n", src)
	return nil
}

// warnings are settings that are valid but probably not what the admin wants.
func warnings(c config.Config) []string {
	var w []string
	if len(c.Policy.RecipientDomains) == 0 {
		w = append(w, "policy.recipient_domains is empty: every recipient will be refused")
	}
	if len(c.Upstream) == 0 {
		w = append(w, "no [[upstream]] configured: accepted mail is held in the spool until one is")
	}
	for i, u := range c.Upstream {
		if u.Insecure {
			w = append(w, fmt.Sprintf("upstream[%d] (%s) has insecure = true: its certificate is NOT verified", i, u.Address))
		}
		if u.IsOAuth() && u.OAuth.Flow == config.FlowRefreshToken {
			if _, err := os.Stat(u.OAuth.RefreshTokenFile); errors.Is(err, os.ErrNotExist) {
				w = append(w, fmt.Sprintf("upstream[%d] (%s) has no refresh token yet: run relaybox oauth-login -upstream %d", i, u.Address, i))
			}
		}
	}
	return w
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return runtime.Version()
}
