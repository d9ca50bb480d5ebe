package test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/proxy"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// hookBackend is an application backend for the proxy hooks: it records
// what the hub asks and answers with answer.
type hookBackend struct {
	srv    *httptest.Server
	mu     sync.Mutex
	asked  []msg
	answer func(event string, req msg, r *http.Request) (status int, body string)
}

func newHookBackend(t *testing.T, answer func(event string, req msg, r *http.Request) (int, string)) *hookBackend {
	t.Helper()
	b := &hookBackend{answer: answer}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body) // read it all, so the server sees the client go away
		var req msg
		_ = json.Unmarshal(data, &req)
		b.mu.Lock()
		b.asked = append(b.asked, req)
		b.mu.Unlock()
		status, body := b.answer(strings.TrimPrefix(r.URL.Path, "/"), req, r)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *hookBackend) requests() []msg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]msg(nil), b.asked...)
}

// hookServer starts a hub whose hooks ask b; opts adjusts the proxy.
func hookServer(t *testing.T, b *hookBackend, opts proxy.Options, mod func(*server.Config)) *server.Server {
	t.Helper()
	base := b.srv.URL
	if opts.HandshakeURL == "-" {
		opts.HandshakeURL = base + "/handshake"
	}
	if opts.SubscribeURL == "-" {
		opts.SubscribeURL = base + "/subscribe"
	}
	if opts.PublishURL == "-" {
		opts.PublishURL = base + "/publish"
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Proxy: p, Metrics: true}
	if mod != nil {
		mod(&cfg)
	}
	return startServer(t, cfg)
}

// TestProxyAllowRefuse: the backend sees each subscribe and publish, with
// the headers the operator listed, and its refusals reach the client as a
// 403 with its reason; what it allows goes through.
func TestProxyAllowRefuse(t *testing.T) {
	t.Parallel()
	b := newHookBackend(t, func(event string, req msg, _ *http.Request) (int, string) {
		if strings.Contains(req["channel"].(string), "banned") {
			return 200, `{"allow": false, "reason": "Banned from this room"}`
		}
		return 200, `{"allow": true}`
	})
	srv := hookServer(t, b, proxy.Options{SubscribeURL: "-", PublishURL: "-", Headers: []string{"X-Forwarded-For"}}, nil)
	c := newClient(t, srv).start()
	if r := c.subscribe("/chat/ok"); r["successful"] != true {
		t.Fatalf("allowed subscribe: %v", r)
	}
	if r := c.subscribe("/chat/banned"); r["error"] != "403:/chat/banned:Banned from this room" {
		t.Fatalf("refused subscribe: %v", r)
	}
	if r := c.publish("/chat/ok", msg{"n": 1}); r["successful"] != true {
		t.Fatalf("allowed publish: %v", r)
	}
	if r := c.publish("/chat/banned", msg{"n": 2}); r["error"] != "403:/chat/banned:Banned from this room" {
		t.Fatalf("refused publish: %v", r)
	}
	if got := c.deliveries(1, 10*time.Second); len(got) != 1 || wsData(got[0]) != 1 {
		t.Fatalf("deliveries: %v", got)
	}
	asked := b.requests()
	if len(asked) != 4 {
		t.Fatalf("backend asked %d times: %v", len(asked), asked)
	}
	pub := asked[2]
	if pub["event"] != "publish" || pub["client_id"] != c.id || pub["channel"] != "/chat/ok" ||
		stringify(pub["data"]) != `{"n":1}` || !strings.HasPrefix(pub["remote_addr"].(string), "127.0.0.1:") {
		t.Fatalf("publish request to the backend: %v", pub)
	}
	if _, ok := pub["headers"]; ok {
		t.Fatalf("headers forwarded although the request had none of the listed ones: %v", pub)
	}
	st := srv.Hub().Stats()
	hookRefusals := 0
	for _, r := range st.Refusals {
		if r.Reason == "hook" {
			hookRefusals += int(r.Count)
		}
	}
	if hookRefusals != 2 {
		t.Fatalf("hook refusals counted: %v", st.Refusals)
	}
	if m := get(t, srv.URL()+"/metrics"); !strings.Contains(m, `bayeuxhub_proxy_requests_total{event="subscribe",result="refused"} 1`) {
		t.Fatal("proxy counters not in /metrics")
	}
}

// TestProxyHandshakeNamesUser: the handshake hook identifies users from
// their cookie (no token), and a hub that requires users refuses the
// others with the backend's reason and reconnect "none".
func TestProxyHandshakeNamesUser(t *testing.T) {
	t.Parallel()
	b := newHookBackend(t, func(event string, req msg, _ *http.Request) (int, string) {
		h, _ := req["headers"].(map[string]any)
		cookies, _ := h["Cookie"].([]any)
		if len(cookies) == 1 && cookies[0] == "session=alice" {
			return 200, `{"allow": true, "user": "alice", "info": {"name": "Alice"}}`
		}
		return 200, `{"allow": false, "reason": "Not logged in"}`
	})
	srv := hookServer(t, b, proxy.Options{HandshakeURL: "-", Headers: []string{"Cookie"}},
		func(c *server.Config) { c.Hub.RequireUser = true; c.Hub.Rules = testRules(t) })
	c := newClient(t, srv)
	if r := c.handshakeWith(nil, http.Header{"Cookie": {"session=alice"}}); r["successful"] != true {
		t.Fatalf("handshake with alice's cookie: %v", r)
	}
	c.connect()
	if r := c.subscribe("/user/alice/inbox"); r["successful"] != true {
		t.Fatalf("alice's personal channel: %v", r)
	}
	s := srv.Hub()
	list, _, err := s.ListSessions(t.Context(), actors.SessionFilter{UserID: "alice"})
	if err != nil || len(list) != 1 || string(list[0].Info) != `{"name":"Alice"}` {
		t.Fatalf("alice's session: %v %v", list, err)
	}
	r := newClient(t, srv).handshakeWith(nil, nil)
	if r["error"] != "403::Not logged in" || adviceOf(r) != "none" {
		t.Fatalf("handshake without the cookie: %v", r)
	}
}

// TestProxySlowBackend: a backend slower than the proxy timeout refuses
// the request with 503 at the timeout, and while it waits the other
// clients are served.
func TestProxySlowBackend(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b := newHookBackend(t, func(event string, req msg, r *http.Request) (int, string) {
		if req["channel"] == "/chat/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return 200, `{"allow": true}`
	})
	srv := hookServer(t, b, proxy.Options{PublishURL: "-", Timeout: 3 * time.Second}, nil)
	slow := newClient(t, srv).start()
	fast := newClient(t, srv).start()
	reader := newClient(t, srv).start()
	reader.subscribe("/chat/fast")

	slowReply := make(chan msg, 1)
	go func() {
		c := *slow
		_, replies := c.post(msg{"channel": "/chat/slow", "clientId": slow.id, "data": "x", "id": "slow"})
		slowReply <- find(replies, "/chat/slow")
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, r := range b.requests() {
			if r["channel"] == "/chat/slow" {
				return nil
			}
		}
		return errorString("the slow publish has not reached the backend")
	})
	// The slow publish is in the backend: another client publishes, a
	// third receives it, and the slow one is still waiting.
	if r := fast.publish("/chat/fast", msg{"n": 7}); r["successful"] != true {
		t.Fatalf("fast publish: %v", r)
	}
	if got := reader.deliveries(1, 10*time.Second); len(got) != 1 || wsData(got[0]) != 7 {
		t.Fatalf("reader: %v", got)
	}
	select {
	case r := <-slowReply:
		t.Fatalf("the slow publish was answered before its timeout: %v", r)
	default:
	}
	select {
	case r := <-slowReply:
		if r["error"] != "503:/chat/slow:backend unavailable: timeout after 3s" {
			t.Fatalf("slow publish: %v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("slow publish not answered")
	}
	if st := srv.Hub().Stats(); st.Published != 1 {
		t.Fatalf("published %d, want only the fast one", st.Published)
	}
}

// TestProxyBackendFailures: a backend that is down or answers garbage is a
// refusal with a clear 503, for publishes and for handshakes (which are
// told to try again later).
func TestProxyBackendFailures(t *testing.T) {
	t.Parallel()
	garbage := newHookBackend(t, func(string, msg, *http.Request) (int, string) { return 200, "<html>oops</html>" })
	broken := newHookBackend(t, func(string, msg, *http.Request) (int, string) { return 500, `{"allow": true}` })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		name string
		url  string
		want string
	}{
		{"garbage", garbage.srv.URL, "backend unavailable: answer is not JSON"},
		{"HTTP 500", broken.srv.URL, "backend unavailable: HTTP 500"},
		{"down", down, "backend unavailable: connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := proxy.New(proxy.Options{PublishURL: c.url + "/publish", HandshakeURL: c.url + "/handshake"})
			if err != nil {
				t.Fatal(err)
			}
			srv := startServer(t, server.Config{Proxy: p})
			hs := newClient(t, srv).handshakeWith(nil, nil)
			a, _ := hs["advice"].(map[string]any)
			if hs["error"] != "503::"+c.want || a["reconnect"] != "handshake" || a["interval"] != float64(5000) {
				t.Fatalf("handshake: %v", hs)
			}
			// The same failure refuses a publish; a hub without the
			// handshake hook lets the client in first.
			p2, _ := proxy.New(proxy.Options{PublishURL: c.url + "/publish"})
			srv2 := startServer(t, server.Config{Proxy: p2})
			cl := newClient(t, srv2).start()
			if r := cl.publish("/chat/x", 1); r["error"] != "503:/chat/x:"+c.want {
				t.Fatalf("publish: %v", r)
			}
		})
	}
}
