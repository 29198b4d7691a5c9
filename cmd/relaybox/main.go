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
	"strings"

	"relaybox/internal/config"
	"relaybox/internal/systemd"
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
	if calledAsSendmail(os.Args[0]) {
		os.Exit(cmdSendmail(os.Args[1:], os.Stdin, os.Stderr))
	}
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
	case "reload":
		err = cmdReload(rest, stdout, stderr)
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
	case "sendmail":
		// sysexits codes, not the 0/1/2 of the other commands: callers
		// of sendmail test for 75 (try again later).
		return cmdSendmail(rest, os.Stdin, stderr)
	case "hash-password":
		err = cmdHashPassword(rest, os.Stdin, stdout, stderr)
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
	fmt.Fprintf(stderr, "%srelaybox %s: %v\n", journalPrefix(stderr, 3), cmd, err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}

// journalPrefix is "<N>" when w is the journal stream systemd connected to
// stderr, so the line that ends the process is filed at priority N.
func journalPrefix(w io.Writer, prio int) string {
	if f, ok := w.(*os.File); ok && systemd.IsJournal(f, os.Getenv) {
		return fmt.Sprintf("<%d>", prio)
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: relaybox <command> [flags]

commands:
  run            [-config FILE]   run the relay in the foreground
  demo                            relay on 127.0.0.1:2525 plus a local TLS upstream that prints what it gets
  check-config   [-config FILE] [-ready] [-probe]   validate and print the effective config (secrets redacted);
                 -ready also fails while the sample's placeholders (example.edu) are left;
                 -probe also binds each address, opens the devices and files, writes data_dir
  reload         [-config FILE | -admin HOST:PORT]   the running daemon re-reads its config (also SIGHUP)
  upstream-check [-config FILE]   connect to each upstream: TLS, verify, EHLO, AUTH; sends nothing
  send-test      -to ADDR [-server HOST:PORT] [-from ADDR]   send one test message
  status         [-config FILE | -admin HOST:PORT] [-json]   the running daemon's health
  queue          list|dead|show ID|retry [-force] ID|retry-all|retry-dead|delete ID
                 [-config FILE | -admin HOST:PORT] [-json]   the running daemon's queue
  log            [-n N] [-config FILE | -admin HOST:PORT] [-json]   the running daemon's recent events
  oauth-login    -config FILE [-upstream N]   first OAuth refresh token by device code (the box needs no browser)
  service        install|uninstall|start|stop|restart|status|unit [-config FILE]   run as a systemd / Windows service
  sendmail       [-t] [-i] [-f ADDR] [-F NAME] [ADDR...]   submit the message on stdin to the local daemon
                 (also as a link named sendmail; sysexits codes: 0 queued, 75 try later, 64/65/67 refused)
  hash-password                   read a password (twice, not echoed) and print its bcrypt hash
  version                         print the version

Without -config, relaybox runs on built-in defaults: listen 127.0.0.1:2525,
data in ./relaybox-data, no upstream (mail is held until one is configured).
`)
}

// loadConfig reads -config FILE, or the built-in defaults when it is empty.
func loadConfig(path string) (config.Config, error) {
	c, _, err := loadConfigSource(path)
	return c, err
}

// loadConfigSource is loadConfig with the keys' positions in the file, for
// errors found after validation.
func loadConfigSource(path string) (config.Config, config.Source, error) {
	if path == "" {
		return config.Default(), config.Source{}, nil
	}
	c, src, err := config.LoadSource(path)
	if err != nil {
		return c, src, usageError{err}
	}
	return c, src, nil
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
	ready := fs.Bool("ready", false, "also fail (exit 2) while the config holds a sample's placeholders (example.edu): ready to start as a service")
	probe := fs.Bool("probe", false, "also try what run will do: bind each listen address, open the console device and LED pin, write data_dir, read every file the config names")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, src, err := loadConfigSource(*path)
	if err != nil {
		return err
	}
	// The same build as run's, so check-config accepts exactly what run
	// starts on.
	if _, err := build(c, src, nil); err != nil {
		return usageError{err}
	}
	if p := c.Placeholders(); *ready && len(p) > 0 {
		return usageError{fmt.Errorf("%s still holds the sample's placeholders; edit them, then start the service:\n  %s",
			*path, strings.Join(p, "\n  "))}
	}
	for _, w := range warnings(c) {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err := c.WriteTOML(stdout); err != nil {
		return err
	}
	name := *path
	if name == "" {
		name = "built-in defaults"
	}
	fmt.Fprintf(stderr, "config OK (%s)\n", name)
	if *probe {
		return probeConfig(c, stdout)
	}
	return nil
}

// warnings are settings that are valid but probably not what the admin wants.
func warnings(c config.Config) []string {
	var w []string
	w = append(w, c.Placeholders()...)
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
