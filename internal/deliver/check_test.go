package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"testing"
	"time"

	"relaybox/internal/sink"
)

// CheckAll checks every upstream in order, a failing one does not stop the
// next, and the error counts the failures.
func TestCheckAll(t *testing.T) {
	good := startUpstream(t, sink.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	c := newTestClient(t, 2*time.Second, Upstream{Address: closed, TLS: TLSNone, Insecure: true}, good.Upstream())
	var got []string
	err = c.CheckAll(testCtx(t), CheckReport{
		Begin: func(i int) { got = append(got, fmt.Sprintf("begin %d", i)) },
		Step:  func(i int, s Step) { got = append(got, fmt.Sprintf("%d %s %t", i, s.Name, s.Err == nil)) },
		End:   func(i int, err error) { got = append(got, fmt.Sprintf("end %d %t", i, err == nil)) },
	})
	if err == nil || err.Error() != "1 of 2 upstreams failed the check" {
		t.Errorf("err = %v", err)
	}
	want := []string{"begin 0", "0 dial false", "end 0 false", "begin 1", "1 dial true", "1 greeting true", "1 ehlo true",
		"1 starttls true", "1 tls true", "1 ehlo true", "1 quit true", "end 1 true"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reports = %q\nwant      %q", got, want)
	}
	if good.Saw("mail") {
		t.Errorf("CheckAll sent mail: %q", good.Events())
	}
	if err := c.CheckAll(testCtx(t), CheckReport{}); err == nil {
		t.Errorf("nil reports: err = nil, want the failure count")
	}
}

// A cancelled check ends at the upstream it was on.
func TestCheckAllStopsWhenCancelled(t *testing.T) {
	u := startUpstream(t, sink.Options{})
	c := newTestClient(t, 2*time.Second, u.Upstream(), u.Upstream())
	ctx, cancel := context.WithCancel(testCtx(t))
	begun := 0
	err := c.CheckAll(ctx, CheckReport{Begin: func(int) { begun++; cancel() }})
	if !errors.Is(err, context.Canceled) || begun != 1 {
		t.Errorf("err = %v after %d upstreams; want context.Canceled after 1", err, begun)
	}
}

func TestStepResult(t *testing.T) {
	for _, tc := range []struct {
		s    Step
		want string
	}{
		{Step{Name: "tls", Detail: "TLS 1.3", Took: 12345 * time.Microsecond}, "ok (TLS 1.3) [12ms]"},
		{Step{Name: "quit", Took: 2 * time.Millisecond}, "ok [2ms]"},
		{Step{Name: "dial", Err: errors.New("connection refused")}, "FAILED: connection refused"},
	} {
		if got := tc.s.Result(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.s, got, tc.want)
		}
	}
}
