package config

import (
	"strings"
	"testing"
)

func TestPlaceholders(t *testing.T) {
	c := Default()
	c.Hostname = "relaybox.lab.example.edu"
	c.Policy.RecipientDomains = []string{"example.edu", "*.example.edu", "campus.test", "notexample.edu"}
	c.Policy.Sender = "lab@EXAMPLE.COM"
	c.Queue.Notify = "it@campus.test"
	c.Upstream = []Upstream{{Address: "smtp.example.edu:587"}, {Address: "smtp.campus.test:587"}}
	got := strings.Join(c.Placeholders(), "\n")
	for _, key := range []string{"hostname", "policy.recipient_domains[0]", "policy.recipient_domains[1]", "policy.sender", "upstream[0].address"} {
		if !strings.Contains(got, key+" = ") {
			t.Errorf("%s not reported:\n%s", key, got)
		}
	}
	for _, key := range []string{"recipient_domains[2]", "recipient_domains[3]", "queue.notify", "upstream[1]"} {
		if strings.Contains(got, key) {
			t.Errorf("%s reported but it is a real value:\n%s", key, got)
		}
	}

	c = Default()
	c.Hostname = "relaybox.chem.campus.test"
	if p := c.Placeholders(); len(p) != 0 {
		t.Errorf("edited config reports placeholders: %v", p)
	}
}
