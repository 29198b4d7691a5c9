package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
