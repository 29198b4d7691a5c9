package main

import (
	"context"
	"os"
	"time"

	"relaybox/internal/systemd"
)

// commitStallLimit is how long one spool commit may take before the
// watchdog stops vouching for the relay. A healthy SD card commits in
// milliseconds, a busy one in seconds; a minute is a hang.
const commitStallLimit = time.Minute

// passStallLimit bounds a delivery pass without a finished attempt: one
// attempt is at most a connect, a few commands and the data phase, each
// bounded by its delivery timeout, plus a minute of slack.
func (d *daemon) passStallLimit() time.Duration {
	dl := d.cfg().Delivery
	return dl.ConnectTimeout.D() + 4*dl.CommandTimeout.D() + dl.DataTimeout.D() + time.Minute
}

// stalled names the part that stopped making progress, or "" when the
// spool's committer and the scheduler are both alive.
func (d *daemon) stalled(now time.Time) string {
	switch {
	case d.spool.CommitStalled(commitStallLimit):
		return "spool commit running for over " + commitStallLimit.String() + " (storage not answering?)"
	case d.sched.PassStalled(now, d.passStallLimit()):
		return "delivery pass without progress for over " + d.passStallLimit().String()
	}
	return ""
}

// startWatchdog sends WATCHDOG=1 at a third of WatchdogSec= while the relay
// makes progress. When it stops, systemd restarts the relay after
// WatchdogSec: a box whose storage hangs comes back by itself.
func (d *daemon) startWatchdog(ctx context.Context, stalled func(time.Time) string) {
	every, ok, err := systemd.WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		d.log.Warn("systemd watchdog ignored", "err", err.Error())
	}
	if !ok {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(every / 3)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				why := stalled(now)
				if why != last && why != "" {
					d.log.Error("watchdog withheld: systemd will restart relaybox unless this clears", "reason", why)
				}
				last = why
				if why == "" {
					d.notify(systemd.Watchdog)
				}
			}
		}
	}()
	d.log.Info("systemd watchdog on", "interval", every.String())
}
