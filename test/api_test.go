package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bayeuxhub/bayeuxhub/api"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// apiClient calls a hub's backend API and checks every answer against
// the OpenAPI document (status codes included: an undocumented status
// fails the test).
type apiClient struct {
	t      testing.TB
	base   string
	key    string
	router routers.Router
}

func newAPIClient(t testing.TB, srv *server.Server, key string) *apiClient {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: srv.URL() + "/api"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, base: srv.URL() + "/api", key: key, router: router}
}

// call sends a request (body: nil, a string of raw JSON, or a value to
// encode) and returns the status and decoded answer.
func (a *apiClient) call(method, path string, body any, header http.Header) (int, msg) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "apikey "+a.key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out msg
	if err := json.Unmarshal(data, &out); err != nil {
		a.t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, data)
	}
	a.validate(req, resp, data)
	return resp.StatusCode, out
}

// validate checks an answer against the OpenAPI document.
func (a *apiClient) validate(req *http.Request, resp *http.Response, body []byte) {
	a.t.Helper()
	route, params, err := a.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusUnauthorized {
			return // routes the document does not have
		}
		a.t.Fatalf("%s %s: not in openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		a.t.Fatalf("%s %s answered %d %s, which openapi.yaml does not describe: %v", req.Method, req.URL.Path, resp.StatusCode, body, err)
	}
}

func errCode(m msg) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestAPIRefusals: no key, a wrong key, bad JSON, an unknown field, a bad
// channel and the rest each get their status and a JSON error.
func TestAPIRefusals(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	good := newAPIClient(t, srv, testAPIKey)
	publish := msg{"channel": "/public/news", "data": "x"}
	for _, c := range []struct {
		name   string
		key    string
		method string
		path   string
		body   any
		header http.Header
		status int
		code   string
	}{
		{"no key", "", "POST", "/publish", publish, nil, 401, "unauthorized"},
		{"wrong key", "not-the-key-0123456789", "POST", "/publish", publish, nil, 401, "unauthorized"},
		{"wrong scheme", "", "POST", "/publish", publish, http.Header{"Authorization": {"Bearer " + testAPIKey}}, 401, "unauthorized"},
		{"no key on an unknown route", "", "GET", "/nothing", nil, nil, 401, "unauthorized"},
		{"unknown route", testAPIKey, "GET", "/nothing", nil, nil, 404, "not_found"},
		{"wrong method", testAPIKey, "GET", "/publish", nil, nil, 405, "method_not_allowed"},
		{"bad JSON", testAPIKey, "POST", "/publish", `{"channel": `, nil, 400, "bad_request"},
		{"not an object", testAPIKey, "POST", "/publish", `[1,2]`, nil, 400, "bad_request"},
		{"unknown field", testAPIKey, "POST", "/publish", msg{"channel": "/public/news", "data": 1, "chanel": "x"}, nil, 400, "bad_request"},
		{"no data", testAPIKey, "POST", "/publish", msg{"channel": "/public/news"}, nil, 400, "bad_request"},
		{"no channel", testAPIKey, "POST", "/publish", msg{"data": 1}, nil, 400, "bad_request"},
		{"both channel fields", testAPIKey, "POST", "/publish", msg{"channel": "/a", "channels": []string{"/b"}, "data": 1}, nil, 400, "bad_request"},
		{"invalid channel", testAPIKey, "POST", "/publish", msg{"channel": "not a channel", "data": 1}, nil, 400, "invalid_channel"},
		{"one invalid of many", testAPIKey, "POST", "/publish", msg{"channels": []string{"/public/a", "/public/*"}, "data": 1}, nil, 400, "invalid_channel"},
		{"meta channel", testAPIKey, "POST", "/publish", msg{"channel": "/meta/connect", "data": 1}, nil, 400, "bad_request"},
		{"service channel", testAPIKey, "POST", "/publish", msg{"channel": "/service/echo", "data": 1}, nil, 400, "bad_request"},
		{"wrong content type", testAPIKey, "POST", "/publish", `{}`, http.Header{"Content-Type": {"text/plain"}}, 415, "unsupported_media_type"},
		{"too large", testAPIKey, "POST", "/publish", `{"channel":"/public/a","data":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "too_large"},
		{"push without target", testAPIKey, "POST", "/push", msg{"channel": "/a", "data": 1}, nil, 400, "bad_request"},
		{"push to both", testAPIKey, "POST", "/push", msg{"client_id": "x", "user": "y", "channel": "/a", "data": 1}, nil, 400, "bad_request"},
		{"push to an unknown client", testAPIKey, "POST", "/push", msg{"client_id": "nobody123", "channel": "/a", "data": 1}, nil, 404, "unknown_client"},
		{"push on a pattern", testAPIKey, "POST", "/push", msg{"user": "alice", "channel": "/a/**", "data": 1}, nil, 400, "invalid_channel"},
		{"disconnect an unknown client", testAPIKey, "POST", "/disconnect", msg{"client_id": "nobody123"}, nil, 404, "unknown_client"},
		{"sessions on an invalid channel", testAPIKey, "GET", "/sessions?channel=nope", nil, nil, 400, "invalid_channel"},
		{"sessions with a bad limit", testAPIKey, "GET", "/sessions?limit=-1", nil, nil, 400, "bad_request"},
	} {
		a := *good
		a.key = c.key
		status, out := a.call(c.method, c.path, c.body, c.header)
		if status != c.status || errCode(out) != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, status, out, c.status, c.code)
		}
	}
	if srv.Hub().Stats().Published != 0 {
		t.Fatalf("a refused request published: %+v", srv.Hub().Stats())
	}
	// The document itself needs no key.
	if body := get(t, srv.URL()+"/api/openapi.yaml"); !strings.HasPrefix(body, "openapi: 3") {
		t.Fatalf("openapi.yaml: %.40s", body)
	}
}

// TestAPIDisabledWithoutKey: a hub without an API key has no /api.
func TestAPIDisabledWithoutKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	for _, req := range []struct{ method, path string }{{"POST", "/api/publish"}, {"GET", "/api/stats"}} {
		r, _ := http.NewRequest(req.method, srv.URL()+req.path, strings.NewReader(`{"channel":"/a","data":1}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "apikey anything-0123456789")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || resp.Header.Get("Content-Type") == "application/json; charset=utf-8" {
			t.Fatalf("%s %s without an API key configured: %d %s", req.method, req.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if srv.Hub().Stats().Published != 0 {
		t.Fatal("published through a disabled API")
	}
}

// TestAPIPublishPushDisconnect: the backend publishes on a server-only
// channel to long-polling and WebSocket subscribers, pushes to every
// session of a user, lists them, and disconnects them all; other users
// keep being served.
func TestAPIPublishPushDisconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t, secureConfig(t, nil))
	a := newAPIClient(t, srv, testAPIKey)
	aliceToken := userToken(t, "alice", jwt.MapClaims{"info": msg{"name": "Alice"}})

	lp := newClient(t, srv).startAs(aliceToken)
	lp.subscribe("/user/alice/inbox")
	ws := wsDial(t, srv, true)
	ws.handshakeAs(aliceToken)
	ws.subscribeTo("/user/alice/inbox")
	bob := newClient(t, srv).startAs(userToken(t, "bob", nil))
	bob.subscribe("/chat/lobby")

	status, out := a.call("POST", "/publish", msg{"channels": []string{"/user/alice/inbox", "/chat/lobby"}, "data": msg{"n": 1}, "id": "m1"}, nil)
	if status != 200 || out["published"] != float64(2) {
		t.Fatalf("publish: %d %v", status, out)
	}
	if got := lp.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["id"] != "m1" {
		t.Fatalf("long-polling subscriber: %v", got)
	}
	if got := ws.waitDeliveries(1, 10*time.Second); len(got) != 1 || got[0]["channel"] != "/user/alice/inbox" {
		t.Fatalf("websocket subscriber: %v", got)
	}
	if got := bob.deliveries(1, 10*time.Second); len(got) != 1 {
		t.Fatalf("bob: %v", got)
	}

	status, out = a.call("GET", "/sessions?user=alice", nil, nil)
	sessions, _ := out["sessions"].([]any)
	if status != 200 || len(sessions) != 2 {
		t.Fatalf("alice's sessions: %d %v", status, out)
	}
	first := sessions[0].(map[string]any)
	if first["user"] != "alice" || first["info"].(map[string]any)["name"] != "Alice" || first["node"] == "" {
		t.Fatalf("session info: %v", first)
	}
	status, out = a.call("GET", "/sessions?channel=/user/alice/inbox", nil, nil)
	if sessions, _ = out["sessions"].([]any); status != 200 || len(sessions) != 2 {
		t.Fatalf("sessions on alice's inbox: %v", out)
	}
	status, out = a.call("GET", "/channels", nil, nil)
	if status != 200 || !strings.Contains(stringify(out["channels"]), `{"channel":"/user/alice/inbox","subscribers":2}`) {
		t.Fatalf("channels: %v", out)
	}

	// A push to the user reaches both of alice's sessions, on a channel
	// neither subscribed to; bob gets nothing.
	status, out = a.call("POST", "/push", msg{"user": "alice", "channel": "/user/alice/notice", "data": "hello alice"}, nil)
	if status != 200 || out["sessions"] != float64(2) {
		t.Fatalf("push to alice: %d %v", status, out)
	}
	if got := lp.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "hello alice" {
		t.Fatalf("long-polling push: %v", got)
	}
	if got := ws.waitDeliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "hello alice" {
		t.Fatalf("websocket push: %v", got)
	}
	status, out = a.call("POST", "/push", msg{"client_id": bob.id, "channel": "/user/bob/notice", "data": "hi bob"}, nil)
	if status != 200 || out["sessions"] != float64(1) {
		t.Fatalf("push to bob's client: %d %v", status, out)
	}
	if got := bob.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "hi bob" {
		t.Fatalf("bob's push: %v", got)
	}

	// Disconnecting alice ends both sessions; her held connect is told not
	// to come back.
	held := make(chan []msg, 1)
	go func() { held <- lp.connect() }()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if srv.Hub().Stats().Held < 2 { // lp's and the websocket's
			return errorString("connects not held yet")
		}
		return nil
	})
	status, out = a.call("POST", "/disconnect", msg{"user": "alice"}, nil)
	if status != 200 || out["sessions"] != float64(2) {
		t.Fatalf("disconnect alice: %d %v", status, out)
	}
	select {
	case r := <-held:
		c := find(r, "/meta/connect")
		if c == nil || c["error"] != "403:"+lp.id+":Disconnected by the server" || adviceOf(c) != "none" {
			t.Fatalf("alice's held connect: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice's held connect was not answered")
	}
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, out := a.call("GET", "/sessions?user=alice", nil, nil); len(out["sessions"].([]any)) != 0 {
			return errorString("alice still has sessions")
		}
		return nil
	})
	if got := find(lp.connect(), "/meta/connect"); got == nil || errorCode(got) != "402" {
		t.Fatalf("alice's next connect: %v", got)
	}
	// bob is still served.
	a.call("POST", "/publish", msg{"channel": "/chat/lobby", "data": "still here"}, nil)
	if got := bob.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "still here" {
		t.Fatalf("bob after alice left: %v", got)
	}
	status, out = a.call("GET", "/stats", nil, nil)
	if status != 200 || out["clients"] != float64(1) || out["published"] != float64(3) {
		t.Fatalf("stats: %v", out)
	}
}

// TestAPIAcrossHubs: with two hubs joined through NATS, hub A's API
// publishes to hub B's subscribers, finds a user's sessions on both,
// pushes to them all and disconnects them all.
func TestAPIAcrossHubs(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	hub := func(name string) *server.Server {
		b, err := broker.NewNATS(broker.NATSOptions{URLs: []string{ns.URL()}, HeartbeatInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cfg := secureConfig(t, nil)
		cfg.NodeName, cfg.Hub.Broker = name, b
		return startServer(t, cfg)
	}
	hubA, hubB := hub("hub-a"), hub("hub-b")
	a := newAPIClient(t, hubA, testAPIKey)
	token := userToken(t, "alice", nil)
	onA := newClient(t, hubA).startAs(token)
	onB := newClient(t, hubB).startAs(token)
	onB.subscribe("/user/alice/inbox")
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, out := a.call("GET", "/sessions?user=alice", nil, nil)
		if n := len(out["sessions"].([]any)); n != 2 || !strings.Contains(stringify(out["nodes"]), "hub-b") {
			return errorString("sessions across hubs: " + stringify(out))
		}
		return nil
	})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, out := a.call("GET", "/channels", nil, nil)
		if !strings.Contains(stringify(out["channels"]), `{"channel":"/user/alice/inbox","subscribers":1}`) {
			return errorString("channels across hubs: " + stringify(out))
		}
		return nil
	})
	if status, out := a.call("POST", "/publish", msg{"channel": "/user/alice/inbox", "data": "via A"}, nil); status != 200 {
		t.Fatalf("publish on A: %v", out)
	}
	if got := onB.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "via A" {
		t.Fatalf("subscriber on B: %v", got)
	}
	status, out := a.call("POST", "/push", msg{"user": "alice", "channel": "/user/alice/notice", "data": "both"}, nil)
	if status != 200 || out["sessions"] != float64(2) {
		t.Fatalf("push to alice across hubs: %v", out)
	}
	for _, c := range []*client{onA, onB} {
		if got := c.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "both" {
			t.Fatalf("push on %s: %v", c.url, got)
		}
	}
	status, out = a.call("POST", "/disconnect", msg{"user": "alice", "reconnect": true}, nil)
	if status != 200 || out["sessions"] != float64(2) {
		t.Fatalf("disconnect alice across hubs: %v", out)
	}
	for _, c := range []*client{onA, onB} {
		c := c
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if r := find(c.connect(), "/meta/connect"); r == nil || errorCode(r) != "402" || adviceOf(r) != "handshake" {
				return errorString("still connected: " + stringify(r))
			}
			return nil
		})
	}
}
