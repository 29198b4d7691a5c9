package admin

import (
	"bytes"
	"strings"
	"testing"
)

// The CLI's tables, byte for byte: scripts and technicians read them, and
// a change in a column is a change in the product.
func TestWritePage(t *testing.T) {
	msgs := tableMessages()
	for _, tc := range []struct {
		name  string
		list  string
		page  *Page
		paged bool
		want  string
	}{
		{"first page of more", "list", &Page{Messages: msgs, Total: 9, Next: "M0003"}, false,
			"ID     AGE   FROM                                      SIZE       TRIES  NEXT    RECIPIENTS              LAST REPLY\n" +
				"M0001  2h1m  scanner@lab.example.edu                   120.6 KiB  2      in 59m  b@example.edu +2        421 4.7.0 try later [2Jéééééééééééééééééééééééééééééééééé...\n" +
				"M0002  5s    <>                                        10 B       0      now     x@example.edu (failed)  \n" +
				"M0003  1d1h  long.senderlong.senderlong.senderlong...  1.0 MiB    0      now     -                       \n" +
				"\n" +
				"3 shown of 9; next page: relaybox queue list -after M0003 (or -all)\n"},
		{"the whole queue", "list", &Page{Messages: msgs, Total: 3}, false,
			"ID     AGE   FROM                                      SIZE       TRIES  NEXT    RECIPIENTS              LAST REPLY\n" +
				"M0001  2h1m  scanner@lab.example.edu                   120.6 KiB  2      in 59m  b@example.edu +2        421 4.7.0 try later [2Jéééééééééééééééééééééééééééééééééé...\n" +
				"M0002  5s    <>                                        10 B       0      now     x@example.edu (failed)  \n" +
				"M0003  1d1h  long.senderlong.senderlong.senderlong...  1.0 MiB    0      now     -                       \n"},
		{"last page of the dead letters", "dead", &Page{Messages: msgs[1:], Total: 3}, true,
			"ID     AGE   FROM                                      SIZE     TRIES  RECIPIENTS              LAST REPLY\n" +
				"M0002  5s    <>                                        10 B     0      x@example.edu (failed)  \n" +
				"M0003  1d1h  long.senderlong.senderlong.senderlong...  1.0 MiB  0      -                       \n" +
				"\n" +
				"2 shown of 3\n"},
		{"past the end", "held", &Page{Total: 4}, true,
			"no more messages (4 in all)\n"},
		{"empty queue", "list", &Page{}, false,
			"queue is empty\n"},
		{"no dead letters", "dead", &Page{}, false,
			"no dead letters\n"},
	} {
		var b bytes.Buffer
		if err := WritePage(&b, tc.list, tc.page, tc.paged); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, b.String(), tc.want)
		}
	}
}

func TestWriteDetail(t *testing.T) {
	want := "id:          M0001\n" +
		"state:       queued\n" +
		"received:    2026-03-04 03:06:07Z (2h ago)\n" +
		"from:        scanner@lab.example.edu\n" +
		"client:      10.1.2.3:40000 (HELO copier)\n" +
		"device:      copier-2F\n" +
		"auth user:   scanner\n" +
		"size:        2.0 KiB\n" +
		"attempts:    2, next in 10m\n" +
		"last reply:  421 4.7.0 try later\n" +
		"\n" +
		"recipients:\n" +
		"  a@example.edu            delivered  250 2.0.0 OK\n" +
		"  longer.name@example.edu  pending    421 4.7.0 try later\n" +
		"\n" +
		"history:\n" +
		"  2026-03-04 04:06:07Z  smtp.example.edu:587   deferred                421 4.7.0 try later\n" +
		"  2026-03-04 05:05:07Z  smtp2.example.edu:465  (unknown: interrupted)  \n" +
		"\n" +
		"headers:\n" +
		"  Subject: scan\n" +
		"  X-Evil: a?[2Jb\n" +
		"  \tfolded?\n"
	var b bytes.Buffer
	if err := WriteDetail(&b, tableDetail()); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}

// Status: the snapshot's fields (their wording is status's, pinned there),
// then the upstream table.
func TestWriteStatus(t *testing.T) {
	snap := tableSnapshot()
	var fields bytes.Buffer
	if err := WriteFields(&fields, snap.Fields()); err != nil {
		t.Fatal(err)
	}
	want := fields.String() + "\n" +
		"UPSTREAM               UP   FAILURES  LAST SUCCESS  LAST ERROR\n" +
		"smtp.example.edu:587   no   3         never         dial tcp: connection refused xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\n" +
		"smtp2.example.edu:465  yes  0         1m ago        \n"
	var b bytes.Buffer
	if err := WriteStatus(&b, snap); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
	snap.Upstreams = nil
	b.Reset()
	if err := WriteStatus(&b, snap); err != nil || b.String() != fields.String() {
		t.Errorf("without upstreams: %v %q", err, b.String())
	}
	if !strings.HasPrefix(fields.String(), "state:     degraded") {
		t.Errorf("fields %q", fields.String())
	}
}

func TestWriteEvents(t *testing.T) {
	var b bytes.Buffer
	if err := WriteEvents(&b, tableEvents()); err != nil {
		t.Fatal(err)
	}
	want := "2026-03-04 05:06:07 INFO message id=M1 event=sent\n" +
		"2026-03-04 05:06:08 WARN upstream ?[31mfailing\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}
