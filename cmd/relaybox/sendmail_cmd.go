package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"relaybox/internal/config"
	"relaybox/internal/sendmail"
	"relaybox/internal/service"
	"relaybox/internal/submit"
)

// calledAsSendmail reports whether the binary was started through a link
// named sendmail (/usr/sbin/sendmail -> relaybox), as scripts call it.
func calledAsSendmail(argv0 string) bool {
	name := strings.ToLower(filepath.Base(argv0))
	return name == "sendmail" || name == "sendmail.exe"
}

// cmdSendmail is `relaybox sendmail`: the message on stdin goes to the
// local daemon over SMTP. It returns a sysexits status and writes one line
// to stderr when the mail was not accepted.
func cmdSendmail(args []string, stdin io.Reader, stderr io.Writer) int {
	req, err := sendmail.ParseArgs(args)
	if err == nil {
		var t sendmail.Target
		t, err = sendmailTarget(req.Config)
		if err == nil {
			_, err = sendmail.Send(context.Background(), req, stdin, t)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "relaybox sendmail:", sendmail.Explain(err))
	}
	return sendmail.ExitCode(err)
}

// sendmailTarget finds the daemon: the first listen.smtp address of the
// config named by -config, else $RELAYBOX_CONFIG, else the per-OS default
// path (built-in defaults when that file does not exist, matching a daemon
// started without a config).
func sendmailTarget(path string) (sendmail.Target, error) {
	src := "-config"
	if path == "" {
		path, src = os.Getenv("RELAYBOX_CONFIG"), "RELAYBOX_CONFIG"
	}
	var cfg config.Config
	if path == "" {
		path, src = service.DefaultPaths().Config, "default"
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			cfg, path = config.Default(), ""
		}
	}
	if path != "" {
		var err error
		cfg, err = config.Load(path)
		if err != nil {
			hint := "fix it, or name another with -config FILE or RELAYBOX_CONFIG"
			if errors.Is(err, fs.ErrPermission) {
				hint = "run as root or as a member of group relaybox, or point RELAYBOX_CONFIG at a readable copy"
			}
			return sendmail.Target{}, &sendmail.ConfigError{Err: fmt.Errorf("config (%s) %w; %s", src, err, hint)}
		}
	}
	if len(cfg.Listen.SMTP) == 0 {
		return sendmail.Target{}, &sendmail.ConfigError{Err: errors.New("the config has no listen.smtp address to submit to")}
	}
	return sendmail.Target{
		Submit:        submit.Options{Addr: dialable(cfg.Listen.SMTP[0]), Hello: cfg.Hostname},
		DefaultSender: sendmail.DefaultSender(currentUser(), cfg.Hostname),
	}, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"USER", "LOGNAME", "USERNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return ""
}
