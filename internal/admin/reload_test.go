package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// POST /api/reload runs the daemon's reload and reports what it did, or
// why the file was refused; without a reload hook it says to restart.
func TestReloadEndpoint(t *testing.T) {
	f := newFixture(t, testSecret)
	hs := httptest.NewServer(f.srv)
	defer hs.Close()
	c := &Client{Base: hs.URL, Password: testSecret}
	if _, err := c.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("no hook: %v", err)
	}

	var fail bool
	f.srv.opt.Reload = func() (ReloadResult, error) {
		if fail {
			return ReloadResult{}, errors.New("relaybox.toml:3: policy.recipient_domains[0]: bad")
		}
		return ReloadResult{File: "relaybox.toml", RestartNeeded: []string{"hostname"}}, nil
	}
	res, err := c.Reload()
	if err != nil || res.File != "relaybox.toml" || len(res.RestartNeeded) != 1 || res.RestartNeeded[0] != "hostname" {
		t.Fatalf("Reload = %+v, %v", res, err)
	}
	fail = true
	_, err = c.Reload()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, "relaybox.toml:3") {
		t.Fatalf("refused reload: %v", err)
	}
	// The password guards it like every other change.
	if _, err := (&Client{Base: hs.URL}).Reload(); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("without password: %v", err)
	}
}
