package status

import (
	"errors"
	"strings"
	"testing"
)

// A reload replaces the upstream list and warnings; an upstream kept keeps
// its history. A failed reload shows until the next good one.
func TestReconfiguredAndConfigError(t *testing.T) {
	c := newFakeClock()
	m := New(Options{Now: c.Now, Upstreams: []string{"a:587", "b:587"}, Warnings: []string{"old warning"}})
	m.Started()
	m.UpstreamResult("b:587", errors.New("down"))

	m.ConfigError(errors.New("relaybox.toml:7: policy.recipient_domains[0]: bad\nsecond line"))
	snap := m.Snapshot()
	if snap.ConfigError != "relaybox.toml:7: policy.recipient_domains[0]: bad second line" {
		t.Errorf("ConfigError = %q", snap.ConfigError)
	}
	found := false
	for _, f := range snap.Fields() {
		if f.Label == "config" && strings.Contains(f.Value, "relaybox.toml:7") {
			found = true
		}
	}
	if !found {
		t.Errorf("Fields do not show the reload error: %+v", snap.Fields())
	}

	m.Reconfigured([]string{"b:587", "c:465"}, nil)
	snap = m.Snapshot()
	if snap.ConfigError != "" || len(snap.Warnings) != 0 || snap.NoUpstream {
		t.Fatalf("after a good reload: %+v", snap)
	}
	if len(snap.Upstreams) != 2 || snap.Upstreams[0].Name != "b:587" || snap.Upstreams[0].ConsecutiveFailures != 1 ||
		snap.Upstreams[1].Name != "c:465" || !snap.Upstreams[1].Up {
		t.Fatalf("upstreams after reload: %+v", snap.Upstreams)
	}
	m.Reconfigured(nil, nil)
	if snap = m.Snapshot(); !snap.NoUpstream || len(snap.Upstreams) != 0 {
		t.Fatalf("all upstreams removed: %+v", snap)
	}
}
