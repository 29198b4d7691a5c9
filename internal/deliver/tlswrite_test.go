package deliver

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"relaybox/internal/sink"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// The body leaves in as many socket writes as the dot-stuffer makes body
// writes, not one per TLS record (16 KiB): each write's records go out
// together (batchConn), and the body still arrives byte for byte.
func TestBodyWritesFillTLSRecords(t *testing.T) {
	for _, mode := range []TLSMode{TLSStartTLS, TLSImplicit} {
		t.Run(string(mode), func(t *testing.T) {
			u := startUpstreamMode(t, mode, sink.Options{})
			var writes atomic.Int64
			c, err := NewClient(ClientOptions{Hostname: "relaybox.lab.test", Upstreams: []Upstream{u.Upstream()},
				CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
				NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return countingConn{Conn: nc, writes: &writes}, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			k := dial(t, testClient{Client: c})
			body := testBody(1 << 20)
			before := writes.Load()
			if _, err := k.Send(testCtx(t), Outgoing{From: "scanner@lab.example.edu", Rcpts: []string{"prof@example.edu"}}, bytes.NewReader(body)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			// MAIL, RCPT, DATA and the final dot are four more writes.
			got, most := writes.Load()-before, int64(len(body)/dotStufferFlush+1+4)
			if got > most {
				t.Errorf("Send made %d socket writes for a %d-byte body; want at most %d (one per %d-byte body write)",
					got, len(body), most, dotStufferFlush)
			}
			if msgs := u.Messages(); len(msgs) != 1 || !bytes.Equal(msgs[0].Body, body) {
				t.Errorf("the body did not arrive intact")
			}
		})
	}
}

// A message costs the write path no fresh buffer: the dot-stuffer's and
// the TLS batch's come from pools (each would otherwise be 32 KiB or more
// of garbage for every message).
func TestSendReusesBodyBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items on purpose")
	}
	cert := newTestCert(t)
	up := startDiscardUpstream(t, cert.TLS)
	c := newTestClient(t, 5*time.Second, Upstream{Address: up.addr, TLS: TLSStartTLS, CAFile: cert.CAFile})
	k := dial(t, c)
	body := scanBody(1 << 20)
	send := func() {
		if _, err := k.Send(testCtx(t), Outgoing{From: "scanner@lab.example.edu", Rcpts: []string{"prof@example.edu"}}, bytes.NewReader(body)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	send() // fills the pools
	const n = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		send()
	}
	runtime.ReadMemStats(&after)
	// The sessions' own garbage (commands, replies, the upstream's lines)
	// is a few KiB per message.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 48<<10 {
		t.Errorf("%d bytes allocated per 1 MiB message; want at most %d", per, 48<<10)
	}
	if got := up.bodyBytes.Load(); got != (n+1)*int64(len(body)) {
		t.Errorf("upstream got %d body bytes, want %d", got, (n+1)*len(body))
	}
}
