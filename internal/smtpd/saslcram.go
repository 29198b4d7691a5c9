package smtpd

import (
	"bytes"
	"errors"

	"github.com/emersion/go-sasl"
)

// CRAM-MD5 (RFC 2195) proves the password by an HMAC-MD5 keyed with the
// plaintext password, so checking it needs the plaintext (or the
// equivalent HMAC precomputation, which is just as secret) on our side;
// bcrypt hashes cannot answer it. It is therefore offered only in auth
// mode "any", where no password is checked at all: Ricoh and some Canon
// devices default to it, and there it costs nothing to let them through.

// cramAnyServer is a sasl.Server for CRAM-MD5 that checks the shape of the
// answer and hands on the user name, never the digest.
type cramAnyServer struct {
	challenge []byte // "<random.time@host>", RFC 2195 section 2
	sent      bool
	done      bool
	accept    func(username string) error
}

var _ sasl.Server = (*cramAnyServer)(nil)

var errCRAMMalformed = errors.New("smtpd: CRAM-MD5 answer is not \"user digest\" with a 32-digit hex digest")

// Next implements sasl.Server. The server speaks first; a client initial
// response is a protocol error.
func (s *cramAnyServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.done:
		return nil, false, sasl.ErrUnexpectedClientResponse
	case !s.sent:
		if response != nil {
			s.done = true
			return nil, false, sasl.ErrUnexpectedClientResponse
		}
		s.sent = true
		return s.challenge, false, nil
	}
	s.done = true
	i := bytes.LastIndexByte(response, ' ')
	if i < 0 || !isHex32(response[i+1:]) {
		return nil, false, errCRAMMalformed
	}
	return nil, true, s.accept(string(response[:i]))
}

func isHex32(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
