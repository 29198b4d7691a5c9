package admin

import (
	"strings"
	"time"

	"relaybox/internal/spool"
	"relaybox/internal/status"
)

// Fixtures for the table tests: what devices and upstreams send, control
// characters and long UTF-8 text included.
var tableNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func tableMessages() []Message {
	return []Message{
		{ID: "M0001", State: spool.StateQueued, AgeSeconds: 7260, From: "scanner@lab.example.edu", Size: 123456, Attempts: 2,
			NextInSeconds: 3540, LastReply: "421 4.7.0 try later \x1b[2J" + strings.Repeat("é", 80),
			Recipients: []Recipient{{Address: "a@example.edu", State: spool.RcptDelivered}, {Address: "b@example.edu", State: spool.RcptPending}, {Address: "c@example.edu", State: spool.RcptPending}}},
		{ID: "M0002", State: spool.StateQueued, AgeSeconds: 5, From: "", Size: 10,
			Recipients: []Recipient{{Address: "x@example.edu", State: spool.RcptFailed, Reply: "550 no"}}},
		{ID: "M0003", State: spool.StateQueued, AgeSeconds: 90000, From: strings.Repeat("long.sender", 6) + "@example.edu", Size: 1 << 20},
	}
}

func tableDetail() *Detail {
	return &Detail{
		Message: Message{ID: "M0001", State: spool.StateQueued, Received: tableNow.Add(-2 * time.Hour), AgeSeconds: 7200,
			From: "scanner@lab.example.edu", ClientAddr: "10.1.2.3:40000", Device: "copier-2F", Size: 2048, Attempts: 2,
			NextInSeconds: 600, LastReply: "421 4.7.0 try later",
			Recipients: []Recipient{{Address: "a@example.edu", State: spool.RcptDelivered, Reply: "250 2.0.0 OK"}, {Address: "longer.name@example.edu", State: spool.RcptPending, Reply: "421 4.7.0 try later"}}},
		Helo: "copier", AuthUser: "scanner", Headers: "Subject: scan\r\nX-Evil: a\x1b[2Jb\r\n\tfolded\x07\r\n\r\n",
		History: []spool.Attempt{
			{At: tableNow.Add(-time.Hour), Upstream: "smtp.example.edu:587", Outcome: "deferred", Reply: "421 4.7.0 try later"},
			{At: tableNow.Add(-time.Minute), Upstream: "smtp2.example.edu:465"},
		},
	}
}

func tableSnapshot() status.Snapshot {
	return status.Snapshot{State: status.Degraded, Now: tableNow, Hostname: "relaybox", Version: "test",
		Upstreams: []status.Upstream{
			{Name: "smtp.example.edu:587", Up: false, ConsecutiveFailures: 3, LastError: "dial tcp: connection refused\x1b" + strings.Repeat("x", 80)},
			{Name: "smtp2.example.edu:465", Up: true, LastSuccess: tableNow.Add(-90 * time.Second)},
		}}
}

func tableEvents() []status.Event {
	return []status.Event{
		{Time: tableNow, Level: "INFO", Msg: "message", Attrs: "id=M1 event=sent"},
		{Time: tableNow.Add(time.Second), Level: "WARN", Msg: "upstream \x1b[31mfailing"},
	}
}
