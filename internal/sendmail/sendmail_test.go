package sendmail

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"relaybox/internal/submit"
)

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args []string
		want Request
		err  string
	}{
		{[]string{"-t", "-oi"}, Request{FromHeaders: true, IgnoreDots: true}, ""},
		{[]string{"-i", "-f", "a@x.test", "b@y.test"}, Request{IgnoreDots: true, From: "a@x.test", FromGiven: true, Recipients: []string{"b@y.test"}}, ""},
		{[]string{"-fa@x.test", "-FLab PC", "b@y.test"}, Request{From: "a@x.test", FromGiven: true, FullName: "Lab PC", Recipients: []string{"b@y.test"}}, ""},
		{[]string{"-r", "<>", "b@y.test"}, Request{FromGiven: true, Recipients: []string{"b@y.test"}}, ""},
		{[]string{"-F", "Backup", "-odi", "-oem", "-B8BITMIME", "-v", "-N", "never", "b@y.test"}, Request{FullName: "Backup", Recipients: []string{"b@y.test"}}, ""},
		{[]string{"-B", "8BITMIME", "--", "-odd@y.test"}, Request{Recipients: []string{"-odd@y.test"}}, ""},
		{[]string{"-config", "/etc/r.toml", "-t"}, Request{Config: "/etc/r.toml", FromHeaders: true}, ""},
		{[]string{"-config=/etc/r.toml", "b@y.test"}, Request{Config: "/etc/r.toml", Recipients: []string{"b@y.test"}}, ""},
		{nil, Request{}, "no recipients"},
		{[]string{"-bp"}, Request{}, "not supported"},
		{[]string{"-q"}, Request{}, "not supported"},
		{[]string{"-x", "b@y.test"}, Request{}, "unknown flag -x"},
		{[]string{"-f"}, Request{}, "-f needs a value"},
		{[]string{"a b@y.test"}, Request{}, "not an e-mail address"},
	}
	for _, c := range cases {
		got, err := ParseArgs(c.args)
		if c.err != "" {
			var ue *UsageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want usage error %q", c.args, err, c.err)
			}
			if ExitCode(err) != ExUsage {
				t.Errorf("%q: exit %d, want %d", c.args, ExitCode(err), ExUsage)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.args, got, c.want)
		}
	}
}

func read(t *testing.T, in string, opt ReadOptions) (string, []string) {
	t.Helper()
	m, err := ReadMessage(strings.NewReader(in), opt)
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	b, err := io.ReadAll(m.Reader())
	if err != nil {
		t.Fatal(err)
	}
	return string(b), m.Recipients
}

func TestReadMessage(t *testing.T) {
	cases := []struct {
		name, in string
		opt      ReadOptions
		out      string
		rcpts    []string
	}{
		{"bcc removed with its folded lines, recipients collected",
			"To: a@x.test, \"B, Person\" <b@x.test>\nBcc: c@x.test,\n d@x.test\nCc: e@x.test\nSubject: s\n\nbody\n",
			ReadOptions{FromHeaders: true, Sender: "me@h.test"},
			"To: a@x.test, \"B, Person\" <b@x.test>\nCc: e@x.test\nSubject: s\nFrom: me@h.test\r\n\nbody\n",
			[]string{"a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"}},
		{"bcc removed even without -t; From kept",
			"From: dev@x.test\r\nBCC: c@x.test\r\n\r\nbody\r\n", ReadOptions{Sender: "me@h.test"},
			"From: dev@x.test\r\n\r\nbody\r\n", nil},
		{"full name in the added From",
			"Subject: s\n\nb\n", ReadOptions{Sender: "me@h.test", FullName: "Lab PC"},
			"Subject: s\n" + `From: "Lab PC" <me@h.test>` + "\r\n\nb\n", nil},
		{"a lone dot ends the message without -i",
			"Subject: s\n\none\n.\nnot sent\n", ReadOptions{},
			"Subject: s\n\none\n", nil},
		{"a lone dot with CRLF ends it too",
			"Subject: s\r\n\r\none\r\n.\r\nnot sent\r\n", ReadOptions{},
			"Subject: s\r\n\r\none\r\n", nil},
		{"-i keeps dot lines",
			"Subject: s\n\none\n.\ntwo\n..x\n", ReadOptions{IgnoreDots: true},
			"Subject: s\n\none\n.\ntwo\n..x\n", nil},
		{"no header at all: From and a blank line go first",
			"just text\nmore\n", ReadOptions{Sender: "me@h.test"},
			"From: me@h.test\r\n\r\njust text\nmore\n", nil},
		{"input ends in the header",
			"Subject: s", ReadOptions{},
			"Subject: s\r\n\r\n", nil},
		{"undisclosed recipients name nobody",
			"To: undisclosed-recipients:;\nCc: a@x.test\n\nb\n", ReadOptions{FromHeaders: true},
			"To: undisclosed-recipients:;\nCc: a@x.test\n\nb\n", []string{"a@x.test"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, rcpts := read(t, c.in, c.opt)
			if out != c.out {
				t.Errorf("message\n got %q\nwant %q", out, c.out)
			}
			if !reflect.DeepEqual(rcpts, c.rcpts) {
				t.Errorf("recipients %v, want %v", rcpts, c.rcpts)
			}
		})
	}
}

func TestReadMessageBadHeader(t *testing.T) {
	_, err := ReadMessage(strings.NewReader("To: <unclosed@x.test\n\nb\n"), ReadOptions{FromHeaders: true})
	if ExitCode(err) != ExDataErr {
		t.Fatalf("err %v, exit %d; want a data error", err, ExitCode(err))
	}
	big := "X-Long: " + strings.Repeat("a", 1000) + "\n"
	_, err = ReadMessage(strings.NewReader(strings.Repeat(big, MaxHeader/len(big)+2)), ReadOptions{})
	if ExitCode(err) != ExDataErr {
		t.Fatalf("huge header: err %v; want a data error", err)
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, ExOK},
		{&submit.Error{Stage: submit.StageConnect, Err: errors.New("refused")}, ExTempFail},
		{&submit.Error{Stage: submit.StageEnd, Code: 452, Reply: "quota"}, ExTempFail},
		{&submit.Error{Stage: submit.StageEnd, Code: 451}, ExTempFail},
		{&submit.Error{Stage: submit.StageRcpt, Code: 550, Recipient: "x@y"}, ExNoUser},
		{&submit.Error{Stage: submit.StageHello, Code: 554}, ExUnavailable},
		{&submit.Error{Stage: submit.StageEnd, Code: 552}, ExDataErr},
		{&submit.Error{Stage: submit.StageBody, Err: submit.ErrBody}, ExIOErr},
		{&ConfigError{Err: errors.New("x")}, ExConfig},
		{errNoRecipients, ExDataErr},
		{errors.New("anything else"), ExSoftware},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.want)
		}
	}
}

func TestDefaultSender(t *testing.T) {
	for user, want := range map[string]string{
		"backup": "backup@h.test", `LAB\hplc`: "hplc@h.test", "": "relaybox@h.test", "a b<c>": "abc@h.test",
	} {
		if got := DefaultSender(user, "h.test"); got != want {
			t.Errorf("%q: %q, want %q", user, got, want)
		}
	}
}
