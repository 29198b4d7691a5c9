package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/sink"
)

type testClient struct {
	*Client
	logs *logBuffer
}

func newTestClient(t *testing.T, connect time.Duration, ups ...Upstream) testClient {
	t.Helper()
	logs := &logBuffer{}
	c, err := NewClient(ClientOptions{
		Hostname:       "relaybox.lab.test",
		Upstreams:      ups,
		ConnectTimeout: connect,
		CommandTimeout: 2 * time.Second,
		DataTimeout:    2 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return testClient{Client: c, logs: logs}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, c testClient) Conn {
	t.Helper()
	k, err := c.Dial(testCtx(t), 0)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// asError insists that err is an *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSendDeliversByteIdentical(t *testing.T) {
	for _, mode := range []string{"starttls", "tls", "none"} {
		t.Run(mode, func(t *testing.T) {
			u := startUpstreamMode(t, TLSMode(mode), sink.Options{})
			c := newTestClient(t, 2*time.Second, u.Upstream())
			k := dial(t, c)
			body := testBody(200 << 10)
			res, err := k.Send(testCtx(t), Outgoing{From: "scanner@lab.example.edu", Rcpts: []string{"prof@example.edu"}}, bytes.NewReader(body))
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			// The relay's reply carries its queue ID, which is what campus
			// IT asks for: it is kept as it came.
			if len(res) != 1 || res[0].Address != "prof@example.edu" || res[0].Err != nil || res[0].Reply != "250 2.0.0 OK: queued as S000001" {
				t.Fatalf("results = %+v", res)
			}
			msgs := u.Messages()
			if len(msgs) != 1 {
				t.Fatalf("upstream got %d messages", len(msgs))
			}
			if msgs[0].From != "scanner@lab.example.edu" || !reflect.DeepEqual(msgs[0].To, []string{"prof@example.edu"}) {
				t.Errorf("envelope = %q %q", msgs[0].From, msgs[0].To)
			}
			if !bytes.Equal(msgs[0].Body, body) {
				t.Errorf("body differs: got %d bytes, sent %d", len(msgs[0].Body), len(body))
			}
			wantTLS := map[string]string{"starttls": "yes", "tls": "yes", "none": "no"}[mode]
			if !u.Saw("mail scanner@lab.example.edu tls=" + wantTLS) {
				t.Errorf("events = %q, want MAIL with tls=%s", u.Events(), wantTLS)
			}
			if mode == "starttls" && u.Events()[0] != "ehlo tls=no" {
				t.Errorf("events = %q, want a plain EHLO first", u.Events())
			}
			if mode == "none" && !strings.Contains(c.logs.String(), "NOT ENCRYPTED") {
				t.Errorf("no warning about tls = none in log:\n%s", c.logs)
			}
		})
	}
}

func TestUntrustedCertificateSendsNothing(t *testing.T) {
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			u := startUpstreamMode(t, TLSMode(mode), sink.Options{})
			up := u.Upstream()
			up.CAFile = "" // system or built-in roots cannot know a self-signed relay
			c := newTestClient(t, 2*time.Second, up)
			_, err := c.Dial(testCtx(t), 0)
			e := asError(t, err)
			want := "upstream " + u.Addr + ": tls: certificate signed by unknown authority (set upstream[0].ca_file to the relay's CA, or check the relay's certificate)"
			if e.Op != "tls" || e.Code != 0 || e.Permanent || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err = %q (op %s), want prefix %q", err, e.Op, want)
			}
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("underlying error not kept: %#v", e.Err)
			}
			if u.Saw("mail") || u.Saw("auth") || len(u.Messages()) != 0 {
				t.Errorf("upstream saw %q before verification", u.Events())
			}
		})
	}
}

func TestWrongServerName(t *testing.T) {
	u := startUpstream(t, sink.Options{})
	up := u.Upstream()
	up.ServerName = "relay.example.edu"
	c := newTestClient(t, 2*time.Second, up)
	_, err := c.Dial(testCtx(t), 0)
	e := asError(t, err)
	for _, s := range []string{"localhost", "127.0.0.1", `"relay.example.edu"`, "upstream[0].server_name"} {
		if !strings.Contains(e.Text, s) {
			t.Errorf("message %q does not mention %s", e.Text, s)
		}
	}
	if e.Op != "tls" || u.Saw("mail") {
		t.Errorf("op = %s, events %q", e.Op, u.Events())
	}
}

func TestSTARTTLSNotOffered(t *testing.T) {
	// A plain relay, dialled as one that must offer STARTTLS.
	u := startUpstreamMode(t, TLSNone, sink.Options{})
	c := newTestClient(t, 2*time.Second, Upstream{Address: u.Addr, TLS: TLSStartTLS, CAFile: u.Cert.CAFile})
	_, err := c.Dial(testCtx(t), 0)
	e := asError(t, err)
	want := `upstream does not offer STARTTLS; set tls = "tls" for port 465 or fix the upstream`
	if e.Op != "starttls" || e.Text != want {
		t.Errorf("err = %q", err)
	}
	if u.Saw("mail") {
		t.Errorf("mail sent in clear: %q", u.Events())
	}
}

func TestImplicitTLSAgainstPlainPort(t *testing.T) {
	u := startUpstreamMode(t, TLSNone, sink.Options{})
	c := newTestClient(t, 2*time.Second, Upstream{Address: u.Addr, TLS: TLSImplicit, CAFile: u.Cert.CAFile})
	_, err := c.Dial(testCtx(t), 0)
	if e := asError(t, err); e.Op != "tls" || !strings.Contains(e.Text, `set tls = "starttls"`) {
		t.Errorf("err = %q", err)
	}
}

func TestInsecureSkipsVerificationLoudly(t *testing.T) {
	u := startUpstream(t, sink.Options{})
	up := u.Upstream()
	up.CAFile, up.Insecure = "", true
	c := newTestClient(t, 2*time.Second, up)
	if !strings.Contains(c.logs.String(), "VERIFICATION IS OFF") {
		t.Errorf("no loud warning at NewClient:\n%s", c.logs)
	}
	k := dial(t, c)
	if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
}

func TestAuth(t *testing.T) {
	const secret = "s3cret-Pa55!"
	cases := []struct {
		name, mechs, password string
		wantEvent             string
		wantCode              int
		wantText              string
	}{
		{"plain", "PLAIN LOGIN", secret, "auth PLAIN alice", 0, ""},
		{"login only", "LOGIN", secret, "auth LOGIN alice", 0, ""},
		{"wrong password", "PLAIN", "wrong-Pa55word", "auth PLAIN alice", 535, "upstream[0].password_file"},
		{"not offered", "", secret, "", 0, "does not offer AUTH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := startUpstream(t, sink.Options{AuthMechs: strings.Fields(tc.mechs), User: "alice", Password: secret})
			up := u.Upstream()
			up.Username, up.PasswordFile = "alice", writeFile(t, "pw", tc.password+"\n")
			c := newTestClient(t, 2*time.Second, up)
			k, err := c.Dial(testCtx(t), 0)
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				_, err = k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n"))
				k.Close()
				if err != nil || len(u.Messages()) != 1 {
					t.Fatalf("Send: %v, %d messages", err, len(u.Messages()))
				}
			} else {
				e := asError(t, err)
				if e.Op != "auth" || e.Code != tc.wantCode || !strings.Contains(e.Text, tc.wantText) {
					t.Errorf("err = %q", err)
				}
				if tc.wantCode == 535 && !e.Permanent {
					t.Errorf("535 not permanent")
				}
			}
			if tc.wantEvent != "" && !u.Saw(tc.wantEvent) {
				t.Errorf("events = %q, want %q", u.Events(), tc.wantEvent)
			}
			plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + tc.password))
			for _, leak := range []string{tc.password, plain, base64.StdEncoding.EncodeToString([]byte(tc.password))} {
				if err != nil && strings.Contains(err.Error(), leak) {
					t.Errorf("password in error: %q", err)
				}
				if strings.Contains(c.logs.String(), leak) {
					t.Errorf("password in log:\n%s", c.logs)
				}
			}
		})
	}
}

func TestPerRecipientResults(t *testing.T) {
	u := startUpstream(t, sink.Options{Reject: func(stage string) error {
		switch stage {
		case "rcpt:gone@example.edu":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "rcpt:full@example.edu":
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	rcpts := []string{"gone@example.edu", "full@example.edu", "prof@example.edu"}
	res, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: rcpts}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(res) != 3 || res[0].Address != rcpts[0] || res[1].Address != rcpts[1] || res[2].Address != rcpts[2] {
		t.Fatalf("results = %+v", res)
	}
	if e := res[0].Err; e == nil || e.Code != 550 || e.Enhanced != "5.1.1" || !e.Permanent || e.Op != "rcpt" {
		t.Errorf("gone: %+v", e)
	}
	if e := res[1].Err; e == nil || e.Code != 452 || e.Permanent || e.Reply() != "452 4.2.2 mailbox full" {
		t.Errorf("full: %+v", e)
	}
	if res[2].Err != nil {
		t.Errorf("prof refused: %v", res[2].Err)
	}
	if m := u.Messages(); len(m) != 1 || !reflect.DeepEqual(m[0].To, []string{"prof@example.edu"}) {
		t.Errorf("messages = %+v", m)
	}
}

func TestAllRecipientsRefusedSkipsData(t *testing.T) {
	u := startUpstream(t, sink.Options{Reject: func(stage string) error {
		switch stage {
		case "rcpt:busy@example.edu":
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		case "rcpt:gone@example.edu":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	res, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"gone@example.edu", "busy@example.edu"}}, strings.NewReader("x\r\n"))
	e := asError(t, err)
	if e.Code != 451 || e.Permanent || len(res) != 2 || res[0].Err.Code != 550 {
		t.Errorf("err = %v, results %+v", err, res)
	}
	if u.Saw("data") {
		t.Errorf("DATA sent with no recipient: %q", u.Events())
	}
	if err := k.Reset(testCtx(t)); err != nil {
		t.Errorf("Reset after refusals: %v", err)
	}
}

func TestMail4xxKeepsSessionUsable(t *testing.T) {
	var calls atomic.Int32
	u := startUpstream(t, sink.Options{Reject: func(stage string) error {
		if stage == "mail" && calls.Add(1) == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted"}
		}
		return nil
	}})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	ctx := testCtx(t)
	res, err := k.Send(ctx, Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n"))
	e := asError(t, err)
	if res != nil || e.Op != "mail" || e.Code != 451 || e.Enhanced != "4.3.0" || e.Permanent {
		t.Fatalf("err = %v (%+v), results %+v", err, e, res)
	}
	if err := k.Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if _, err := k.Send(ctx, Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n")); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if len(u.Messages()) != 1 || u.Conns() != 1 {
		t.Errorf("%d messages over %d connections", len(u.Messages()), u.Conns())
	}
}

func TestData552IsPermanent(t *testing.T) {
	u := startUpstream(t, sink.Options{Reject: func(stage string) error {
		if stage != "data" {
			return nil
		}
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too big"}
	}})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	res, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n"))
	e := asError(t, err)
	if e.Op != "dot" || e.Code != 552 || !e.Permanent || len(res) != 1 || res[0].Err != nil {
		t.Errorf("err = %v, results %+v", err, res)
	}
	if err := k.Reset(testCtx(t)); err != nil {
		t.Errorf("Reset after a refused message: %v", err)
	}
}

func TestGreeting421(t *testing.T) {
	addr := startRawUpstream(t, greetWith("421 4.3.2 too busy, come back later"))
	c := newTestClient(t, 2*time.Second, Upstream{Address: addr, TLS: TLSNone, Insecure: true})
	_, err := c.Dial(testCtx(t), 0)
	e := asError(t, err)
	if e.Op != "greeting" || e.Code != 421 || e.Enhanced != "4.3.2" || e.Permanent {
		t.Errorf("err = %v (%+v)", err, e)
	}
}

func TestNoGreetingTimesOut(t *testing.T) {
	addr := startRawUpstream(t, neverGreet)
	c := newTestClient(t, 200*time.Millisecond, Upstream{Address: addr, CAFile: newTestCert(t).CAFile})
	start := time.Now()
	_, err := c.Dial(testCtx(t), 0)
	took := time.Since(start)
	e := asError(t, err)
	if e.Op != "greeting" || e.Code != 0 || !strings.Contains(e.Text, "no greeting") || !strings.Contains(e.Text, "200ms") || !strings.Contains(e.Text, `tls = "tls"`) {
		t.Errorf("err = %v", err)
	}
	if took < 150*time.Millisecond || took > time.Second {
		t.Errorf("gave up after %v, want about 200ms", took)
	}
}

func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestClient(t, 2*time.Second, Upstream{Address: addr, TLS: TLSNone, Insecure: true})
	_, err = c.Dial(testCtx(t), 0)
	if e := asError(t, err); e.Op != "dial" || !strings.Contains(e.Text, "refused") {
		t.Errorf("err = %v", err)
	}
}

func TestCutDuringData(t *testing.T) {
	u := startUpstream(t, sink.Options{Cut: func(stage string) bool { return stage == "data" }})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	_, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, bytes.NewReader(testBody(2<<20)))
	e := asError(t, err)
	// bytes.Reader streams through WriteTo, as the spool's reader does: the
	// failed write must still be blamed on the network, not the body.
	if e.Code != 0 || e.Permanent || (e.Op != "data" && e.Op != "dot") || strings.Contains(e.Text, "message body") {
		t.Errorf("err = %v (%+v)", err, e)
	}
	if err := k.Reset(testCtx(t)); err == nil {
		t.Errorf("Reset on a cut session succeeded")
	}
	if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n")); err == nil {
		t.Errorf("Send on a cut session succeeded")
	}
}

// A body that fails mid-way, read through Read or (as the spool's reader
// is) through WriteTo, is reported as a local problem and never delivered.
func TestBodyReadErrorNeverSendsTheDot(t *testing.T) {
	for name, body := range map[string]func() io.Reader{
		"Read":    func() io.Reader { return &failingReader{data: testBody(100 << 10), failAt: 50 << 10} },
		"WriteTo": func() io.Reader { return &failingWriterTo{failingReader{data: testBody(100 << 10), failAt: 50 << 10}} },
	} {
		t.Run(name, func(t *testing.T) {
			u := startUpstream(t, sink.Options{})
			c := newTestClient(t, 2*time.Second, u.Upstream())
			k := dial(t, c)
			_, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, body())
			if e := asError(t, err); e.Op != "data" || !strings.Contains(e.Text, "reading the message body: spool chunk 3 is corrupt") {
				t.Errorf("err = %v", err)
			}
			// Had the dot gone out, Send would have waited for the relay's 250,
			// which comes after the relay records the message.
			if len(u.Messages()) != 0 {
				t.Errorf("a truncated message was delivered")
			}
		})
	}
}

type failingReader struct {
	data   []byte
	off    int
	failAt int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.off >= f.failAt {
		return 0, errors.New("spool chunk 3 is corrupt")
	}
	n := copy(p, f.data[f.off:min(len(f.data), f.failAt)])
	f.off += n
	return n, nil
}

// failingWriterTo fails the same way through WriteTo, in 16 KiB steps.
type failingWriterTo struct{ failingReader }

func (f *failingWriterTo) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, 16<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil {
			return total, err
		}
	}
}

func TestSessionReuse(t *testing.T) {
	u := startUpstream(t, sink.Options{})
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	ctx := testCtx(t)
	for i, to := range []string{"one@example.edu", "two@example.edu"} {
		if i > 0 {
			if err := k.Reset(ctx); err != nil {
				t.Fatalf("Reset: %v", err)
			}
		}
		if _, err := k.Send(ctx, Outgoing{From: "a@lab", Rcpts: []string{to}}, strings.NewReader("msg "+to+"\r\n")); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	m := u.Messages()
	if len(m) != 2 || m[1].To[0] != "two@example.edu" || string(m[1].Body) != "msg two@example.edu\r\n" || u.Conns() != 1 {
		t.Errorf("%d messages over %d connections: %+v", len(m), u.Conns(), m)
	}
	if k.Upstream() != u.Addr {
		t.Errorf("Upstream() = %q", k.Upstream())
	}
}

func TestCancelDuringSend(t *testing.T) {
	release := make(chan struct{})
	u := startUpstream(t, sink.Options{Reject: func(stage string) error {
		if stage == "mail" {
			<-release
		}
		return nil
	}})
	t.Cleanup(func() { close(release) })
	c := newTestClient(t, 2*time.Second, u.Upstream())
	k := dial(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := k.Send(ctx, Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("err = %v after %v", err, time.Since(start))
	}
	if err := k.Reset(t.Context()); err == nil {
		t.Errorf("Reset after cancellation succeeded")
	}
}

func TestClientCertificate(t *testing.T) {
	client := newTestCert(t)
	u := startUpstreamMode(t, TLSImplicit, sink.Options{
		TLS: &tls.Config{ClientCAs: client.Pool, ClientAuth: tls.RequireAndVerifyClientCert}})
	up := u.Upstream()
	up.CertFile, up.KeyFile = client.CertFile, client.KeyFile
	c := newTestClient(t, 2*time.Second, up)
	k := dial(t, c)
	if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReportsSteps(t *testing.T) {
	cases := []struct {
		mode  string
		steps []string
	}{
		{"starttls", []string{"dial", "greeting", "ehlo", "starttls", "tls", "ehlo", "auth", "quit"}},
		{"tls", []string{"dial", "tls", "greeting", "ehlo", "auth", "quit"}},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			u := startUpstreamMode(t, TLSMode(tc.mode), sink.Options{AuthMechs: []string{"PLAIN"}, User: "alice", Password: "pw"})
			up := u.Upstream()
			up.Username, up.PasswordFile = "alice", writeFile(t, "pw", "pw")
			c := newTestClient(t, 2*time.Second, up)
			var got []Step
			if err := c.Check(testCtx(t), 0, func(s Step) { got = append(got, s) }); err != nil {
				t.Fatalf("Check: %v", err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
				if s.Err != nil || s.Took < 0 {
					t.Errorf("step %+v", s)
				}
				if s.Name == "tls" && !strings.Contains(s.Detail, "verified against "+up.CAFile) {
					t.Errorf("tls detail %q", s.Detail)
				}
			}
			if !reflect.DeepEqual(names, tc.steps) {
				t.Errorf("steps = %q, want %q", names, tc.steps)
			}
			if u.Saw("mail") {
				t.Errorf("Check sent mail: %q", u.Events())
			}
		})
	}
	t.Run("failure is the last step", func(t *testing.T) {
		u := startUpstream(t, sink.Options{})
		up := u.Upstream()
		up.CAFile = ""
		c := newTestClient(t, 2*time.Second, up)
		var got []Step
		err := c.Check(testCtx(t), 0, func(s Step) { got = append(got, s) })
		last := got[len(got)-1]
		if err == nil || last.Name != "tls" || last.Err == nil || last.Err.Error() != err.Error() {
			t.Errorf("err = %v, steps %+v", err, got)
		}
	})
}

func TestNewClientErrors(t *testing.T) {
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
	cert := newTestCert(t)
	good := Upstream{Address: "127.0.0.1:1", TLS: TLSNone, Insecure: true}
	cases := []struct {
		name string
		up   Upstream
		want string
	}{
		{"ca_file without certificates", Upstream{Address: "relay:587", CAFile: notPEM}, "upstream[1].ca_file " + notPEM + ": no certificates found"},
		{"ca_file missing", Upstream{Address: "relay:587", CAFile: "/nonexistent/ca.pem"}, "upstream[1].ca_file"},
		{"no password file", Upstream{Address: "relay:587", Username: "alice"}, "upstream[1].password_file is required"},
		{"password file missing", Upstream{Address: "relay:587", Username: "alice", PasswordFile: "/nonexistent/pw"}, "upstream[1].password_file"},
		{"empty password", Upstream{Address: "relay:587", Username: "alice", PasswordFile: writeFile(t, "pw", "\n")}, "is empty"},
		{"none without insecure", Upstream{Address: "relay:25", TLS: TLSNone}, `upstream[1].tls = "none"`},
		{"unknown tls", Upstream{Address: "relay:25", TLS: "ssl"}, `upstream[1].tls = "ssl"`},
		{"no port", Upstream{Address: "relay"}, "upstream[1].address"},
		{"cert without key", Upstream{Address: "relay:587", CertFile: cert.CertFile}, "upstream[1].cert_file and upstream[1].key_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(ClientOptions{Hostname: "relaybox", Upstreams: []Upstream{good, tc.up}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "deliver: ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoginClientPrompts(t *testing.T) {
	for _, prompts := range [][]string{{"Username:", "Password:"}, {"User Name", "Password"}, {"", ""}} {
		l := &loginClient{user: "alice", pass: "pw"}
		if mech, ir, _ := l.Start(); mech != "LOGIN" || ir != nil {
			t.Fatalf("Start = %s %q: the user name must wait for its prompt", mech, ir)
		}
		u, _ := l.Next([]byte(prompts[0]))
		p, _ := l.Next([]byte(prompts[1]))
		if string(u) != "alice" || string(p) != "pw" {
			t.Errorf("prompts %q: answered %q, %q", prompts, u, p)
		}
	}
}
