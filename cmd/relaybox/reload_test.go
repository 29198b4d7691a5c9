package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"relaybox/internal/config"
	"relaybox/internal/deliver"
	"relaybox/internal/oauth"
)

// The daemon's reload in process while devices send, so `go test -race`
// sees every path a reload touches beside live sessions and delivery.
func TestReloadInProcessWhileSending(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr, addr2 := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "relaybox.toml")
	configs := []string{
		reloadConfig(data, "", "relaybox.e2e.test", []string{addr}, []string{"campus.test"}, ""),
		reloadConfig(data, "", "relaybox.e2e.test", []string{addr, addr2}, []string{"campus.test", "other.test"},
			"per_client_connections = 40\n[queue]\nmax_size = \"512MiB\"\n[log]\nlevel = \"debug\"\n[[upstream]]\naddress = \"127.0.0.1:1\"\n[delivery]\nmin_backoff = \"2m\""),
	}
	writeFile(t, path, configs[0])
	b, log, opts, err := prepareRun(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(b, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.shutdown()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := os.WriteFile(path, []byte(configs[i%2]), 0o600); err != nil {
				t.Error(err)
				return
			}
			if _, err := d.reload(); err != nil {
				t.Errorf("reload %d: %v", i, err)
			}
			_ = d.status.Snapshot()
			_ = d.queueStats()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := sendPython(t, ctx, addr, 60, 4, "alice@campus.test", 500)
	close(stop)
	wg.Wait()
	if len(ids) != 60 {
		t.Fatalf("%d of 60 messages accepted across reloads", len(ids))
	}
}

// A reload keeps the token source of an OAuth upstream configured as
// before, and builds a new one for an upstream that changed.
func TestReuseTokenSources(t *testing.T) {
	up := func(addr string) config.Upstream {
		return config.Upstream{Address: addr, Auth: "xoauth2", OAuth: config.UpstreamOAuth{Flow: "refresh_token", ClientID: "relay"}}
	}
	oldSrc, newSame, newChanged := &oauth.Source{}, &oauth.Source{}, &oauth.Source{}
	old := &built{cfg: config.Config{Upstream: []config.Upstream{up("a:587"), up("b:587")}},
		oauth: []*oauth.Source{oldSrc, &oauth.Source{}}, tokens: []deliver.TokenSource{oldSrc, nil}}
	next := &built{cfg: config.Config{Upstream: []config.Upstream{up("c:587"), up("a:587")}},
		oauth: []*oauth.Source{newChanged, newSame}, tokens: []deliver.TokenSource{newChanged, newSame}}
	if !reuseTokenSources(old, next) {
		t.Fatal("nothing reused")
	}
	if next.oauth[1] != oldSrc || next.tokens[1] != deliver.TokenSource(oldSrc) {
		t.Error("the unchanged upstream (moved to index 1) got a new token source")
	}
	if next.oauth[0] != newChanged {
		t.Error("a new upstream took an old token source")
	}
}
