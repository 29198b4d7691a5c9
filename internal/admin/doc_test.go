package admin

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"relaybox/internal/status"
)

// Every route the server registers has a section in docs/api.md, and
// every documented route exists: a route added without documentation fails
// here. The routes are read from this package's source, where NewServer
// registers them.
func TestAPIDocCoversEveryRoute(t *testing.T) {
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile(`HandleFunc\("([A-Z]+ /[^"]*)"`).FindAllStringSubmatch(string(src), -1)
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in server.go; is the pattern stale?", len(routes))
	}
	registered := map[string]bool{}
	for _, r := range routes {
		registered[r[1]] = true
		if !strings.Contains(string(doc), "### `"+r[1]+"`") {
			t.Errorf("route %s (registered in internal/admin/server.go) is not documented: add a section \"### `%s`\" to docs/api.md", r[1], r[1])
		}
	}
	for _, m := range regexp.MustCompile("(?m)^### `([A-Z]+ /[^`]*)`").FindAllStringSubmatch(string(doc), -1) {
		if !registered[m[1]] {
			t.Errorf("docs/api.md documents %s, which internal/admin/server.go does not register", m[1])
		}
	}
}

// Every metric family /metrics can export is in docs/api.md's table.
func TestAPIDocCoversEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeMetrics(&b, status.Snapshot{Upstreams: []status.Upstream{{Name: "u"}}})
	writeRuntimeMetrics(&b)
	writeProcessMetrics(&b, time.Now())
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(b.String(), -1) {
		if !regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(m[1]) + "[`{]").Match(doc) {
			t.Errorf("metric %s is not documented: add a row to the /metrics table in docs/api.md", m[1])
		}
	}
}
