package config

import (
	"fmt"
	"net"
	"strings"
)

// placeholderDomains are the domains the shipped sample configs use where
// each site must put its own: example.edu, and the names RFC 2606
// reserves for examples. No real campus relay lives under them.
var placeholderDomains = []string{"example.edu", "example.com", "example.org", "example.net"}

func isPlaceholderDomain(d string) bool {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimPrefix(d, "*.")), ".")
	for _, p := range placeholderDomains {
		if d == p || strings.HasSuffix(d, "."+p) {
			return true
		}
	}
	return false
}

// Placeholders lists the settings that still hold a sample config's
// placeholder values, one sentence each naming the key. Such a config is
// valid (check-config passes, with a warning), but a service started on
// it would greet as, relay for and forward to example names; the
// package's postinst and install.sh start the service only once this is
// empty (`relaybox check-config -ready`).
func (c Config) Placeholders() []string {
	var out []string
	add := func(key, value, what string) {
		out = append(out, fmt.Sprintf("%s = %q is the sample's placeholder: %s", key, value, what))
	}
	if isPlaceholderDomain(c.Hostname) {
		add("hostname", c.Hostname, "set the name devices and the campus relay should see")
	}
	for i, d := range c.Policy.RecipientDomains {
		if isPlaceholderDomain(d) {
			add(fmt.Sprintf("policy.recipient_domains[%d]", i), d, "list your campus's mail domains")
		}
	}
	if _, dom, ok := strings.Cut(c.Policy.Sender, "@"); ok && isPlaceholderDomain(dom) {
		add("policy.sender", c.Policy.Sender, "use an address in your domain, or \"\"")
	}
	if _, dom, ok := strings.Cut(c.Queue.Notify, "@"); ok && isPlaceholderDomain(dom) {
		add("queue.notify", c.Queue.Notify, "use your IT team's address, or \"\"")
	}
	for i, u := range c.Upstream {
		if host, _, err := net.SplitHostPort(u.Address); err == nil && isPlaceholderDomain(host) {
			add(fmt.Sprintf("upstream[%d].address", i), u.Address, "name your campus relay")
		}
	}
	return out
}
