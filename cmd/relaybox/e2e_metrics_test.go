package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// promtool returns its path, or skips the test saying how to get it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIP: promtool not installed, Prometheus checks not run (apt-get install prometheus)")
	}
	return p
}

// scrapeLive starts a relay with its admin API and returns one /metrics.
func scrapeLive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addr, admin := freeAddr(t), freeAddr(t)
	cfg := strings.Replace(acceptConfig(filepath.Join(dir, "data"), addr), `listen = ""`, `listen = "`+admin+`"`, 1)
	startRelay(t, writeFile(t, filepath.Join(dir, "relaybox.toml"), cfg), addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// Every metric the shipped alerts and dashboard use is one the daemon
// exports (a renamed metric would leave a silent alert), with the
// conventional names of the process gauges.
func TestE2EMetricsMatchAlertsAndDashboard(t *testing.T) {
	live := scrapeLive(t)
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(live, -1) {
		exported[m[1]] = true
	}
	for _, name := range []string{"process_start_time_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if !exported[name] {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	var used []string
	alerts, err := os.ReadFile("../../board/prometheus/relaybox-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+expr: (.*(?:\n\s{10}.*)*)`).FindAllStringSubmatch(string(alerts), -1) {
		used = append(used, m[1])
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("../../board/prometheus/relaybox-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			used = append(used, tg.Expr)
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d expressions", len(used))
	}
	ident := regexp.MustCompile(`\b((?:relaybox|process|go)_[a-z_]+)\b`)
	for _, e := range used {
		for _, m := range ident.FindAllString(e, -1) {
			if !exported[m] {
				t.Errorf("%s is used in %q but not exported by /metrics", m, e)
			}
		}
	}
}

func TestE2EMetricsPromtoolCheck(t *testing.T) {
	pt := promtool(t)
	live := scrapeLive(t)
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = strings.NewReader(live)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestPrometheusAlertRules(t *testing.T) {
	pt := promtool(t)
	dir := "../../board/prometheus"
	for _, args := range [][]string{{"check", "rules", "relaybox-alerts.yml"}, {"test", "rules", "relaybox-alerts.test.yml"}} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
