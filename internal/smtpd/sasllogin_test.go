package smtpd

import (
	"errors"
	"testing"

	"github.com/emersion/go-sasl"
)

// step is one call of sasl.Server.Next and what it must return.
type step struct {
	response  []byte // nil: no response (no initial response)
	challenge string
	done      bool
	wantErr   bool
}

func runSteps(t *testing.T, s sasl.Server, steps []step) {
	t.Helper()
	for i, st := range steps {
		ch, done, err := s.Next(st.response)
		if (err != nil) != st.wantErr {
			t.Fatalf("step %d: err = %v, want error %v", i, err, st.wantErr)
		}
		if string(ch) != st.challenge || done != st.done {
			t.Fatalf("step %d: got (%q, done %v), want (%q, done %v)", i, ch, done, st.challenge, st.done)
		}
	}
}

func TestLoginServer(t *testing.T) {
	errBad := errors.New("bad credentials")
	check := func(got *[2]string) loginAuthenticator {
		return func(user, pass string) error {
			got[0], got[1] = user, pass
			if user == "scanner" && pass == "pw" {
				return nil
			}
			return errBad
		}
	}
	tests := []struct {
		name     string
		steps    []step
		wantUser string
		wantPass string
	}{
		{"prompts for both", []step{
			{nil, "Username:", false, false},
			{[]byte("scanner"), "Password:", false, false},
			{[]byte("pw"), "", true, false},
		}, "scanner", "pw"},
		{"user name on the AUTH line", []step{
			{[]byte("scanner"), "Password:", false, false},
			{[]byte("pw"), "", true, false},
		}, "scanner", "pw"},
		{"empty initial response is an empty user name", []step{
			{[]byte{}, "Password:", false, false},
			{[]byte("pw"), "", true, true},
		}, "", "pw"},
		{"wrong password fails at the end", []step{
			{nil, "Username:", false, false},
			{[]byte("scanner"), "Password:", false, false},
			{[]byte("nope"), "", true, true},
		}, "scanner", "nope"},
		{"empty password", []step{
			{nil, "Username:", false, false},
			{[]byte("scanner"), "Password:", false, false},
			{[]byte{}, "", true, true},
		}, "scanner", ""},
		{"a response after the end", []step{
			{[]byte("scanner"), "Password:", false, false},
			{[]byte("pw"), "", true, false},
			{[]byte("more"), "", false, true},
		}, "scanner", "pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]string
			runSteps(t, newLoginServer(check(&got)), tt.steps)
			if got[0] != tt.wantUser || got[1] != tt.wantPass {
				t.Errorf("authenticator saw (%q, %q), want (%q, %q)", got[0], got[1], tt.wantUser, tt.wantPass)
			}
		})
	}
}

// The authenticator's error is the reply: it must come back unchanged so
// go-smtp writes its code (535), not a generic 454.
func TestLoginServerPassesAuthenticatorError(t *testing.T) {
	s := newLoginServer(func(string, string) error { return errAuthFailed })
	_, _, _ = s.Next([]byte("u"))
	_, _, err := s.Next([]byte("p"))
	if err != errAuthFailed {
		t.Fatalf("err = %v, want errAuthFailed itself", err)
	}
}
