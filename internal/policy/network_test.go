package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNetworksAllowed(t *testing.T) {
	n, err := NetworkRules([]string{
		"127.0.0.0/8", "::1/128", "10.0.0.0/8", "192.168.1.0/24", "fe80::/10",
		"10.99.1.2/8",           // host bits: same as 10.0.0.0/8
		"172.16.5.5",            // a bare address is one host
		"::ffff:100.64.0.0/106", // IPv4-mapped prefix: stored as 100.64.0.0/10
	})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{
		"127.0.0.1":          true,
		"::1":                true,
		"10.0.0.1":           true,
		"10.255.255.255":     true,
		"::ffff:10.0.0.1":    true, // how a dual-stack listener reports IPv4
		"::ffff:11.0.0.1":    false,
		"11.0.0.1":           false,
		"192.168.1.200":      true,
		"192.168.2.1":        false,
		"fe80::1%eth0":       true, // zones must not hide link-local clients
		"fe80::1":            true,
		"fec0::1":            false,
		"172.16.5.5":         true,
		"172.16.5.6":         false,
		"::ffff:172.16.5.5":  true,
		"100.64.0.1":         true,
		"100.127.255.255":    true,
		"100.128.0.0":        false,
		"2001:db8::1":        false,
		"::a00:1":            false, // IPv4-compatible, not mapped: not 10.0.0.1
		"::ffff:127.0.0.1%x": true,
		"192.0.2.1":          false,
	} {
		ip := netip.MustParseAddr(in)
		if got := n.Allowed(ip); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", in, got, want)
		}
	}
	if n.Allowed(netip.Addr{}) {
		t.Error("the zero Addr is allowed")
	}
}

func TestNetworksEmptyAndNil(t *testing.T) {
	n, err := NetworkRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Allowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty list allowed 127.0.0.1")
	}
	var none *Networks
	if none.Allowed(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a nil *Networks allowed something")
	}
}

// Entries are stored masked, single addresses as full-length prefixes and
// IPv4-mapped prefixes as IPv4.
func TestNetworkRulesPrefixes(t *testing.T) {
	n, err := NetworkRules([]string{"10.1.2.3/8", "::1", "::ffff:192.0.2.0/120", "::/0"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range n.prefixes {
		got = append(got, p.String())
	}
	want := "10.0.0.0/8 ::1/128 192.0.2.0/24 ::/0"
	if strings.Join(got, " ") != want {
		t.Fatalf("stored prefixes %v, want %s", got, want)
	}
	// "::/0" is every IPv6 address, not every address.
	if n.Allowed(netip.MustParseAddr("198.51.100.1")) {
		t.Error("::/0 allowed an IPv4 client")
	}
}

func TestNetworkRulesErrors(t *testing.T) {
	for _, bad := range []string{
		"", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "/8", "10.0.0.0/8 ", " 10.0.0.0/8",
		"fe80::1%eth0", "fe80::%eth0/10", "campus.test", "10.0.0.0/-1", "::1/129", "10.0.0.0/08",
	} {
		_, err := NetworkRules([]string{"127.0.0.0/8", bad})
		if err == nil {
			t.Errorf("NetworkRules(%q) accepted", bad)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "policy: ") || !strings.Contains(msg, `"`+bad+`"`) {
			t.Errorf("NetworkRules(%q) error %q does not name the entry", bad, msg)
		}
	}
}

func TestSanitizeHelo(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "unknown",
		"printer.lab.example.edu":    "printer.lab.example.edu",
		"[192.0.2.1]":                "[192.0.2.1]",
		"[IPv6:2001:db8::1]":         "[IPv6:2001:db8::1]",
		"HP_LaserJet-4000":           "HP_LaserJet-4000",
		"bad host\r\nX-Evil: yes":    "bad?host??X-Evil:?yes",
		"a=b;c\"d'e":                 "a?b?c?d?e",
		"id=1 event=sent":            "id?1?event?sent",
		"\u00fcn\u00efcode":          "?n?code",
		"\xff\xfe":                   "??",
		"\x00":                       "?",
		" ":                          "?",
		strings.Repeat("a", 65):      strings.Repeat("a", 64),
		strings.Repeat("\u00e9", 70): strings.Repeat("?", 64),
	} {
		if got := SanitizeHelo(in); got != want {
			t.Errorf("SanitizeHelo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8025": true, "localhost:1": true, "[::1]:8025": true, "127.0.0.2:1": true,
		"[::ffff:127.0.0.1]:1": true, "[::]:8025": false, ":8025": false, "192.168.1.2:80": false, "bad": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%s) = %v", addr, got)
		}
	}
}
