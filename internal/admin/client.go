package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"relaybox/internal/status"
)

// Client talks to a running daemon's admin API; the CLI's status and queue
// commands use it, since bbolt locks the spool file while the daemon runs.
type Client struct {
	Base     string       // "http://127.0.0.1:8025"
	Password string       // admin.password_file content; "" = none
	HTTP     *http.Client // default: 10s timeout
}

// APIError is a non-2xx answer from the daemon.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// NotFound reports whether err is the daemon saying there is no such
// message.
func NotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// Status returns the daemon's status snapshot.
func (c *Client) Status() (status.Snapshot, error) {
	var s status.Snapshot
	err := c.do(http.MethodGet, "/api/status", &s)
	return s, err
}

// Events returns the daemon's recent log events, oldest first.
func (c *Client) Events() ([]status.Event, error) {
	var r struct {
		Events []status.Event `json:"events"`
	}
	err := c.do(http.MethodGet, "/api/events", &r)
	return r.Events, err
}

// Queue returns a page of the queued messages, oldest first: up to limit
// (0 = the daemon's default of 100) after the ID after ("" = the start).
func (c *Client) Queue(after string, limit int) (*Page, error) {
	return c.list("/api/queue", after, limit)
}

// Dead returns a page of the dead-letter messages, as Queue does.
func (c *Client) Dead(after string, limit int) (*Page, error) {
	return c.list("/api/dead", after, limit)
}

// Held returns a page of the repeats held by duplicate detection (release
// one with Retry), as Queue does.
func (c *Client) Held(after string, limit int) (*Page, error) {
	return c.list("/api/held", after, limit)
}

func (c *Client) list(path, after string, limit int) (*Page, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p Page
	if err := c.do(http.MethodGet, path, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Show returns one message with its headers and history.
func (c *Client) Show(id string) (*Detail, error) {
	var d Detail
	if err := c.do(http.MethodGet, "/api/queue/"+url.PathEscape(id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Retry makes a message due now (requeueing it if dead).
func (c *Client) Retry(id string) (*Message, error) {
	return c.retry("/api/queue/" + url.PathEscape(id) + "/retry")
}

// ForceRetry is Retry that also requeues recipients refused with a 5xx.
func (c *Client) ForceRetry(id string) (*Message, error) {
	return c.retry("/api/queue/" + url.PathEscape(id) + "/retry?force=1")
}

func (c *Client) retry(path string) (*Message, error) {
	var m Message
	if err := c.do(http.MethodPost, path, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// RetryAll makes every queued message due now; it returns how many.
func (c *Client) RetryAll() (int, error) { return c.count("/api/queue/retry-all") }

// RetryDead requeues the dead messages a retry can help; it returns how many.
func (c *Client) RetryDead() (int, error) { return c.count("/api/dead/retry-all") }

func (c *Client) count(path string) (int, error) {
	var r struct {
		Retried int `json:"retried"`
	}
	err := c.do(http.MethodPost, path, &r)
	return r.Retried, err
}

// Reload asks the daemon to re-read its config file and apply it.
func (c *Client) Reload() (ReloadResult, error) {
	var r ReloadResult
	err := c.do(http.MethodPost, "/api/reload", &r)
	return r, err
}

// Delete removes a message for good.
func (c *Client) Delete(id string) error {
	return c.do(http.MethodDelete, "/api/queue/"+url.PathEscape(id), nil)
}

// host is what error messages call the daemon: "127.0.0.1:8025".
func (c *Client) host() string {
	if u, err := url.Parse(c.Base); err == nil && u.Host != "" {
		return u.Host
	}
	return c.Base
}

func (c *Client) do(method, path string, out any) error {
	req, err := http.NewRequest(method, strings.TrimRight(c.Base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if c.Password != "" {
		req.SetBasicAuth("admin", c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("no relaybox daemon answering on %s (is it running? see admin.listen): %w", c.host(), op.Err)
		}
		return fmt.Errorf("admin API on %s: %w", c.host(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API on %s: reading the answer: %w", c.host(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := ""
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		} else {
			msg = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg = fmt.Sprintf("the relaybox daemon on %s wants the admin password: pass -config with the daemon's config (admin.password_file) or -password-file FILE", c.host())
		}
		return &APIError{Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the program on %s does not answer like a relaybox daemon (%s %s): %w", c.host(), method, path, err)
	}
	return nil
}
