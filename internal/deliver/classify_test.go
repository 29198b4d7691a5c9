package deliver

import (
	"errors"
	"testing"
)

func TestConnLevel(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{netErr(up1, "dial", "refused"), true},
		{netErr(up1, "tls", "certificate signed by unknown authority"), true},
		{reply(up1, "greeting", 554, "", "go away"), true},
		{reply(up1, "ehlo", 500, "", "what"), true},
		{reply(up1, "starttls", 454, "", "tls not available"), true},
		{reply(up1, "auth", 535, "5.7.8", "bad credentials"), true},
		{reply(up1, "mail", 421, "", "closing"), true},
		{reply(up1, "dot", 421, "", "closing"), true},
		{reply(up1, "mail", 451, "", "later"), false},
		{reply(up1, "rcpt", 550, "", "no"), false},
		{netErr(up1, "data", "reset"), false},
		{netErr(up1, "dot", "timeout"), false},
		{errors.New("plain"), false},
		{nil, false},
	}
	for _, tc := range cases {
		if got := connLevel(tc.err); got != tc.want {
			t.Errorf("connLevel(%v) = %v", tc.err, got)
		}
	}
}
