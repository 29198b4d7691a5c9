package deliver

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/sink"
)

// SIZE= goes on every MAIL, and BODY=8BITMIME when the upstream offers it.
func TestSendAnnouncesSizeAndBody(t *testing.T) {
	u := startUpstream(t, sink.Options{MaxSize: 1 << 20})
	k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
	body := "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n"
	if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"b@example.edu"},
		Size: int64(len(body)), EightBit: true}, strings.NewReader(body)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := mailParams(u)
	if len(m) != 1 || m[0].Size != int64(len(body)) || m[0].Body != smtp.Body8BitMIME {
		t.Fatalf("MAIL parameters = %+v; want SIZE=%d BODY=8BITMIME", m, len(body))
	}
	if got := u.Messages(); len(got) != 1 || string(got[0].Body) != body {
		t.Fatalf("upstream got %+v", got)
	}
}

// A message over the upstream's advertised SIZE fails permanently before
// MAIL: nothing is uploaded.
func TestSendRefusesOverUpstreamSize(t *testing.T) {
	u := startUpstream(t, sink.Options{MaxSize: 1000, NoEightBitMIME: true})
	k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 200)
	res, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"b@example.edu"},
		Size: int64(len(body))}, bytes.NewReader(body))
	e := asError(t, err)
	if !e.Permanent || e.Code != 552 || e.Enhanced != "5.3.4" || !strings.Contains(e.Text, "accepts at most 1000") {
		t.Fatalf("error = %+v; want a permanent 552 5.3.4 naming the upstream's limit", e)
	}
	if res != nil || u.Saw("mail") || len(u.Messages()) != 0 {
		t.Fatalf("results %+v, upstream events %q: want nothing sent", res, u.Events())
	}
	// The session is still good for a message that fits.
	if err := k.Reset(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"b@example.edu"}, Size: 3},
		strings.NewReader("x\r\n")); err != nil {
		t.Fatalf("Send after the refusal: %v", err)
	}
	if m := mailParams(u); len(m) != 1 || m[0].Size != 3 || m[0].Body != "" {
		t.Fatalf("MAIL parameters = %+v; want SIZE=3 and no BODY (8BITMIME not offered)", m)
	}
}

// An 8-bit body is not sent raw to an upstream without 8BITMIME: it fails
// permanently with a reason (relaybox does not convert, RFC 6152).
func TestSendRefuses8BitWithout8BITMIME(t *testing.T) {
	u := startUpstream(t, sink.Options{NoEightBitMIME: true})
	k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
	body := "Subject: x\r\n\r\nna\xc3\xafve\r\n"
	_, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"b@example.edu"},
		Size: int64(len(body)), EightBit: true}, strings.NewReader(body))
	e := asError(t, err)
	if !e.Permanent || e.Code != 554 || e.Enhanced != "5.6.3" || !strings.Contains(e.Text, "8BITMIME") {
		t.Fatalf("error = %+v; want a permanent 554 5.6.3 naming 8BITMIME", e)
	}
	if u.Saw("mail") {
		t.Fatalf("upstream saw %q; want nothing sent", u.Events())
	}
}

// UTF-8 addresses go with SMTPUTF8 where the upstream offers it; where it
// does not, the affected recipients fail permanently (RFC 6531: no
// downgrade) and the others are delivered.
func TestSendSMTPUTF8(t *testing.T) {
	t.Run("offered", func(t *testing.T) {
		u := startUpstream(t, sink.Options{SMTPUTF8: true})
		k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
		res, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"\u00fc@example.edu"}, SMTPUTF8: true},
			strings.NewReader("x\r\n"))
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("Send = %+v, %v", res, err)
		}
		if m := mailParams(u); len(m) != 1 || !m[0].UTF8 {
			t.Fatalf("MAIL parameters = %+v; want SMTPUTF8", m)
		}
		if got := u.Messages(); len(got) != 1 || got[0].To[0] != "\u00fc@example.edu" {
			t.Fatalf("upstream got %+v", got)
		}
	})
	t.Run("not offered", func(t *testing.T) {
		u := startUpstream(t, sink.Options{})
		k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
		res, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu",
			Rcpts: []string{"\u00fc@example.edu", "plain@example.edu"}, SMTPUTF8: true}, strings.NewReader("x\r\n"))
		if err != nil || len(res) != 2 || res[1].Err != nil {
			t.Fatalf("Send = %+v, %v; want the ASCII recipient delivered", res, err)
		}
		if e := res[0].Err; e == nil || !e.Permanent || e.Code != 553 || e.Enhanced != "5.6.7" || !strings.Contains(e.Text, "SMTPUTF8") {
			t.Fatalf("UTF-8 recipient: %+v; want a permanent 553 5.6.7 naming SMTPUTF8", res[0].Err)
		}
		if got := u.Messages(); len(got) != 1 || len(got[0].To) != 1 || got[0].To[0] != "plain@example.edu" {
			t.Fatalf("upstream got %+v", got)
		}
		if m := mailParams(u); len(m) != 1 || m[0].UTF8 {
			t.Fatalf("MAIL parameters = %+v; want no SMTPUTF8", m)
		}
		// A UTF-8 sender: nothing can go.
		if err := k.Reset(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		_, err = k.Send(testCtx(t), Outgoing{From: "j\u00fcrg@lab.example.edu", Rcpts: []string{"plain@example.edu"}, SMTPUTF8: true},
			strings.NewReader("x\r\n"))
		if e := asError(t, err); !e.Permanent || e.Enhanced != "5.6.7" {
			t.Fatalf("UTF-8 sender: %+v; want a permanent 5.6.7", e)
		}
	})
}

// When no recipient can go (all UTF-8, no SMTPUTF8 upstream), no
// transaction is opened at all.
func TestSendNoTransactionWhenNoRecipientCanGo(t *testing.T) {
	u := startUpstream(t, sink.Options{})
	k := dial(t, newTestClient(t, 2*time.Second, u.Upstream()))
	res, err := k.Send(testCtx(t), Outgoing{From: "a@lab.example.edu", Rcpts: []string{"\u00fc@example.edu"}, SMTPUTF8: true},
		strings.NewReader("x\r\n"))
	if e := asError(t, err); !e.Permanent || e.Enhanced != "5.6.7" || len(res) != 1 || res[0].Err != e {
		t.Fatalf("Send = %+v, %+v; want the recipient failed with 5.6.7", res, e)
	}
	if u.Saw("mail") {
		t.Fatalf("upstream saw %q; want no MAIL", u.Events())
	}
}

// upstream-check's EHLO step says which messages the upstream's missing
// extensions will make fail.
func TestCheckNamesMissingExtensions(t *testing.T) {
	for _, tc := range []struct {
		opts       sink.Options
		want, lack string
	}{
		{sink.Options{NoEightBitMIME: true}, "no 8BITMIME", "8BITMIME,"},
		{sink.Options{SMTPUTF8: true}, "SMTPUTF8", "no SMTPUTF8"},
		{sink.Options{}, "no SMTPUTF8", "no 8BITMIME"},
	} {
		u := startUpstream(t, tc.opts)
		var ehlo string
		if err := newTestClient(t, 2*time.Second, u.Upstream()).Check(testCtx(t), 0, func(s Step) {
			if s.Name == "ehlo" {
				ehlo = s.Detail // the last one: after TLS
			}
		}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ehlo, tc.want) || strings.Contains(ehlo, tc.lack) {
			t.Errorf("%+v: ehlo step %q; want %q and not %q", tc.opts, ehlo, tc.want, tc.lack)
		}
	}
}

// mailParams are the MAIL parameters of every message the relay took.
func mailParams(u *testUpstream) []smtp.MailOptions {
	var p []smtp.MailOptions
	for _, m := range u.Messages() {
		p = append(p, m.Mail)
	}
	return p
}
