package policy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Networks is the set of client networks that may use the LAN listener.
// It is immutable after NetworkRules and safe for concurrent use.
type Networks struct {
	prefixes []netip.Prefix
}

// NetworkRules parses CIDR prefixes such as "10.0.0.0/8" or "fc00::/7". A bare
// address ("192.0.2.7", "::1") means that one host. Host bits after the prefix
// length are ignored ("10.1.2.3/8" is 10.0.0.0/8), as net.ParseCIDR does.
// IPv4-mapped IPv6 prefixes ("::ffff:10.0.0.0/104") are stored as IPv4, since
// Allowed unmaps client addresses too. The error names the first bad entry.
// An empty list allows no one.
func NetworkRules(cidrs []string) (*Networks, error) {
	n := &Networks{}
	for _, c := range cidrs {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("policy: allowed network %q: %w", c, err)
		}
		n.prefixes = append(n.prefixes, p)
	}
	return n, nil
}

func parsePrefix(c string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(c, "/") {
		var err error
		if p, err = netip.ParsePrefix(c); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(c)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR prefix (like 10.0.0.0/8) or an address: %w", err)
		}
		if a.Zone() != "" {
			// netip.Prefix cannot hold a zone, and Contains never matches one.
			return netip.Prefix{}, fmt.Errorf("zones (%%%s) are not supported; use a prefix such as fe80::/10", a.Zone())
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Allowed reports whether ip is inside one of the networks. An IPv4-mapped
// IPv6 address (::ffff:10.0.0.1, as a dual-stack listener reports IPv4
// clients) is unmapped first, and an IPv6 zone (fe80::1%eth0) is dropped,
// because netip.Prefix.Contains never matches a zoned address. A nil
// *Networks allows no one.
func (n *Networks) Allowed(ip netip.Addr) bool {
	if n == nil || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range n.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SanitizeHelo makes a client's HELO/EHLO argument safe for logs and the
// Received header: letters, digits and . - : [ ] _ are kept, every other
// character becomes '?', the result is cut to 64 characters, and an empty
// argument becomes "unknown". Devices send odd names; none of them may inject
// a header line or a log field.
func SanitizeHelo(s string) string {
	const maxHelo = 64
	if s == "" {
		return "unknown"
	}
	var b strings.Builder
	for _, r := range s { // one byte out per rune in
		if b.Len() == maxHelo {
			break
		}
		if r < 0x80 && isHeloByte(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

func isHeloByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(".-:[]_", c) >= 0
}

// IsLoopback reports whether a host:port can only be reached from the box
// itself. An empty host means every interface, so it is not loopback.
// Config validation and admin.Listen both ask it, so the check at load
// time and the one at bind time agree.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
