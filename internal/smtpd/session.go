package smtpd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"relaybox/internal/policy"
	"relaybox/internal/spool"
	"relaybox/internal/text"
)

// session is one device connection (go-smtp calls it after HELO/EHLO).
type session struct {
	s      *Server
	l      *live // the policy current when the client connected
	conn   *smtp.Conn
	client netip.Addr
	helo   string // sanitised: safe for logs and the Received header
	auth   authState
	// counted: this session is in Options.InTransaction (after MAIL, until the
	// transaction ends).
	counted bool

	from      string
	hasFrom   bool
	rewritten bool        // from is a configured sender, not the device's own
	device    *deviceRule // matched at MAIL; nil for an unknown device
	rcpts     []string
	utf8      bool // MAIL came with SMTPUTF8 (RFC 6531)
}

var _ smtp.Session = (*session)(nil)

// Replies the device sees for local trouble: always temporary (4xx), so it
// keeps the message and tries again; DESIGN.md forbids a 5xx here.
var (
	errQuota = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
		Message: "Relay queue is full, try again later"}
	errLocal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Local problem storing the message, try again later"}
)

func (se *session) Reset() {
	se.from, se.hasFrom, se.rewritten, se.device, se.rcpts, se.utf8 = "", false, false, nil, nil, false
	se.setInTransaction(false)
}

// setInTransaction keeps Options.InTransaction counting this session while
// it is between MAIL and the end of its transaction.
func (se *session) setInTransaction(on bool) {
	c := se.s.opt.InTransaction
	if c == nil || se.counted == on {
		return
	}
	se.counted = on
	if on {
		c.Add(1)
	} else {
		c.Add(-1)
	}
}

// errRate is the reply to a client over listen.per_client_rate.
var errRate = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
	Message: "Too many messages from this client, slow down and try again later"}

func (se *session) Logout() error {
	se.setInTransaction(false)
	return nil
}

// Mail implements smtp.Session.
func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	if se.auth.dropped {
		return errDropped
	}
	if se.needsAuth() {
		return errAuthRequired
	}
	se.Reset()
	dev := se.l.devices.match(se.client, se.auth.user)
	if d := se.l.rate.allow(se.client); !d.ok {
		if d.firstRefusal {
			se.s.log.Warn("messages refused: client over its message rate", "client", se.client.String(),
				dev.attr(), "rate", se.l.opt.PerClientRate, "burst", se.l.opt.PerClientBurst,
				"hint", "a device stuck in a loop; raise listen.per_client_rate if it is only busy")
		}
		return errRate
	} else if d.refusedTotal > 0 {
		se.s.log.Info("client back under its message rate", "client", se.client.String(),
			dev.attr(), "refused", d.refusedTotal)
	}
	utf8 := opts != nil && opts.UTF8
	parse := policy.ParseSender
	if utf8 {
		parse = policy.ParseSenderSMTPUTF8
	}
	addr, err := parse(from)
	if err != nil {
		se.s.log.Info("sender refused", "client", se.client.String(), "helo", se.helo, dev.attr(),
			"from", escapeArg(from), "reason", err.Error())
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
			Message: "Sender address rejected: " + err.Error()}
	}
	rewrite := se.l.opt.Sender
	if dev != nil && dev.Sender != "" {
		rewrite = dev.Sender
	}
	if addr.Domain == unqualifiedDomain {
		// deviceConn added this domain to a sender the device sent bare.
		if rewrite == "" {
			se.s.log.Info("sender refused: no domain and no sender rewrite configured", "client", se.client.String(),
				"helo", se.helo, dev.attr(), "from", addr.Local,
				"hint", "set policy.sender, or a [[device]] entry with a sender for this device")
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
				Message: "Sender address " + addr.Local + " has no domain; the relay admin can set policy.sender or a [[device]] sender for this device"}
		}
		se.s.log.Info("sender without a domain rewritten", "client", se.client.String(), dev.attr(),
			"from", addr.Local, "to", rewrite)
	}
	se.from = addr.String()
	if rewrite != "" {
		se.from, se.rewritten = rewrite, true
	}
	se.device = dev
	se.hasFrom = true
	se.utf8 = utf8
	se.setInTransaction(true)
	return nil
}

// Rcpt implements smtp.Session. The policy decides; nothing else may accept
// a recipient.
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	recipient := se.l.opt.Rules.Recipient
	if se.utf8 {
		recipient = se.l.opt.Rules.RecipientSMTPUTF8
	}
	addr, err := recipient(to)
	if err != nil {
		se.s.log.Info("recipient refused", "client", se.client.String(), "helo", se.helo,
			"to", escapeArg(to), "reason", err.Error())
		var re *policy.RejectError
		if errors.As(err, &re) {
			return &smtp.SMTPError{Code: re.Code, EnhancedCode: smtp.EnhancedCode(re.Enhanced), Message: re.Reason}
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	}
	a := addr.String()
	for _, r := range se.rcpts {
		if r == a { // the same recipient twice gets the message once
			return nil
		}
	}
	se.rcpts = append(se.rcpts, a)
	return nil
}

// Data implements smtp.Session: stream r into the spool and commit.
func (se *session) Data(r io.Reader) error {
	se.s.inData.Add(1)
	defer se.s.inData.Done()
	if len(se.rcpts) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	start := se.s.opt.Now()
	w, err := se.s.opt.Store.Create(spool.Envelope{
		ClientAddr: se.conn.Conn().RemoteAddr().String(),
		Helo:       se.helo,
		From:       se.from,
		Recipients: se.rcpts,
		AuthUser:   se.auth.user,
		Device:     se.device.name(),
		SMTPUTF8:   se.utf8,
	})
	if err != nil {
		return se.storeError("", err)
	}
	id := w.ID()
	_, tls := se.conn.TLSConnectionState()
	with := receivedProtocol(se.conn.Extended(), tls, se.auth.user != "")
	hw := newHeaderWriter(w, func(hasID, hasDate bool) []byte {
		return se.s.addedHeaders(id, se.helo, se.client, with, start, hasID, hasDate)
	})
	if se.rewritten && se.from != "" && se.l.opt.RewriteFromHeader {
		hw.fromAddr = se.from
	}
	// The duplicate check hashes what the device sent, normalised, without
	// the headers added here (they differ for every copy).
	var body hash.Hash
	var cw *crlfWriter
	if se.l.dupes != nil {
		body = sha256.New()
		cw = newCRLFWriter(io.MultiWriter(hw, body))
	} else {
		cw = newCRLFWriter(hw)
	}
	rr := &errReader{r: r}
	buf := bodyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(cw, rr, *buf)
	bodyBufs.Put(buf)
	if err == nil {
		err = cw.Close()
	}
	if err == nil {
		err = hw.Close()
	}
	if err != nil {
		_ = w.Abort()
		if rr.err != nil {
			if errors.Is(rr.err, errNUL) {
				se.s.log.Info("message refused: it contains a NUL byte", "id", id, "client", se.client.String(),
					"device", se.device.name(),
					"hint", "the device sends raw binary in the message text; set it to encode attachments (base64)")
				return errNULReply
			}
			if errors.Is(rr.err, smtp.ErrDataTooLarge) {
				se.s.log.Info("message refused: too large", "id", id, "client", se.client.String(),
					"max", se.s.opt.MaxMessageSize)
				return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
					Message: fmt.Sprintf("Message exceeds this relay's size limit of %d bytes (listen.max_message_size); nothing was stored", se.s.opt.MaxMessageSize)}
			}
			se.s.log.Info("message abandoned: client went away during DATA", "id", id,
				"client", se.client.String(), "err", rr.err.Error())
			// go-smtp would turn a plain error into a 554; the device may
			// still be listening, and nothing was stored, so say "later".
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
				Message: "Connection problem during DATA, nothing was stored"}
		}
		return se.storeError(id, err)
	}
	if rr.eightBit {
		w.MarkEightBit()
	}
	// A repeat too many is committed as held, in the same transaction, so
	// the scheduler never sees it as due.
	var hold *repeat
	if body != nil {
		var sum [sha256.Size]byte
		body.Sum(sum[:0])
		if hold = se.repeatToHold(sum); hold != nil {
			w.Hold(hold.reason)
		}
	}
	msg, err := w.Commit()
	if err != nil {
		return se.storeError(id, err)
	}
	if hw.fromOld != "" {
		se.s.log.Info("From header rewritten", "id", msg.ID, "client", se.client.String(),
			se.device.attr(), "from", escapeArg(hw.fromOld), "to", se.from)
	}
	se.s.log.Info("accepted", "id", msg.ID, "event", "accepted", "from", msg.From,
		"to", strings.Join(se.rcpts, ","), "client", se.client.String(), "helo", se.helo,
		se.device.attr(), "size", msg.Size,
		"delay", se.s.opt.Now().Sub(start).Round(time.Millisecond).String())
	reply := "OK: queued as " + msg.ID
	if hold != nil {
		reply += " (held: repeated message)"
		se.s.log.Warn("held repeated message", "id", msg.ID, "event", "held", "client", se.client.String(),
			se.device.attr(), "from", msg.From, "copy", hold.copy, "within", se.l.opt.DuplicateWindow.String(),
			"body_sha256", hold.hashPrefix,
			"hint", "the device is resending one message; fix it, then release or delete the held copies")
	}
	if se.s.opt.OnAccepted != nil {
		se.s.opt.OnAccepted(msg)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: reply}
}

// bodyBufSize is the buffer a body is read into: go-smtp reads a body
// straight into it from the connection, so it sets the size of each read
// system call. 64 KiB cut system time a little more but raised the peak
// PSS at 8 x 1 MiB by about 1.5 MiB (docs/performance.md).
const bodyBufSize = 32 << 10

// bodyBufs holds the buffers of bodyBufSize between messages.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, bodyBufSize); return &b }}

// repeat says why a message is held as one repeat too many.
type repeat struct {
	reason     string
	copy       int
	hashPrefix string
}

// repeatToHold records a message with the duplicate tracker and, if it is
// one repeat too many, says why it is to be held. The device still gets its
// 250: the message is safe in the spool, and a refusal would only make it
// send again.
func (se *session) repeatToHold(body [sha256.Size]byte) *repeat {
	v := se.l.dupes.record(dupKeyOf(se.client, se.device.name(), se.from, se.rcpts, body))
	if !v.hold {
		return nil
	}
	r := &repeat{copy: v.copy, hashPrefix: hex.EncodeToString(body[:6])}
	r.reason = fmt.Sprintf("held: copy #%d of the same message from %s since %s (more than %d within %s; body sha256 %s); release it to deliver",
		v.copy, se.who(), v.since.UTC().Format(time.RFC3339), se.l.opt.DuplicateMax, se.l.opt.DuplicateWindow.String(), r.hashPrefix)
	return r
}

// who names the client for a person: the device name and address.
func (se *session) who() string {
	if se.device != nil {
		return se.device.Name + " (" + se.client.String() + ")"
	}
	return se.client.String()
}

// storeError maps a spool failure to a temporary reply and logs the cause.
func (se *session) storeError(id string, err error) error {
	if errors.Is(err, spool.ErrQuota) {
		se.s.log.Warn("message refused: spool quota reached", "id", id, "client", se.client.String(),
			"hint", "deliver or delete queued mail, or raise queue.max_size")
		return errQuota
	}
	se.s.log.Error("spool error", "id", id, "client", se.client.String(), "err", err.Error())
	return errLocal
}

// addedHeaders builds the Received line, and Message-ID / Date when the
// device left them out (large providers reject mail without them).
func (s *Server) addedHeaders(id, helo string, ip netip.Addr, with string, now time.Time, hasID, hasDate bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (relaybox) with %s id %s;\r\n\t%s\r\n",
		helo, ip.String(), s.opt.Hostname, with, id, now.Format(time.RFC1123Z))
	if !hasID {
		fmt.Fprintf(&b, "Message-ID: <%s.relaybox@%s>\r\n", id, s.opt.Hostname)
	}
	if !hasDate {
		fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	return []byte(b.String())
}

// errNUL stops a message at its first NUL byte. NUL is not allowed in SMTP
// text, not even with 8BITMIME (RFC 5321 2.3.8, RFC 6152 3), and some
// receivers drop it before looking for the end of DATA, so a forwarded
// "\r\n\x00.\r\n" could end a message there: such a message is refused
// whole rather than changed.
var errNUL = errors.New("smtpd: NUL byte in message")

var errNULReply = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
	Message: "Message contains a NUL byte, which SMTP does not allow; nothing was stored"}

// receivedProtocol is the "with" word of our Received header (RFC 3848):
// SMTP after HELO, ESMTP after EHLO, with S for TLS and A for a client
// that authenticated. TLS and AUTH are extensions, so they make it ESMTP
// even after HELO (AUTH after HELO is accepted from old devices).
func receivedProtocol(ehlo, tls, auth bool) string {
	switch {
	case tls && auth:
		return "ESMTPSA"
	case tls:
		return "ESMTPS"
	case auth:
		return "ESMTPA"
	case ehlo:
		return "ESMTP"
	}
	return "SMTP"
}

// errReader remembers the reader's error so Data can tell a client that went
// away (or sent too much) from a spool that failed, and refuses NUL bytes.
// It also notes whether the body holds octets over 127 (deliver needs an
// upstream with 8BITMIME for those).
type errReader struct {
	r        io.Reader
	err      error
	eightBit bool
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if bytes.IndexByte(p[:n], 0) >= 0 {
		e.err = errNUL
		return 0, errNUL
	}
	if !e.eightBit {
		e.eightBit = hasHighOctet(p[:n])
	}
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// hasHighOctet reports whether b holds an octet over 127, 32 octets at a
// time (one test per four words keeps it near memory speed).
func hasHighOctet(b []byte) bool {
	const high = 0x8080808080808080
	for len(b) >= 32 {
		w := binary.LittleEndian.Uint64(b[0:8]) | binary.LittleEndian.Uint64(b[8:16]) |
			binary.LittleEndian.Uint64(b[16:24]) | binary.LittleEndian.Uint64(b[24:32])
		if w&high != 0 {
			return true
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&high != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// deviceArgMax bounds a device's raw argument in a log line or the spool.
const deviceArgMax = 200

// escapeArg makes a device's raw argument safe for one log line: its exact
// bytes (text.Escape), bounded.
func escapeArg(s string) string { return text.Clip(text.Escape(s), deviceArgMax) }
