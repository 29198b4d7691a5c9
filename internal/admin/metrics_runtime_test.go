package admin

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
)

// The runtime gauges are present, well formed and plausible: a soak test
// reads relaybox_go_goroutines to detect leaked sessions.
func TestRuntimeMetrics(t *testing.T) {
	var b bytes.Buffer
	writeRuntimeMetrics(&b)
	out := b.String()
	for _, rs := range runtimeSamples {
		re := regexp.MustCompile(`(?m)^# TYPE ` + rs.name + ` gauge\n` + rs.name + ` (\d+)$`)
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s missing or malformed in:\n%s", rs.name, out)
			continue
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		if v == 0 {
			t.Errorf("%s = 0, want a live figure", rs.name)
		}
	}
	// A goroutine started now must show up in the next scrape.
	before := gauge(t, "relaybox_go_goroutines")
	stop := make(chan struct{})
	for range 5 {
		go func() { <-stop }()
	}
	defer close(stop)
	if after := gauge(t, "relaybox_go_goroutines"); after < before+5 {
		t.Errorf("goroutines %d -> %d after starting 5", before, after)
	}
}

func gauge(t *testing.T, name string) uint64 {
	t.Helper()
	var b bytes.Buffer
	writeRuntimeMetrics(&b)
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindSubmatch(b.Bytes())
	if m == nil {
		t.Fatalf("%s missing", name)
	}
	v, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return v
}
