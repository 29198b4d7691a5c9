package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Host checking defeats DNS rebinding: a web page from
// rebind.attacker.example whose name is made to resolve to 127.0.0.1 can
// make a browser on the box send requests here, but the browser still sends
// Host: rebind.attacker.example. Only names of this listener are served.

// hostSet is the Host values (without port) that name the listener.
type hostSet struct {
	names map[string]bool
	port  string // the listener's port; a Host with another port is refused
}

// listenerHosts builds the set for a listener on addr: its IP literal (every
// interface address when it listens on all of them), "localhost", and
// names (the configured name of the box, and the host admin.listen was
// written with, if it is a name).
func listenerHosts(addr net.Addr, names ...string) hostSet {
	hs := hostSet{names: map[string]bool{"localhost": true}}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return hs
	}
	hs.port = strconv.Itoa(int(ap.Port()))
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					hs.names[p.Addr().Unmap().WithZone("").String()] = true
				}
			}
		}
	} else {
		hs.names[ip.WithZone("").String()] = true
	}
	for _, n := range names {
		if n != "" {
			hs.names[strings.ToLower(strings.TrimSuffix(n, "."))] = true
		}
	}
	return hs
}

// allows reports whether a request's Host names the listener. An empty
// Host (HTTP/1.0) is allowed: browsers always send one.
func (hs hostSet) allows(host string) bool {
	if host == "" {
		return true
	}
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	name = strings.ToLower(strings.TrimSuffix(strings.Trim(name, "[]"), "."))
	if port != "" && hs.port != "" && port != hs.port {
		return false
	}
	if a, err := netip.ParseAddr(name); err == nil {
		name = a.Unmap().WithZone("").String()
	}
	return hs.names[name]
}

// requireHost refuses, with 421 Misdirected Request, every request whose
// Host does not name the listener.
func requireHost(hs hostSet, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hs.allows(r.Host) {
			writeError(w, http.StatusMisdirectedRequest,
				"this admin API answers only to its own address, localhost or the configured hostname (DNS rebinding protection)")
			return
		}
		next.ServeHTTP(w, r)
	})
}
