package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"relaybox/internal/status"
)

// metrics writes the Prometheus text exposition format 0.0.4 by hand: a
// dozen series do not justify a client library in a static binary for a
// small board. Every figure comes from one status snapshot.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	snap := s.opt.Status.Snapshot()
	var b bytes.Buffer
	writeMetrics(&b, snap)
	writeRuntimeMetrics(&b)
	writeProcessMetrics(&b, s.opt.Started)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

type sample struct {
	labels string // rendered {k="v"}, or ""
	value  string
}

func writeMetrics(b *bytes.Buffer, snap status.Snapshot) {
	family := func(name, typ, help string, samples ...sample) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, sm := range samples {
			fmt.Fprintf(b, "%s%s %s\n", name, sm.labels, sm.value)
		}
	}
	u := func(v uint64) sample { return sample{value: strconv.FormatUint(v, 10)} }
	i := func(v int64) sample { return sample{value: strconv.FormatInt(v, 10)} }
	c := snap.Counters
	family("relaybox_messages_accepted_total", "counter", "Messages accepted from devices and committed to the spool.", u(c.Accepted))
	family("relaybox_messages_delivered_total", "counter", "Message deliveries the upstream relay accepted.", u(c.Delivered))
	family("relaybox_messages_deferred_total", "counter", "Delivery attempts that ended in a temporary failure (retried later).", u(c.Deferred))
	family("relaybox_messages_failed_total", "counter", "Deliveries refused for good by the upstream relay.", u(c.Failed))
	family("relaybox_messages_expired_total", "counter", "Messages dead-lettered after queue.max_age.", u(c.Expired))

	q := snap.Queue
	family("relaybox_queue_messages", "gauge", "Messages waiting in the spool (not dead).", i(int64(q.Messages)))
	family("relaybox_queue_bytes", "gauge", "Body bytes of the messages waiting in the spool.", i(q.Bytes))
	family("relaybox_queue_oldest_age_seconds", "gauge", "Age of the oldest waiting message; 0 when the queue is empty.",
		sample{value: formatFloat(q.OldestAgeSeconds)})
	family("relaybox_queue_quota_bytes", "gauge", "The spool quota (queue.max_size); 0 = unlimited.", i(q.Quota))
	family("relaybox_dead_messages", "gauge", "Messages on the dead-letter list.", i(int64(q.Dead)))
	family("relaybox_dead_bytes", "gauge", "Body bytes of the messages on the dead-letter list.", i(q.DeadBytes))

	var up, fails, last []sample
	for _, us := range snap.Upstreams {
		l := labels("upstream", us.Name)
		v := "0"
		if us.Up {
			v = "1"
		}
		up = append(up, sample{l, v})
		fails = append(fails, sample{l, strconv.Itoa(us.ConsecutiveFailures)})
		ts := "0"
		if !us.LastSuccess.IsZero() {
			ts = formatFloat(float64(us.LastSuccess.UnixMilli()) / 1000)
		}
		last = append(last, sample{l, ts})
	}
	family("relaybox_upstream_up", "gauge", "1 if the upstream relay's last result was a success (or it has not been tried), else 0.", up...)
	family("relaybox_upstream_consecutive_failures", "gauge", "Failures of the upstream relay since its last success.", fails...)
	family("relaybox_upstream_last_success_timestamp_seconds", "gauge", "Unix time of the upstream relay's last success; 0 = never.", last...)

	var states []sample
	for _, st := range status.States() {
		v := "0"
		if st == snap.State {
			v = "1"
		}
		states = append(states, sample{labels("state", string(st)), v})
	}
	family("relaybox_state", "gauge", "Overall state: 1 for the current one.", states...)
	family("relaybox_info", "gauge", "Build information.", sample{labels("version", snap.Version), "1"})
}

// runtimeSamples are read with runtime/metrics, which, unlike
// runtime.ReadMemStats, does not stop the world: a scrape must not stall
// sessions that are streaming a body.
var runtimeSamples = [...]struct{ key, name, help string }{
	// go_goroutines is the name every Go exporter uses, so fleet
	// dashboards and alerts written for other Go services work unchanged.
	{"/sched/goroutines:goroutines", "go_goroutines",
		"Goroutines in the daemon; one per open session plus a fixed few, so a rise that stays is a leak."},
	{"/memory/classes/heap/objects:bytes", "relaybox_process_heap_bytes",
		"Bytes of heap objects (live, plus dead ones not yet swept)."},
	{"/memory/classes/total:bytes", "relaybox_go_memory_bytes",
		"All memory the Go runtime has mapped from the OS (heap, stacks, runtime data)."},
}

// writeRuntimeMetrics adds the process gauges that a soak test or a
// monitoring system watches for leaks. They come from the runtime, not
// from the status model, since they describe this process rather than the
// relay's health.
func writeRuntimeMetrics(b *bytes.Buffer) {
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, rs := range runtimeSamples {
		samples[i].Name = rs.key
	}
	metrics.Read(samples)
	for i, rs := range runtimeSamples {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			continue // not offered by this Go version: leave the family out
		}
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", rs.name, rs.help, rs.name, rs.name, samples[i].Value.Uint64())
	}
}

// writeProcessMetrics adds the standard process_* gauges under their
// conventional names: the start time (a restart shows as a step; the
// alert "daemon restarted" uses it) and, where the OS tells, the resident
// memory.
func writeProcessMetrics(b *bytes.Buffer, started time.Time) {
	fmt.Fprintf(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"+
		"# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %s\n",
		formatFloat(float64(started.UnixMilli())/1000))
	if rss, ok := residentBytes(); ok {
		fmt.Fprintf(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"+
			"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", rss)
	}
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// labelEscaper implements the text format's label value escaping.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labels(name, value string) string {
	return "{" + name + `="` + labelEscaper.Replace(value) + `"}`
}
