package smtpd

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"relaybox/internal/policy"
	"relaybox/internal/smtptest"
	"relaybox/internal/spool"
)

// Transcripts in testdata/transcripts are SMTP dialogs a person can read:
//
//	# comment
//	= networks 10.0.0.0/8     (settings, before the dialog)
//	C: EHLO printer           (client line, sent with CRLF)
//	R: "raw\nbytes"           (client bytes as a Go string, sent as they are)
//	S: 250                    (the reply's last line must start with this)
//	H: SIZE 100               (the last reply, all its lines, contains this)
//	N: held                   (the last reply does not contain this)
//	X: cut                    (client closes the connection)
//	= queued 1                (after the dialog: committed messages in the spool)
//	= body-contains "text"    (every queued body contains text)
//	= crlf-only               (no queued body holds a bare CR or bare LF)
//	= body-lacks "text"       (no stored body contains text)
//	= held 1                  (messages held as repeats)
//	= from lab@campus.test    (every stored message's envelope sender; "<>" for null)
//	= device-name scanner-3   (every stored message's device name)
//	= eight-bit true          (every stored message is marked 8-bit, or not)
//	= smtputf8 true           (every stored message is marked SMTPUTF8, or not)
//
// Options for the listener, before the dialog:
//
//	= per_client_rate 0.001   (messages per second)      = per_client_burst 2
//	= max_repeats 2           = dup_window 10m
//	= rewrite_from_header
//	= device name=scanner-3 networks=127.0.0.0/8 user=scan sender=lab@campus.test
//
// Transcripts in testdata/transcripts-auth also use:
//
//	= auth users                  (auth mode: off, any or users)
//	= user scanner Scan-Pass-1    (a mode-users account; hashed here with bcrypt)
//	= auth-user scanner           (every stored message records this AUTH user)
//	N: AUTH                       (the last reply does not contain this)
//	E: closed                     (the server has closed the connection)
//
// Each runs against a real listener on 127.0.0.1 and a real spool.

type transcriptConfig struct {
	networks   []string
	domains    []string
	maxRcpt    int
	maxSize    int64
	quota      int64
	idle       time.Duration
	maxConns   int
	sender     string
	queued     int
	bodyChecks []string
	bodyLacks  []string
	crlfOnly   bool
	held       int     // -1: not checked
	from       *string // nil: not checked
	deviceName *string
	authUser   *string
	eightBit   *bool
	smtputf8   *bool

	rate        float64
	burst       int
	maxRepeats  int
	dupWindow   time.Duration
	rewriteFrom bool
	devices     []Device
	auth        AuthOptions
	authReq     []string
}

func defaultTranscriptConfig() transcriptConfig {
	return transcriptConfig{
		networks: []string{"127.0.0.0/8"},
		domains:  []string{"campus.test", "*.dept.campus.test"},
		maxRcpt:  100, maxSize: 1 << 20, idle: 5 * time.Second, maxConns: 10, queued: -1, held: -1,
	}
}

// options builds the listener's options for a transcript.
func (c transcriptConfig) options(t testing.TB, store Store) Options {
	t.Helper()
	rules, err := policy.NewRules(c.domains)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := policy.NetworkRules(c.networks)
	if err != nil {
		t.Fatal(err)
	}
	var authReq *policy.Networks
	if c.authReq != nil {
		if authReq, err = policy.NetworkRules(c.authReq); err != nil {
			t.Fatal(err)
		}
	}
	return Options{
		AuthRequired: authReq,
		Hostname:     "relaybox.test", Rules: rules, Networks: nets, Store: store,
		Sender: c.sender, MaxMessageSize: c.maxSize, MaxRecipients: c.maxRcpt,
		MaxConnections: c.maxConns, IdleTimeout: c.idle,
		PerClientRate: c.rate, PerClientBurst: c.burst,
		DuplicateMax: c.maxRepeats, DuplicateWindow: c.dupWindow,
		RewriteFromHeader: c.rewriteFrom, Devices: c.devices, Auth: c.auth,
		Logger: discardLogger(),
	}
}

func TestTranscripts(t *testing.T) {
	for _, dir := range []string{"transcripts", "transcripts-auth"} {
		files, err := filepath.Glob("../../testdata/" + dir + "/*.txt")
		if err != nil || len(files) == 0 {
			t.Fatalf("no transcripts found in %s: %v", dir, err)
		}
		for _, f := range files {
			t.Run(dir+"/"+strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
				t.Parallel()
				runTranscript(t, f)
			})
		}
	}
}

func runTranscript(t *testing.T, file string) {
	tr := smtptest.Load(t, file)
	cfg := defaultTranscriptConfig()
	for _, setting := range tr.Settings {
		applySetting(t, &cfg, setting)
	}
	sp, srv, addr := startTestServer(t, cfg, nil)
	smtptest.Play(t, addr, tr.Dialog)
	waitIdle(t, srv)
	checkStored(t, sp, cfg)
}

// checkStored runs the checks after a dialog.
func checkStored(t *testing.T, sp *spool.Spool, cfg transcriptConfig) {
	t.Helper()
	st := sp.Stats()
	if st.Pending != 0 {
		t.Errorf("%d half-stored messages left in the spool", st.Pending)
	}
	if cfg.queued >= 0 && st.Messages != cfg.queued {
		t.Errorf("spool holds %d messages, want %d", st.Messages, cfg.queued)
	}
	msgs, err := sp.List(spool.StateQueued)
	if err != nil {
		t.Fatal(err)
	}
	held, err := sp.List(spool.StateHeld)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.held >= 0 && len(held) != cfg.held {
		t.Errorf("%d messages held, want %d", len(held), cfg.held)
	}
	msgs = append(msgs, held...)
	for _, m := range msgs {
		if cfg.from != nil && m.From != strings.Trim(*cfg.from, "<>") {
			t.Errorf("message %s has envelope sender %q, want %q", m.ID, m.From, *cfg.from)
		}
		if cfg.deviceName != nil && m.Device != *cfg.deviceName {
			t.Errorf("message %s has device %q, want %q", m.ID, m.Device, *cfg.deviceName)
		}
		if cfg.eightBit != nil && m.EightBit != *cfg.eightBit {
			t.Errorf("message %s: 8-bit mark %v, want %v", m.ID, m.EightBit, *cfg.eightBit)
		}
		if cfg.smtputf8 != nil && m.SMTPUTF8 != *cfg.smtputf8 {
			t.Errorf("message %s: SMTPUTF8 mark %v, want %v", m.ID, m.SMTPUTF8, *cfg.smtputf8)
		}
		if cfg.authUser != nil && m.AuthUser != *cfg.authUser {
			t.Errorf("message %s records AUTH user %q, want %q", m.ID, m.AuthUser, *cfg.authUser)
		}
		body := readBody(t, sp, m.ID)
		if cfg.crlfOnly {
			for i := 0; i < len(body); i++ {
				if (body[i] == '\r' && (i+1 == len(body) || body[i+1] != '\n')) ||
					(body[i] == '\n' && (i == 0 || body[i-1] != '\r')) {
					t.Errorf("message %s: bare CR or LF at byte %d: %q", m.ID, i, body[max(0, i-20):min(len(body), i+20)])
					break
				}
			}
		}
		for _, want := range cfg.bodyChecks {
			if !strings.Contains(body, want) {
				t.Errorf("message %s body lacks %q:\n%s", m.ID, want, body)
			}
		}
		for _, bad := range cfg.bodyLacks {
			if strings.Contains(body, bad) {
				t.Errorf("message %s body contains %q:\n%s", m.ID, bad, body)
			}
		}
	}
}

func applySetting(t *testing.T, c *transcriptConfig, s string) {
	key, val, _ := strings.Cut(s, " ")
	atoi := func() int64 {
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			t.Fatalf("setting %q: %v", s, err)
		}
		return n
	}
	switch key {
	case "networks":
		c.networks = strings.Fields(val)
	case "domains":
		c.domains = strings.Fields(val)
	case "max_recipients":
		c.maxRcpt = int(atoi())
	case "max_size":
		c.maxSize = atoi()
	case "quota":
		c.quota = atoi()
	case "sender":
		c.sender = val
	case "queued":
		c.queued = int(atoi())
	case "crlf-only":
		c.crlfOnly = true
	case "body-contains", "body-lacks":
		v, err := strconv.Unquote(val)
		if err != nil {
			t.Fatalf("setting %q: %v", s, err)
		}
		if key == "body-lacks" {
			c.bodyLacks = append(c.bodyLacks, v)
		} else {
			c.bodyChecks = append(c.bodyChecks, v)
		}
	case "held":
		c.held = int(atoi())
	case "from":
		c.from = &val
	case "device-name":
		c.deviceName = &val
	case "per_client_rate":
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("setting %q: %v", s, err)
		}
		c.rate = f
	case "per_client_burst":
		c.burst = int(atoi())
	case "max_repeats":
		c.maxRepeats = int(atoi())
	case "dup_window":
		d, err := time.ParseDuration(val)
		if err != nil {
			t.Fatalf("setting %q: %v", s, err)
		}
		c.dupWindow = d
	case "rewrite_from_header":
		c.rewriteFrom = true
	case "device":
		var d Device
		for _, kv := range strings.Fields(val) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "name":
				d.Name = v
			case "networks":
				d.Networks = strings.Split(v, ",")
			case "user":
				d.AuthUser = v
			case "sender":
				d.Sender = v
			default:
				t.Fatalf("setting %q: unknown device field %q", s, k)
			}
		}
		c.devices = append(c.devices, d)
	case "auth":
		c.auth.Mode = val
	case "user":
		name, pw, ok := strings.Cut(val, " ")
		if !ok {
			t.Fatalf("setting %q: want NAME PASSWORD", s)
		}
		if c.auth.Users == nil {
			c.auth.Users = map[string][]byte{}
		}
		c.auth.Users[name] = hashPassword(t, pw)
	case "eight-bit", "smtputf8":
		b, err := strconv.ParseBool(val)
		if err != nil {
			t.Fatalf("setting %q: %v", s, err)
		}
		if key == "eight-bit" {
			c.eightBit = &b
		} else {
			c.smtputf8 = &b
		}
	case "auth-user":
		c.authUser = &val
	case "auth-required":
		c.authReq = strings.Fields(val)
	default:
		t.Fatalf("unknown setting %q", s)
	}
}

// startTestServer runs newTestServer's Server on a loopback listener and
// returns the spool, the server and the listener's address.
func startTestServer(t *testing.T, c transcriptConfig, edit func(*Options)) (*spool.Spool, *Server, string) {
	t.Helper()
	sp, srv := newTestServer(t, c, edit)
	return sp, srv, serveLoopback(t, srv.Serve)
}

// newTestServer opens a spool and builds a Server on it from c's options,
// changed by edit if it is not nil. Both close when the test ends.
func newTestServer(t *testing.T, c transcriptConfig, edit func(*Options)) (*spool.Spool, *Server) {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{MaxSize: c.quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	opt := c.options(t, SpoolStore(sp))
	if edit != nil {
		edit(&opt)
	}
	srv, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.smtp.Close() })
	return sp, srv
}

// serveLoopback runs serve (a Server's Serve or ServeTLS) on a new
// 127.0.0.1 listener and returns its address.
func serveLoopback(t *testing.T, serve func(net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serve(ln)
	return ln.Addr().String()
}

// waitIdle waits until no session is inside DATA (the server may still be
// storing what the client sent before it hung up).
func waitIdle(t *testing.T, srv *Server) {
	done := make(chan struct{})
	go func() { time.Sleep(50 * time.Millisecond); srv.inData.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a session is still inside DATA")
	}
}

// readReply reads one (possibly multi-line) reply, lines joined with "\n".
func readReply(r *bufio.Reader) (string, error) { return smtptest.ReadReply(r) }

func readBody(t *testing.T, sp *spool.Spool, id string) string {
	t.Helper()
	rc, err := sp.OpenBody(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
