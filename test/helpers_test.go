package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// startServer starts a bayeuxhub on a random loopback port and stops it
// when the test ends.
func startServer(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.StatsChannel == "" {
		cfg.StatsChannel = "-"
	}
	srv, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// msg is a Bayeux message as tests write and read it.
type msg = map[string]any

// client is a bare Bayeux long-polling client over net/http, so that tests
// see exactly what goes over the wire.
type client struct {
	t    testing.TB
	url  string
	http *http.Client
	id   string
	seq  int
}

func newClient(t testing.TB, srv *server.Server) *client {
	return &client{t: t, url: srv.URL() + "/cometd", http: &http.Client{Timeout: 60 * time.Second}}
}

func (c *client) nextID() string {
	c.seq++
	return fmt.Sprint(c.seq)
}

// post sends messages as a JSON array and returns the status and replies.
func (c *client) post(msgs ...msg) (int, []msg) {
	c.t.Helper()
	body, err := json.Marshal(msgs)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.raw("application/json", body)
}

func (c *client) raw(contentType string, body []byte) (int, []msg) {
	c.t.Helper()
	resp, err := c.http.Post(c.url, contentType, bytes.NewReader(body))
	if err != nil {
		c.t.Fatalf("POST: %v", err)
	}
	return decodeResponse(c.t, resp)
}

func decodeResponse(t testing.TB, resp *http.Response) (int, []msg) {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	var out []msg
	if len(data) > 0 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("response is not a JSON array: %v: %s", err, data)
		}
	}
	return resp.StatusCode, out
}

// handshake handshakes and remembers the client id.
func (c *client) handshake() msg {
	c.t.Helper()
	_, replies := c.post(msg{"channel": "/meta/handshake", "version": "1.0",
		"supportedConnectionTypes": []string{"long-polling"}, "id": c.nextID()})
	r := only(c.t, replies, "/meta/handshake")
	if r["successful"] != true {
		c.t.Fatalf("handshake failed: %v", r)
	}
	c.id = r["clientId"].(string)
	return r
}

// connect sends a /meta/connect and returns every message of the response.
func (c *client) connect() []msg {
	c.t.Helper()
	_, replies := c.post(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling", "id": c.nextID()})
	return replies
}

// start handshakes and makes the first (immediate) connect.
func (c *client) start() *client {
	c.t.Helper()
	c.handshake()
	r := find(c.connect(), "/meta/connect")
	if r == nil || r["successful"] != true {
		c.t.Fatalf("first connect failed: %v", r)
	}
	return c
}

func (c *client) subscribe(subs ...string) msg {
	c.t.Helper()
	var sub any = subs
	if len(subs) == 1 {
		sub = subs[0]
	}
	_, replies := c.post(msg{"channel": "/meta/subscribe", "clientId": c.id, "subscription": sub, "id": c.nextID()})
	return only(c.t, replies, "/meta/subscribe")
}

func (c *client) unsubscribe(subs ...string) msg {
	c.t.Helper()
	_, replies := c.post(msg{"channel": "/meta/unsubscribe", "clientId": c.id, "subscription": subs, "id": c.nextID()})
	return only(c.t, replies, "/meta/unsubscribe")
}

func (c *client) publish(channel string, data any) msg {
	c.t.Helper()
	_, replies := c.post(msg{"channel": channel, "clientId": c.id, "data": data, "id": c.nextID()})
	return only(c.t, replies, channel)
}

// deliveries connects until n deliveries have arrived or the deadline
// passes, and returns them.
func (c *client) deliveries(n int, within time.Duration) []msg {
	c.t.Helper()
	var got []msg
	deadline := time.Now().Add(within)
	for len(got) < n && time.Now().Before(deadline) {
		for _, m := range c.connect() {
			if m["channel"] != "/meta/connect" {
				got = append(got, m)
			} else if m["successful"] != true {
				c.t.Fatalf("connect failed: %v", m)
			}
		}
	}
	return got
}

// only returns the single reply, checking its channel.
func only(t testing.TB, replies []msg, channel string) msg {
	t.Helper()
	if len(replies) != 1 {
		t.Fatalf("want 1 reply on %s, got %d: %v", channel, len(replies), replies)
	}
	if replies[0]["channel"] != channel {
		t.Fatalf("want reply on %s, got %v", channel, replies[0])
	}
	return replies[0]
}

// find returns the first message on channel, or nil.
func find(msgs []msg, channel string) msg {
	for _, m := range msgs {
		if m["channel"] == channel {
			return m
		}
	}
	return nil
}

// errorCode returns the three-digit code of a reply's error, or "".
func errorCode(m msg) string {
	e, _ := m["error"].(string)
	code, _, _ := strings.Cut(e, ":")
	return code
}

// checkFor is testutil.CheckFor: it polls fn until it returns nil, and
// fails with fn's last error once total (a generous deadline, not a speed
// check) has passed.
func checkFor(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, total, every, fn)
}

// waitHeld waits until srv's hub holds at least n /meta/connect requests,
// so that a test knows a long-poll is held instead of sleeping.
func waitHeld(t testing.TB, srv *server.Server, n int) {
	t.Helper()
	checkFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if h := srv.Hub().Stats().Held; h < n {
			return fmt.Errorf("%d of %d connects held", h, n)
		}
		return nil
	})
}

// connectRaw sends a /meta/connect that must not be held (advice timeout
// 0) and returns the response.
func (c *client) connectRaw() []msg {
	c.t.Helper()
	_, replies := c.post(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling", "advice": msg{"timeout": 0}})
	return replies
}

func mustParseURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
