package service

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SystemdUnit is the hardened unit `relaybox service install` writes on a
// systemd machine; board/linux/relaybox.service is its output for the
// default paths (a test keeps the two identical). It needs no template
// engine, so it is plain Go: what you read here is what systemd gets.
func SystemdUnit(o Options) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	if strings.ContainsAny(o.DataDir, " \t\n\"'\\") {
		// ReadWritePaths= splits on spaces; a quoted path is not portable
		// across the systemd versions found on boards.
		return "", fmt.Errorf("service: data_dir %q must not contain spaces, quotes or backslashes for the systemd unit", o.DataDir)
	}
	grace := o.ShutdownGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	var b strings.Builder
	line := func(s ...string) {
		b.WriteString(strings.Join(s, ""))
		b.WriteByte('\n')
	}
	line("# relaybox store-and-forward SMTP relay.")
	line("# Written by `relaybox service install`; board/linux/relaybox.service is the")
	line("# same unit for installing by hand. `relaybox service unit` prints it.")
	line("[Unit]")
	line("Description=relaybox store-and-forward SMTP relay")
	line("After=network-online.target")
	line("Wants=network-online.target")
	line("# Never stop retrying a runtime failure: the box has no screen and mail waits.")
	line("StartLimitIntervalSec=0")
	line("")
	line("[Service]")
	line("# READY=1 once every listener is bound and the spool is open; STOPPING=1 at stop.")
	line("Type=notify")
	line("NotifyAccess=main")
	line("ExecStart=", execQuote(o.Executable), " run -config ", execQuote(o.ConfigPath))
	line("# Re-read the config (policy, upstreams, limits, log level) without dropping")
	line("# sessions; a broken file keeps the running config (see `relaybox status`).")
	line("ExecReload=/bin/kill -HUP $MAINPID")
	line("# A spool commit or delivery pass stuck past its limit (an SD card that")
	line("# stopped answering) withholds WATCHDOG=1, and systemd restarts the relay.")
	line("WatchdogSec=2min")
	line("# SIGKILL, not the default SIGABRT: Go exits 2 on SIGABRT, which the line")
	line("# RestartPreventExitStatus=2 below would take for a config error.")
	line("WatchdogSignal=SIGKILL")
	line("# Opening a large spool from an SD card can take a while on a cold boot.")
	line("TimeoutStartSec=5min")
	if o.User != "" {
		line("User=", o.User)
	} else {
		line("# No relaybox user existed at install time: root, but with no capability")
		line("# other than binding port 25. Create one (board/rpi/install.sh does) and reinstall.")
	}
	line("Restart=on-failure")
	line("RestartSec=10s")
	line("# Exit 2 is a config or usage error: restarting cannot fix it; see the journal.")
	line("RestartPreventExitStatus=2")
	line("# listen.shutdown_grace for open sessions, plus closing delivery and the spool.")
	line("TimeoutStopSec=", strconv.Itoa(int((grace + stopMargin).Seconds())))
	line("# Room for many refused clients at once: each holds a descriptor until closed.")
	line("LimitNOFILE=65536")
	line("")
	line("# Port 25 without root: the one privilege the relay keeps.")
	line("AmbientCapabilities=CAP_NET_BIND_SERVICE")
	line("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
	line("NoNewPrivileges=yes")
	line("# The whole file system is read-only except the spool's directory.")
	line("ProtectSystem=strict")
	line("ReadWritePaths=", specifierEscape(o.DataDir))
	line("ProtectHome=yes")
	line("PrivateTmp=yes")
	line("ProtectKernelModules=yes")
	line("ProtectControlGroups=yes")
	line("RestrictSUIDSGID=yes")
	line("LockPersonality=yes")
	line("RestrictRealtime=yes")
	line("UMask=0077")
	line("# Not set on purpose: PrivateDevices and ProtectClock hide /dev/gpiomem,")
	line("# /dev/gpiochip* and /dev/serial0 (the status LED and the serial console).")
	line("")
	line("[Install]")
	line("WantedBy=multi-user.target")
	return b.String(), nil
}

// execQuote quotes one ExecStart word the way systemd reads it: specifiers
// (%) and variables ($) doubled, and double quotes around anything with
// white space or quotes.
func execQuote(s string) string {
	s = specifierEscape(s)
	s = strings.ReplaceAll(s, "$", "$$")
	if !strings.ContainsAny(s, " \t\"'\\") {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

func specifierEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }
