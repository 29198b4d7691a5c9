package smtpd

import "testing"

func TestCRAMAnyServer(t *testing.T) {
	const digest = "0123456789abcdef0123456789ABCDEF"
	tests := []struct {
		name     string
		steps    []step
		wantUser string
	}{
		{"user and digest", []step{
			{nil, "<c@h>", false, false},
			{[]byte("ricoh " + digest), "", true, false},
		}, "ricoh"},
		{"user name with a space", []step{
			{nil, "<c@h>", false, false},
			{[]byte("scan ner " + digest), "", true, false},
		}, "scan ner"},
		{"initial response refused", []step{
			{[]byte("ricoh " + digest), "", false, true},
		}, ""},
		{"no digest", []step{
			{nil, "<c@h>", false, false},
			{[]byte("ricoh"), "", false, true},
		}, ""},
		{"short digest", []step{
			{nil, "<c@h>", false, false},
			{[]byte("ricoh 0123"), "", false, true},
		}, ""},
		{"digest not hex", []step{
			{nil, "<c@h>", false, false},
			{[]byte("ricoh 0123456789abcdef0123456789abcdeg"), "", false, true},
		}, ""},
		{"a response after the end", []step{
			{nil, "<c@h>", false, false},
			{[]byte("ricoh " + digest), "", true, false},
			{[]byte("x"), "", false, true},
		}, "ricoh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			s := &cramAnyServer{challenge: []byte("<c@h>"), accept: func(u string) error { got = u; return nil }}
			runSteps(t, s, tt.steps)
			if got != tt.wantUser {
				t.Errorf("accepted user %q, want %q", got, tt.wantUser)
			}
		})
	}
}
