package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// /wait blocks until the count is reached (or times out with 408), and
// /stats reports what arrived over TLS: the runner's pass/fail depends on
// both.
func TestCountersOverHTTP(t *testing.T) {
	c := newCounters()
	srv := httptest.NewServer(newMux(c))
	defer srv.Close()
	get := func(path string) (int, map[string]int64) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]int64
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil && resp.StatusCode != 200 {
			return resp.StatusCode, nil
		}
		return resp.StatusCode, m
	}
	if code, _ := get("/wait?count=1&timeout=0.2"); code != http.StatusRequestTimeout {
		t.Errorf("wait with nothing arrived: %d, want 408", code)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.add(100, true, time.Now())
		c.add(10, false, time.Now())
	}()
	code, m := get("/wait?count=2&timeout=30")
	if code != 200 || m["messages"] != 2 || m["bytes"] != 110 || m["tls_messages"] != 1 || m["last_ns"] < m["first_ns"] {
		t.Errorf("wait: %d %v", code, m)
	}
	get("/reset")
	if _, m := get("/stats"); m["messages"] != 0 || m["first_ns"] != 0 {
		t.Errorf("after reset: %v", m)
	}
}
