package spool

import (
	"encoding/json"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// oldRetryable is the rule admin applied to the reply text before
// recipients kept their outcome as data: records written then must be
// read by the same rule now.
func oldRetryable(reply string) bool {
	if strings.HasPrefix(reply, "expired") {
		return true
	}
	isDigit := func(b byte) bool { return b >= '0' && b <= '9' }
	return !(len(reply) >= 3 && reply[0] == '5' && isDigit(reply[1]) && isDigit(reply[2]))
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		in   string
		want Outcome
	}{
		{"", Outcome{}},
		{"550 5.1.1 user unknown", Outcome{Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "user unknown"}},
		{"421 4.7.0 try later", Outcome{Code: 421, Enhanced: "4.7.0", Text: "try later"}},
		{"451 greylisted", Outcome{Code: 451, Text: "greylisted"}},
		{"250 2.0.0 Ok: queued as 4Bx", Outcome{Code: 250, Enhanced: "2.0.0", Text: "Ok: queued as 4Bx"}},
		{"554 5.6.3", Outcome{Permanent: true, Code: 554, Text: "5.6.3"}},
		{"expired after 5d0h: 421 busy", Outcome{Expired: true, Text: "expired after 5d0h: 421 busy"}},
		{"cannot connect to smtp.example.edu:587: connection refused", Outcome{Text: "cannot connect to smtp.example.edu:587: connection refused"}},
		// Digits not followed by a space are no code, but the old rule
		// read a leading 5xx as permanent and still does for old records.
		{"550", Outcome{Permanent: true, Text: "550"}},
		{"5501 odd", Outcome{Permanent: true, Text: "5501 odd"}},
		{"55x", Outcome{Text: "55x"}},
	}
	for _, c := range cases {
		got := ParseReply(c.in)
		if got != c.want {
			t.Errorf("ParseReply(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.Reply() != c.in {
			t.Errorf("ParseReply(%q).Reply() = %q: the text does not survive", c.in, got.Reply())
		}
		if r := got.Expired || !got.Permanent; r != oldRetryable(c.in) {
			t.Errorf("ParseReply(%q): retryable %v, the old rule said %v", c.in, r, !r)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"550 5.1.1 user unknown", "421 busy", "expired after 1h: x", "550", "250 2.0.0 ", "5.1.1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o := ParseReply(s)
		if o.Reply() != s {
			t.Fatalf("ParseReply(%q).Reply() = %q", s, o.Reply())
		}
		if r := o.Expired || !o.Permanent; r != oldRetryable(s) {
			t.Fatalf("ParseReply(%q) = %+v: retryable %v, the old rule said %v", s, o, r, !r)
		}
	})
}

// An old record has only "reply"; its outcome is derived as it is read,
// and the record written back carries both.
func TestRecipientJSON(t *testing.T) {
	old := `{"id":"x","recipients":[` +
		`{"address":"a@example.edu","state":"failed","reply":"550 5.1.1 user unknown","updated":"2025-03-04T10:00:00Z"},` +
		`{"address":"b@example.edu","state":"failed","reply":"expired after 5d0h: 421 busy"},` +
		`{"address":"c@example.edu","state":"pending"}]}`
	var m Message
	if err := json.Unmarshal([]byte(old), &m); err != nil {
		t.Fatal(err)
	}
	m.deriveOutcomes()
	want := []Outcome{
		{Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "user unknown"},
		{Expired: true, Text: "expired after 5d0h: 421 busy"},
		{},
	}
	for i, r := range m.Recipients {
		if r.Outcome != want[i] {
			t.Errorf("recipient %s: outcome %+v, want %+v", r.Address, r.Outcome, want[i])
		}
	}
	if m.Recipients[0].Updated.IsZero() || m.Recipients[0].State != RcptFailed {
		t.Errorf("recipient fields lost: %+v", m.Recipients[0])
	}

	m.fillReplies()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`"outcome":{"permanent":true,"code":550,"enhanced":"5.1.1","text":"user unknown"},"reply":"550 5.1.1 user unknown"`,
		`{"address":"c@example.edu","state":"pending"}`,
	} {
		if !strings.Contains(string(b), s) {
			t.Errorf("written record lacks %s:\n%s", s, b)
		}
	}
	// A new record's outcome wins over its text, which is only for
	// people and older versions.
	var back Message
	newer := strings.Replace(string(b), `"reply":"550 5.1.1 user unknown"`, `"reply":"451 edited"`, 1)
	if err := json.Unmarshal([]byte(newer), &back); err != nil {
		t.Fatal(err)
	}
	back.deriveOutcomes()
	if back.Recipients[0].Outcome != want[0] {
		t.Errorf("outcome read back %+v, want %+v", back.Recipients[0].Outcome, want[0])
	}
}

// A spool written before outcomes opens, and Get gives typed outcomes.
func TestOldRecordInSpool(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{Now: newClock().Now})
	m := put(t, s, testEnv("a@example.edu", "b@example.edu"), []byte("Subject: x\r\n\r\nx\r\n"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte(m.ID)), &rec); err != nil {
			return err
		}
		rec["state"] = "dead"
		rec["recipients"] = []map[string]any{
			{"address": "a@example.edu", "state": "failed", "reply": "550 5.7.1 relaying denied"},
			{"address": "b@example.edu", "state": "failed", "reply": "421 4.7.0 try later"},
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(m.ID), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{Now: newClock().Now})
	got, err := s.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o := got.Recipients[0].Outcome; !o.Permanent || o.Code != 550 || o.Enhanced != "5.7.1" {
		t.Errorf("old 5xx recipient: %+v", o)
	}
	if o := got.Recipients[1].Outcome; o.Permanent || o.Code != 421 || got.Recipients[1].Reply() != "421 4.7.0 try later" {
		t.Errorf("old 4xx recipient: %+v", o)
	}

	// An update writes the reply beside the outcome, so the record still
	// reads right to a person and to an older relaybox.
	if _, err := s.Update(m.ID, func(m *Message) error {
		m.Recipients[1].Outcome = Outcome{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rec []byte
	db.View(func(tx *bbolt.Tx) error {
		rec = append(rec, tx.Bucket(bucketMsgs).Get([]byte(m.ID))...)
		return nil
	})
	for _, want := range []string{`"reply":"550 5.7.1 relaying denied"`, `"outcome":{"code":452,"enhanced":"4.2.2","text":"mailbox full"},"reply":"452 4.2.2 mailbox full"`} {
		if !strings.Contains(string(rec), want) {
			t.Errorf("stored record lacks %s:\n%s", want, rec)
		}
	}
}
