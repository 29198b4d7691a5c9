package smtpd

import (
	"bytes"
	"errors"
	"net"
	"time"
)

// Read deadlines. An idle timer alone is renewed by every byte, so a client
// trickling one byte at a time holds its slot for ever; a box with 100
// slots is then shut to every device by two addresses. Each read therefore
// waits for the earliest of:
//
//   - idle: silence (listen.idle_timeout);
//   - one command line: listen.command_timeout from the line's first byte
//     (RFC 5321 4.5.3.2 gives 5 minutes per command);
//   - the DATA body or a BDAT chunk: command_timeout plus its bytes at
//     listen.min_data_rate, so a slow instrument sending a large scan at
//     that rate is never cut, and a trickle is;
//   - the session: listen.session_timeout plus all its bytes at the same
//     rate.
//
// Under stress (every slot taken, as Postfix's stress mode), idle, command
// and the session's base all shrink to listen.stress_timeout, so slots held
// by slow or stuck clients come free within seconds.

// Timeouts are the limits above; New fills zero values with defaults.
type Timeouts struct {
	Idle    time.Duration // default 5m
	Command time.Duration // default 5m
	Session time.Duration // default 30m
	// MinDataRate in bytes a second: each byte received adds 1/MinDataRate
	// seconds to the DATA and session limits (default 512).
	MinDataRate int64
	Stress      time.Duration // default 10s
}

func (t *Timeouts) defaults() {
	if t.Idle <= 0 {
		t.Idle = 5 * time.Minute
	}
	if t.Command <= 0 {
		t.Command = 5 * time.Minute
	}
	if t.Session <= 0 {
		t.Session = 30 * time.Minute
	}
	if t.MinDataRate <= 0 {
		t.MinDataRate = 512
	}
	if t.Stress <= 0 {
		t.Stress = 10 * time.Second
	}
}

// limitKind names the limit a read deadline comes from, for the log.
type limitKind int

const (
	limitIdle limitKind = iota
	limitCommand
	limitData
	limitSession
	limitHandshake
)

func (k limitKind) String() string {
	switch k {
	case limitCommand:
		return "command line too slow (listen.command_timeout)"
	case limitData:
		return "message data below listen.min_data_rate"
	case limitSession:
		return "session too long (listen.session_timeout)"
	case limitHandshake:
		return "TLS handshake too slow (listen.stress_timeout)"
	}
	return "idle (listen.idle_timeout)"
}

// clock is one connection's timing, kept by the goroutine that reads it.
type clock struct {
	start     time.Time // connection accepted
	lineStart time.Time // first byte of the current command line
	dataStart time.Time // DATA body or BDAT chunk began
	phase     phase     // the phase of the last read
	bytes     int64     // all bytes read
	dataBytes int64     // bytes of the current body or chunk
	limit     limitKind // of the deadline set for the last read
}

// byteTime is how long n bytes may take at rate bytes a second.
func byteTime(n, rate int64) time.Duration {
	return time.Duration(n) * (time.Second / time.Duration(rate))
}

// setReadDeadline sets the deadline for the next read from the client.
func (c *deviceConn) setReadDeadline() {
	if c.limits == nil {
		if c.idle > 0 {
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
		}
		return
	}
	now := time.Now()
	ck := &c.clock
	if ck.start.IsZero() {
		ck.start, ck.lineStart = now, now
	}
	ph := c.stream.phase
	if ph != ck.phase {
		switch ph {
		case phaseBody, phaseChunk:
			ck.dataStart, ck.dataBytes = now, 0
		case phaseCommand:
			ck.lineStart = now
		}
		ck.phase = ph
	}
	t := c.limits.t
	idle, command, session := t.Idle, t.Command, t.Session
	if c.limits.stressed.Load() {
		idle, command, session = min(idle, t.Stress), min(command, t.Stress), min(session, 3*t.Stress)
	}
	d, kind := now.Add(idle), limitIdle
	earlier := func(at time.Time, k limitKind) {
		if at.Before(d) {
			d, kind = at, k
		}
	}
	if c.hs.inProgress() {
		earlier(ck.start.Add(min(command, t.Stress)), limitHandshake)
	}
	switch ph {
	case phaseCommand:
		earlier(ck.lineStart.Add(command), limitCommand)
	case phaseBody, phaseChunk:
		earlier(ck.dataStart.Add(command+byteTime(ck.dataBytes, t.MinDataRate)), limitData)
	}
	earlier(ck.start.Add(session+byteTime(ck.bytes, t.MinDataRate)), limitSession)
	ck.limit = kind
	_ = c.Conn.SetReadDeadline(d)
}

// counted notes the bytes of one read; in the command phase, a line feed
// starts the next line's clock.
func (c *deviceConn) counted(b []byte, err error) {
	ck := &c.clock
	ck.bytes += int64(len(b))
	switch ck.phase {
	case phaseBody, phaseChunk:
		ck.dataBytes += int64(len(b))
	case phaseCommand:
		if bytes.IndexByte(b, '\n') >= 0 {
			ck.lineStart = time.Now()
		}
	}
	var ne net.Error
	if err != nil && c.limits != nil && errors.As(err, &ne) && ne.Timeout() {
		c.limits.cut(c, ck.limit)
	}
}
