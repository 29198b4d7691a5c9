package smtpd

import (
	"fmt"
	"log/slog"
	"net/netip"

	"relaybox/internal/policy"
)

// Device is a known device ([[device]] in the config): its friendly Name
// shows in logs and in each message's envelope, and Sender, when set,
// replaces the envelope sender of its mail (before policy.sender).
//
// An entry with AuthUser matches a session that authenticated as that
// user, from Networks if those are given too; an entry with only Networks
// matches by client address. Entries that match by AUTH user win over
// those that match by address only; otherwise the first in order wins.
type Device struct {
	Name     string
	Networks []string // CIDR prefixes or single addresses
	AuthUser string
	Sender   string
}

type deviceRule struct {
	Device
	nets *policy.Networks // nil when Networks is empty
}

type devices []deviceRule

func newDevices(ds []Device) (devices, error) {
	out := make(devices, 0, len(ds))
	names := map[string]bool{}
	for i, d := range ds {
		if d.Name == "" {
			return nil, fmt.Errorf("smtpd: device %d has no name", i)
		}
		if names[d.Name] {
			return nil, fmt.Errorf("smtpd: device name %q is used twice", d.Name)
		}
		names[d.Name] = true
		if len(d.Networks) == 0 && d.AuthUser == "" {
			return nil, fmt.Errorf("smtpd: device %q: give networks or auth_user to match it by", d.Name)
		}
		r := deviceRule{Device: d}
		if len(d.Networks) > 0 {
			n, err := policy.NetworkRules(d.Networks)
			if err != nil {
				return nil, fmt.Errorf("smtpd: device %q: %w", d.Name, err)
			}
			r.nets = n
		}
		if d.Sender != "" {
			if _, err := policy.ParseAddress(d.Sender); err != nil {
				return nil, fmt.Errorf("smtpd: device %q: sender %q: %w", d.Name, d.Sender, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// match returns the device a session is, or nil.
func (ds devices) match(ip netip.Addr, authUser string) *deviceRule {
	for i := range ds {
		d := &ds[i]
		if d.AuthUser != "" && d.AuthUser == authUser && (d.nets == nil || d.nets.Allowed(ip)) {
			return d
		}
	}
	for i := range ds {
		d := &ds[i]
		if d.AuthUser == "" && d.nets.Allowed(ip) {
			return d
		}
	}
	return nil
}

// name is the device's name for a log line; "" for an unknown device.
// attr is the device=NAME log attribute; for a client that matched no
// [[device]] it is empty, which slog leaves out (no device="").
func (d *deviceRule) attr() slog.Attr {
	if d == nil {
		return slog.Attr{}
	}
	return slog.String("device", d.Name)
}

func (d *deviceRule) name() string {
	if d == nil {
		return ""
	}
	return d.Name
}
