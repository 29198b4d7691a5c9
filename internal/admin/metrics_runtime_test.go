package admin

import (
	"bytes"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The runtime gauges are present, well formed and plausible: a soak test
// reads go_goroutines to detect leaked sessions.
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
	before := gauge(t, "go_goroutines")
	stop := make(chan struct{})
	for range 5 {
		go func() { <-stop }()
	}
	defer close(stop)
	if after := gauge(t, "go_goroutines"); after < before+5 {
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

// The standard process gauges carry the names fleet dashboards expect.
func TestProcessMetrics(t *testing.T) {
	var b bytes.Buffer
	started := time.Date(2026, 12, 1, 8, 0, 0, 500e6, time.UTC)
	writeProcessMetrics(&b, started)
	out := b.String()
	if !strings.Contains(out, "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1796112000.5\n") {
		t.Errorf("start time missing or wrong:\n%s", out)
	}
	if runtime.GOOS == "linux" {
		m := regexp.MustCompile(`(?m)^process_resident_memory_bytes (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("process_resident_memory_bytes missing:\n%s", out)
		}
		if v, _ := strconv.ParseInt(m[1], 10, 64); v < 1<<20 {
			t.Errorf("resident memory %d bytes: implausible for a Go process", v)
		}
	}
}
