package deliver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"relaybox/internal/sink"
)

// fakeTokens is a TokenSource handing out numbered tokens; Invalidate
// moves on to the next one.
type fakeTokens struct {
	mu          sync.Mutex
	n           int
	err         error
	invalidated []string
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("tok-%d", f.n), nil
}

func (f *fakeTokens) Invalidate(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidated = append(f.invalidated, tok)
	f.n++
}

func newBearerClient(t *testing.T, up Upstream, ts TokenSource) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{Hostname: "relaybox.lab.test", Upstreams: []Upstream{up},
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Tokens: []TokenSource{ts}})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func TestBearerMechanisms(t *testing.T) {
	for _, mech := range []AuthMech{AuthXOAuth2, AuthOAuthBearer} {
		t.Run(string(mech), func(t *testing.T) {
			good := "tok-1" // the first token is refused, as a revoked one would be
			u := startUpstream(t, sink.Options{AuthMechs: []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}, User: "scanner@example.edu",
				Bearer: func(user, tok string) bool { return user == "scanner@example.edu" && tok == good }})
			up := u.Upstream()
			up.Username, up.Auth = "scanner@example.edu", mech
			ts := &fakeTokens{}
			c := newBearerClient(t, up, ts)

			_, err := c.Dial(testCtx(t), 0)
			e := asError(t, err)
			if e.Op != "auth" || e.Code != 535 || !strings.Contains(e.Text, "refused the OAuth token for scanner@example.edu") ||
				!strings.Contains(e.Text, "status 401") || !strings.Contains(e.Text, "SMTP AUTH is enabled") {
				t.Fatalf("refused token: err = %q", err)
			}
			if strings.Contains(err.Error(), "tok-0") {
				t.Errorf("the error carries the token: %q", err)
			}
			logins := u.Logins()
			if len(logins) != 1 || logins[0].Accepted || !logins[0].ErrorAnswered || logins[0].Mech != strings.ToUpper(string(mech)) {
				t.Fatalf("logins = %+v; want one refusal whose error challenge was answered", logins)
			}
			if !reflect.DeepEqual(ts.invalidated, []string{"tok-0"}) {
				t.Fatalf("invalidated %q; want the refused token", ts.invalidated)
			}

			k, err := c.Dial(testCtx(t), 0)
			if err != nil {
				t.Fatalf("Dial with the fresh token: %v", err)
			}
			if _, err := k.Send(testCtx(t), Outgoing{From: "a@lab", Rcpts: []string{"b@example.edu"}}, strings.NewReader("x\r\n")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			k.Close()
			l := u.Logins()[1]
			if !l.Accepted || l.Token != good {
				t.Fatalf("second login %+v", l)
			}
			if mech == "oauthbearer" {
				host, port, _ := strings.Cut(u.Addr, ":")
				if l.Host != host || l.Port != port {
					t.Errorf("OAUTHBEARER host/port = %q/%q; want %q/%q", l.Host, l.Port, host, port)
				}
			}
			if len(u.Messages()) != 1 {
				t.Fatalf("%d messages delivered", len(u.Messages()))
			}
		})
	}
}

func TestBearerTokenFailureIsReportedBeforeDialling(t *testing.T) {
	u := startUpstream(t, sink.Options{AuthMechs: []string{"XOAUTH2"}, User: "x", Bearer: func(string, string) bool { return true }})
	up := u.Upstream()
	up.Username, up.Auth = "scanner@example.edu", "xoauth2"
	refresh := errors.New("token refresh failed: invalid_grant (the refresh token was revoked or has expired: run relaybox oauth-login -upstream 0)")
	c := newBearerClient(t, up, &fakeTokens{err: refresh})
	var steps []string
	err := c.Check(testCtx(t), 0, func(s Step) { steps = append(steps, s.Name) })
	e := asError(t, err)
	if e.Op != "token" || e.Permanent || e.Reply() != refresh.Error() || !errors.Is(err, refresh) {
		t.Fatalf("err = %#v", e)
	}
	if !reflect.DeepEqual(steps, []string{"token"}) || u.Conns() != 0 {
		t.Fatalf("steps %q, %d connections; want the token step alone and no connection", steps, u.Conns())
	}
}

func TestCheckShowsTheTokenChain(t *testing.T) {
	u := startUpstream(t, sink.Options{AuthMechs: []string{"XOAUTH2"}, User: "x", Bearer: func(string, string) bool { return true }})
	up := u.Upstream()
	up.Username, up.Auth = "scanner@example.edu", "xoauth2"
	c := newBearerClient(t, up, &fakeTokens{})
	var got []Step
	if err := c.Check(testCtx(t), 0, func(s Step) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	want := []string{"token", "dial", "greeting", "ehlo", "starttls", "tls", "ehlo", "auth", "quit"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("steps %q; want %q", names, want)
	}
	if !strings.Contains(got[0].Detail, "access token fetched for scanner@example.edu") || strings.Contains(got[0].Detail, "tok-0") {
		t.Errorf("token detail %q", got[0].Detail)
	}
	if got[7].Detail != "XOAUTH2 as scanner@example.edu: accepted" {
		t.Errorf("auth detail %q", got[7].Detail)
	}
}

func TestBearerNeedsVerifiedTLSAndAnOfferedMechanism(t *testing.T) {
	u := startUpstream(t, sink.Options{AuthMechs: []string{"PLAIN"}, User: "x"})
	up := u.Upstream()
	up.Username, up.Auth = "scanner@example.edu", "xoauth2"
	for _, edit := range []func(*Upstream){
		func(u *Upstream) { u.Insecure = true },
		func(u *Upstream) { u.TLS, u.Insecure = TLSNone, true },
	} {
		bad := up
		edit(&bad)
		_, err := NewClient(ClientOptions{Hostname: "h", Upstreams: []Upstream{bad}, Tokens: []TokenSource{&fakeTokens{}}})
		if err == nil || !strings.Contains(err.Error(), "needs verified TLS") {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
	if _, err := NewClient(ClientOptions{Hostname: "h", Upstreams: []Upstream{up}}); err == nil || !strings.Contains(err.Error(), "token source") {
		t.Errorf("no token source: err = %v", err)
	}
	c := newBearerClient(t, up, &fakeTokens{})
	_, err := c.Dial(testCtx(t), 0)
	if e := asError(t, err); e.Op != "auth" || !strings.Contains(e.Text, "offers AUTH PLAIN, not XOAUTH2") {
		t.Fatalf("err = %v", err)
	}
}

func TestExplicitPlainAndLogin(t *testing.T) {
	u := startUpstream(t, sink.Options{AuthMechs: []string{"PLAIN", "LOGIN"}, User: "alice", Password: "pw"})
	up := u.Upstream()
	up.Username, up.PasswordFile, up.Auth = "alice", writeFile(t, "pw", "pw\n"), "login"
	c := newTestClient(t, 2*time.Second, up)
	k, err := c.Dial(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	if !u.Saw("auth LOGIN alice") {
		t.Fatalf("auth = login did not use LOGIN: %q", u.Events())
	}
	u2 := startUpstream(t, sink.Options{AuthMechs: []string{"LOGIN"}, User: "alice", Password: "pw"})
	up2 := u2.Upstream()
	up2.Username, up2.PasswordFile, up2.Auth = "alice", up.PasswordFile, "plain"
	c2 := newTestClient(t, 2*time.Second, up2)
	if _, err := c2.Dial(testCtx(t), 0); err == nil || !strings.Contains(err.Error(), "not PLAIN") {
		t.Fatalf("auth = plain against a LOGIN-only relay: err = %v", err)
	}
}

// The exact lines on the wire, as Google documents the XOAUTH2 exchange
// (https://developers.google.com/gmail/imap/xoauth2-protocol): the initial
// response base64("user=U^Aauth=Bearer T^A^A"), and after the 334 error
// challenge an empty line, then the server's 535.
func TestXOAuth2WireExchange(t *testing.T) {
	cert := newTestCert(t)
	lines := make(chan string, 10)
	addr := startRawUpstream(t, func(raw net.Conn) {
		c := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
		defer c.Close()
		r := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		read := func() string {
			l, _ := r.ReadString('\n')
			l = strings.TrimRight(l, "\r\n")
			lines <- l
			return l
		}
		say("220 relay.test ESMTP")
		read() // EHLO
		say("250-relay.test\r\n250 AUTH XOAUTH2")
		read() // AUTH XOAUTH2 ...
		say("334 " + base64.StdEncoding.EncodeToString([]byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`)))
		read() // the answer to the challenge
		say("535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials")
		read() // QUIT or nothing
	})
	up := Upstream{Address: addr, TLS: TLSImplicit, CAFile: cert.CAFile, Username: "scanner@example.edu", Auth: "xoauth2"}
	ts := &fakeTokens{}
	c := newBearerClient(t, up, ts)
	_, err := c.Dial(testCtx(t), 0)
	e := asError(t, err)
	if e.Code != 535 || !strings.Contains(e.Text, "the relay said status 400, scope https://mail.google.com/") {
		t.Fatalf("err = %q", err)
	}
	<-lines // EHLO
	auth, answer := <-lines, <-lines
	want := "AUTH XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=scanner@example.edu\x01auth=Bearer tok-0\x01\x01"))
	if auth != want {
		t.Errorf("client sent %q\nwant        %q", auth, want)
	}
	if answer != "" {
		t.Errorf("answer to the error challenge %q; want an empty line", answer)
	}
	if len(ts.invalidated) != 1 {
		t.Errorf("the refused token was not invalidated")
	}
}

// RFC 7628 3.1 / 3.2.3: gs2 header, host and port, and ^A after an error.
func TestOAuthBearerWireExchange(t *testing.T) {
	o := &oauthBearerClient{user: "a,b=c@example.edu", host: "smtp.gmail.com", port: 587, token: "T"}
	mech, ir, err := o.Start()
	if err != nil || mech != "OAUTHBEARER" || string(ir) != "n,a=a=2Cb=3Dc@example.edu,\x01host=smtp.gmail.com\x01port=587\x01auth=Bearer T\x01\x01" {
		t.Fatalf("Start = %q, %q, %v", mech, ir, err)
	}
	resp, err := o.Next([]byte(`{"status":"invalid_token","scope":"x"}`))
	if err != nil || string(resp) != "\x01" || o.refused.Status != "invalid_token" {
		t.Fatalf("Next = %q, %v", resp, err)
	}
	if _, err := o.Next([]byte("again")); err == nil {
		t.Fatal("a second challenge was answered")
	}
}
