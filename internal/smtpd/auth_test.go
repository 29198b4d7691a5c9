package smtpd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"relaybox/internal/spool"
)

func hashPassword(t *testing.T, pw string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startAuthServer runs a listener with the default test settings and
// auth; log, if not nil, receives its log.
func startAuthServer(t *testing.T, auth AuthOptions, log *slog.Logger) (*spool.Spool, *Server, string) {
	t.Helper()
	c := defaultTranscriptConfig()
	c.auth = auth
	return startTestServer(t, c, func(o *Options) {
		if log != nil {
			o.Logger = log
		}
	})
}

func TestNewAuthenticatorRefusesBadConfig(t *testing.T) {
	const typo = "hunter2-typed-as-hash"
	tests := []struct {
		name string
		opt  AuthOptions
		want string
	}{
		{"unknown mode", AuthOptions{Mode: "some"}, `mode "some"`},
		{"users without users", AuthOptions{Mode: AuthUsers}, "at least one user"},
		{"plain password as hash", AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"copier": []byte(typo)}},
			`user "copier": password hash is not a bcrypt hash`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newAuthenticator(tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "smtpd: ") {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), typo) {
				t.Errorf("error echoes the configured secret: %v", err)
			}
		})
	}
	for _, mode := range []string{"", AuthOff, AuthAny} {
		a, err := newAuthenticator(AuthOptions{Mode: mode})
		if err != nil || (mode == "" && a.mode != AuthOff) {
			t.Errorf("mode %q: %v, %+v", mode, err, a)
		}
	}
}

// An unknown user costs one bcrypt comparison at the highest configured
// cost, like a wrong password, so timing does not reveal which names exist.
func TestVerifyComparesUnknownUsersToo(t *testing.T) {
	cheap := hashPassword(t, "pw1")
	dear, err := bcrypt.GenerateFromPassword([]byte("pw2"), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAuthenticator(AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"a": cheap, "b": dear}})
	if err != nil {
		t.Fatal(err)
	}
	var costs []int
	real := a.compare
	a.compare = func(hash, pw []byte) error {
		c, _ := bcrypt.Cost(hash)
		costs = append(costs, c)
		return real(hash, pw)
	}
	tests := []struct{ user, pw, reason string }{
		{"a", "pw1", ""},
		{"b", "pw2", ""},
		{"a", "pw2", "wrong password"},
		{"A", "pw1", "unknown user"},
		{"nobody", "pw1", "unknown user"},
		{"", "", "unknown user"},
	}
	for _, tt := range tests {
		costs = costs[:0]
		if got := a.verify(tt.user, tt.pw); got != tt.reason {
			t.Errorf("verify(%q, %q) = %q, want %q", tt.user, tt.pw, got, tt.reason)
		}
		if len(costs) != 1 {
			t.Errorf("verify(%q): %d bcrypt comparisons, want 1", tt.user, len(costs))
		}
		if tt.reason == "unknown user" && (len(costs) != 1 || costs[0] != bcrypt.MinCost+1) {
			t.Errorf("verify(%q): compared at costs %v, want the highest configured (%d)", tt.user, costs, bcrypt.MinCost+1)
		}
	}
}

// authDialog is a tiny client for table tests: cmd sends a line and returns
// the last line of the reply.
type authDialog struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialAuth(t *testing.T, addr string) *authDialog {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	d := &authDialog{t: t, conn: c, r: bufio.NewReader(c)}
	if got := d.reply(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting %q", got)
	}
	return d
}

func (d *authDialog) reply() string {
	d.t.Helper()
	all, err := readReply(d.r)
	if err != nil {
		d.t.Fatalf("reading reply: %v (got %q)", err, all)
	}
	return all[strings.LastIndex(all, "\n")+1:]
}

func (d *authDialog) cmd(line string) string {
	d.t.Helper()
	if _, err := io.WriteString(d.conn, line+"\r\n"); err != nil {
		d.t.Fatal(err)
	}
	return d.reply()
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthModesAndMechanisms(t *testing.T) {
	users := AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"scanner": hashPassword(t, "Scan-Pass-1")}}
	cfgs := map[string]AuthOptions{
		AuthOff: {}, AuthAny: {Mode: AuthAny}, AuthUsers: users,
	}
	addrs := map[string]string{}
	for mode, opt := range cfgs {
		_, _, addrs[mode] = startAuthServer(t, opt, nil)
	}
	tests := []struct {
		mode  string
		lines []string // sent after EHLO; the last one's reply is checked
		want  string
	}{
		{AuthOff, []string{"AUTH PLAIN " + b64("\x00scanner\x00Scan-Pass-1")}, "503 5.5.1 AUTH not enabled"},
		{AuthOff, []string{"AUTH LOGIN"}, "503 5.5.1"},
		{AuthAny, []string{"AUTH PLAIN " + b64("\x00anyone\x00anything")}, "235"},
		{AuthAny, []string{"AUTH PLAIN " + b64("\x00\x00")}, "235"},
		{AuthAny, []string{"AUTH LOGIN " + b64("x"), b64("y")}, "235"},
		{AuthAny, []string{"AUTH PLAIN " + b64("no-nuls-here")}, "501 5.5.2"},
		{AuthAny, []string{"AUTH XOAUTH2"}, "504 5.5.4"},
		{AuthUsers, []string{"AUTH PLAIN " + b64("\x00scanner\x00Scan-Pass-1")}, "235"},
		{AuthUsers, []string{"AUTH PLAIN " + b64("scanner\x00scanner\x00Scan-Pass-1")}, "235"},     // authzid = user
		{AuthUsers, []string{"AUTH PLAIN " + b64("admin\x00scanner\x00Scan-Pass-1")}, "535 5.7.8"}, // acting for another
		{AuthUsers, []string{"AUTH PLAIN", b64("\x00scanner\x00Scan-Pass-1")}, "235"},              // no initial response
		{AuthUsers, []string{"AUTH PLAIN " + b64("\x00scanner\x00scan-pass-1")}, "535 5.7.8"},
		{AuthUsers, []string{"AUTH PLAIN " + b64("\x00Scanner\x00Scan-Pass-1")}, "535 5.7.8"},
		{AuthUsers, []string{"AUTH login", b64("scanner"), b64("Scan-Pass-1")}, "235"},
		{AuthUsers, []string{"AUTH CRAM-MD5"}, "504 5.5.4"},
		{AuthUsers, []string{"AUTH PLAIN " + b64("\x00scanner\x00Scan-Pass-1"), "AUTH LOGIN"}, "503"},
	}
	for _, tt := range tests {
		d := dialAuth(t, addrs[tt.mode])
		d.cmd("EHLO printer")
		got := ""
		for _, l := range tt.lines {
			got = d.cmd(l)
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("mode %s, %q: got %q, want %q", tt.mode, tt.lines, got, tt.want)
		}
	}
}

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Passwords must not reach the log, the spool record or the stored body,
// in any mode and mechanism, right or wrong; the user name must.
func TestAuthSecretsStayOut(t *testing.T) {
	const pw = "Sekr1t-Pa55"
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	users := AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"scanner": hashPassword(t, pw)}}
	spUsers, srvUsers, addrUsers := startAuthServer(t, users, log)
	spAny, srvAny, addrAny := startAuthServer(t, AuthOptions{Mode: AuthAny}, log)

	send := func(d *authDialog) {
		for _, l := range []string{"MAIL FROM:<scan@campus.test>", "RCPT TO:<a@campus.test>", "DATA"} {
			d.cmd(l)
		}
		if got := d.cmd("Subject: scan\r\n\r\nbody\r\n."); !strings.HasPrefix(got, "250") {
			d.t.Fatalf("DATA end: %q", got)
		}
	}
	d := dialAuth(t, addrUsers)
	d.cmd("EHLO printer")
	d.cmd("AUTH LOGIN " + b64("scanner"))
	if got := d.cmd(b64(pw + "x")); !strings.HasPrefix(got, "535") {
		t.Fatalf("wrong password: %q", got)
	}
	d.cmd("AUTH PLAIN " + b64("\x00nobody\x00"+pw))
	// A device with its password in the user field: the name that fails
	// is not logged.
	d = dialAuth(t, addrUsers)
	d.cmd("EHLO printer")
	d.cmd("AUTH PLAIN " + b64("\x00"+pw+"\x00"+pw))
	d = dialAuth(t, addrUsers)
	d.cmd("HELO printer")
	if got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00"+pw)); !strings.HasPrefix(got, "235") {
		t.Fatalf("right password: %q", got)
	}
	send(d)
	d = dialAuth(t, addrAny)
	d.cmd("EHLO printer")
	d.cmd("AUTH LOGIN")
	d.cmd(b64("scanner"))
	if got := d.cmd(b64(pw)); !strings.HasPrefix(got, "235") {
		t.Fatalf("mode any: %q", got)
	}
	send(d)
	d.cmd("QUIT")
	waitIdle(t, srvUsers)
	waitIdle(t, srvAny)

	secrets := []string{pw, b64(pw), b64(pw + "x"), b64("\x00scanner\x00" + pw), b64("\x00nobody\x00" + pw)}
	out := logs.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log contains secret %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "nobody") {
		t.Errorf("log names a user that failed and is not an account:\n%s", out)
	}
	for _, want := range []string{"user=scanner", "device authentication failed", "device authenticated"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, sp := range []*spool.Spool{spUsers, spAny} {
		msgs, err := sp.List(spool.StateQueued)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("queued: %d, %v", len(msgs), err)
		}
		rec, _ := json.Marshal(msgs[0])
		stored := string(rec) + readBody(t, sp, msgs[0].ID)
		for _, s := range secrets {
			if strings.Contains(stored, s) {
				t.Errorf("spool holds secret %q: %s", s, stored)
			}
		}
		if msgs[0].AuthUser != "scanner" {
			t.Errorf("AuthUser = %q, want scanner", msgs[0].AuthUser)
		}
	}
}

// Three failures end the connection; a new connection starts afresh.
func TestAuthFailuresCloseConnection(t *testing.T) {
	users := AuthOptions{Mode: AuthUsers, Users: map[string][]byte{"scanner": hashPassword(t, "pw")}}
	_, _, addr := startAuthServer(t, users, nil)
	d := dialAuth(t, addr)
	d.cmd("EHLO printer")
	for i := 1; i < maxAuthFailures; i++ {
		if got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00bad")); !strings.HasPrefix(got, "535 5.7.8") {
			t.Fatalf("failure %d: %q", i, got)
		}
	}
	if got := d.cmd("AUTH LOGIN " + b64("scanner")); !strings.HasPrefix(got, "334") {
		t.Fatalf("LOGIN: %q", got)
	}
	if got := d.cmd(b64("bad")); !strings.HasPrefix(got, "421 4.7.0") {
		t.Fatalf("failure %d: %q, want 421", maxAuthFailures, got)
	}
	if _, err := d.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after 421: read err %v, want EOF", err)
	}
	d = dialAuth(t, addr)
	d.cmd("EHLO printer")
	if got := d.cmd("AUTH PLAIN " + b64("\x00scanner\x00pw")); !strings.HasPrefix(got, "235") {
		t.Fatalf("new connection: %q", got)
	}
}
