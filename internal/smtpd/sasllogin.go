package smtpd

import (
	"github.com/emersion/go-sasl"
)

// The LOGIN mechanism (draft-murchison-sasl-login) has no server in go-sasl,
// yet it is the one most copiers and scanners use. The prompts are fixed
// strings that some devices compare byte for byte; go-smtp base64-encodes
// them, so they reach the wire as "334 VXNlcm5hbWU6" and "334 UGFzc3dvcmQ6".
var (
	loginUserPrompt = []byte("Username:")
	loginPassPrompt = []byte("Password:")
)

// loginAuthenticator checks the user name and password a LOGIN exchange
// collected. A non-nil error is the reply the device sees.
type loginAuthenticator func(username, password string) error

type loginState int

const (
	loginStart loginState = iota
	loginWantUser
	loginWantPass
	loginDone
)

// loginServer is a sasl.Server for LOGIN. go-smtp handles the "*" cancel
// and undecodable base64 itself, before Next is called.
type loginServer struct {
	state    loginState
	username string
	check    loginAuthenticator
}

var _ sasl.Server = (*loginServer)(nil)

func newLoginServer(check loginAuthenticator) *loginServer {
	return &loginServer{check: check}
}

// Next implements sasl.Server. A device may put the user name on the AUTH
// line ("AUTH LOGIN dXNlcg=="); then the first prompt is for the password.
func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.state {
	case loginStart:
		if response == nil {
			s.state = loginWantUser
			return loginUserPrompt, false, nil
		}
		s.username = string(response)
		s.state = loginWantPass
		return loginPassPrompt, false, nil
	case loginWantUser:
		s.username = string(response)
		s.state = loginWantPass
		return loginPassPrompt, false, nil
	case loginWantPass:
		s.state = loginDone
		return nil, true, s.check(s.username, string(response))
	default:
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
}
