package deliver

import (
	"context"
	"fmt"
	"time"
)

// CheckReport receives CheckAll's progress; any field may be nil.
type CheckReport struct {
	Begin func(i int)            // before upstream i is checked
	Step  func(i int, s Step)    // each step of upstream i, in order
	End   func(i int, err error) // upstream i's result
}

// CheckAll runs Check on every upstream in order, as `relaybox
// upstream-check` and the console's `upstream` do. Each upstream gets
// two connect timeouts (TCP, then TLS) and a command timeout, so one that
// hangs does not hold up the next. It returns ctx's error when ctx ends,
// else an error counting the upstreams that failed.
func (c *Client) CheckAll(ctx context.Context, r CheckReport) error {
	failed := 0
	for i := range c.ups {
		if r.Begin != nil {
			r.Begin(i)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*c.connect+c.command)
		err := c.Check(cctx, i, func(s Step) {
			if r.Step != nil {
				r.Step(i, s)
			}
		})
		cancel()
		if err != nil {
			failed++
		}
		if r.End != nil {
			r.End(i, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d upstreams failed the check", failed, len(c.ups))
	}
	return nil
}

// Result is the step as upstream-check prints it: "ok (detail) [12ms]" or
// "FAILED: reason".
func (s Step) Result() string {
	if s.Err != nil {
		return "FAILED: " + s.Err.Error()
	}
	res := "ok"
	if s.Detail != "" {
		res += " (" + s.Detail + ")"
	}
	return fmt.Sprintf("%s [%s]", res, s.Took.Round(time.Millisecond))
}
