package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"
	"github.com/gorilla/mux"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// attachServer is a hub started without ConnectionTypes, attached to a
// router at /cometd and served on 127.0.0.1.
type attachServer struct {
	hub      *actors.Hub
	endpoint *Endpoint
	srv      *httptest.Server
}

func attachStart(t *testing.T, c Config) *attachServer {
	t.Helper()
	system := attachQuietSystem()
	hub, err := actors.Start(system, actors.Options{}) // no ConnectionTypes: Attach decides
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	e, err := Attach(r, "/cometd", hub, c)
	if err != nil {
		t.Fatal(err)
	}
	r.HandleFunc("/other", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("other")) })
	s := &attachServer{hub: hub, endpoint: e, srv: httptest.NewServer(r)}
	t.Cleanup(func() {
		ctx := context.Background() // no deadline: go test -timeout catches a hang
		if err := hub.Drain(ctx); err != nil {
			t.Error(err)
		}
		if err := e.Close(ctx); err != nil {
			t.Error(err)
		}
		s.srv.Close()
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		system.Shutdown()
	})
	return s
}

func (s *attachServer) wsURL() string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/cometd"
}

// post sends one long-polling request and returns the status and replies.
func (s *attachServer) post(t *testing.T, path, body string) (int, []map[string]any) {
	t.Helper()
	resp, err := s.srv.Client().Post(s.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: response is not a JSON array: %v", path, err)
	}
	return resp.StatusCode, out
}

// attachDial opens a WebSocket to the endpoint.
func attachDial(t *testing.T, s *attachServer) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(t.Context(), s.wsURL(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return conn
}

// attachCall sends one frame and reads frames until the reply with id.
func attachCall(t *testing.T, conn *websocket.Conn, id, frame string) map[string]any {
	t.Helper()
	ctx := t.Context()
	if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatalf("write: %v", err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var msgs []map[string]any
		if err := json.Unmarshal(data, &msgs); err != nil {
			t.Fatalf("frame is not a JSON array: %v: %s", err, data)
		}
		for _, m := range msgs {
			if m["id"] == id {
				return m
			}
		}
	}
}

func attachOffered(m map[string]any) []string {
	var out []string
	list, _ := m["supportedConnectionTypes"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

const lpHandshake = `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"h"}]`

// With Attach and no ConnectionTypes on the hub, a WebSocket client
// handshakes and connects, and long-polling works on the same path.
func TestAttachDefaults(t *testing.T) {
	t.Parallel()
	s := attachStart(t, Config{})
	if got := s.endpoint.Types(); !slices.Equal(got, DefaultTypes()) {
		t.Fatalf("Types() = %v, want %v", got, DefaultTypes())
	}
	if s.endpoint.Path() != "/cometd" {
		t.Fatalf("Path() = %q", s.endpoint.Path())
	}

	conn := attachDial(t, s)
	r := attachCall(t, conn, "h", `{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"h"}`)
	if r["successful"] != true {
		t.Fatalf("websocket handshake: %v", r)
	}
	if got := attachOffered(r); !slices.Equal(got, DefaultTypes()) {
		t.Fatalf("handshake offers %v, want %v", got, DefaultTypes())
	}
	id, _ := r["clientId"].(string)
	r = attachCall(t, conn, "c", `{"channel":"/meta/connect","connectionType":"websocket","advice":{"timeout":0},"id":"c","clientId":"`+id+`"}`)
	if r["successful"] != true {
		t.Fatalf("websocket connect: %v", r)
	}

	// Long-polling on the same path, and on a path below it.
	for _, path := range []string{"/cometd", "/cometd/handshake"} {
		status, replies := s.post(t, path, lpHandshake)
		if status != http.StatusOK || len(replies) != 1 || replies[0]["successful"] != true {
			t.Fatalf("long-polling handshake at %s: %d %v", path, status, replies)
		}
		lpID, _ := replies[0]["clientId"].(string)
		status, replies = s.post(t, path, `[{"channel":"/meta/connect","connectionType":"long-polling","advice":{"timeout":0},"clientId":"`+lpID+`"}]`)
		if status != http.StatusOK || len(replies) != 1 || replies[0]["successful"] != true {
			t.Fatalf("long-polling connect at %s: %d %v", path, status, replies)
		}
	}
	// The rest of the router is untouched.
	resp, err := s.srv.Client().Get(s.srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/other: %d", resp.StatusCode)
	}
}

// With websocket disabled the hub does not offer it and an upgrade is
// refused as server does: the request goes to long-polling, which answers
// HTTP 400 with a Bayeux error.
func TestAttachWebSocketDisabled(t *testing.T) {
	t.Parallel()
	s := attachStart(t, Config{Types: []string{protocol.LongPolling}})
	status, replies := s.post(t, "/cometd", lpHandshake)
	if status != http.StatusOK || len(replies) != 1 || replies[0]["successful"] != true {
		t.Fatalf("long-polling handshake: %d %v", status, replies)
	}
	if got := attachOffered(replies[0]); !slices.Equal(got, []string{protocol.LongPolling}) {
		t.Fatalf("handshake offers %v", got)
	}
	ctx := t.Context()
	conn, resp, err := websocket.Dial(ctx, s.wsURL(), nil)
	if err == nil {
		_ = conn.CloseNow()
		t.Fatal("upgrade accepted with websocket disabled")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade with websocket disabled: %v %v", resp, err)
	}
	// A handshake asking only for websocket has nothing in common.
	status, replies = s.post(t, "/cometd", `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]`)
	if status != http.StatusOK || len(replies) != 1 || replies[0]["successful"] != false ||
		!strings.HasPrefix(fmt.Sprint(replies[0]["error"]), "406:") {
		t.Fatalf("websocket-only handshake: %d %v", status, replies)
	}
	// Callback-polling is not listed either.
	status, replies = s.post(t, "/cometd?jsonp=cb", lpHandshake)
	if status != http.StatusBadRequest || len(replies) != 1 || !strings.Contains(fmt.Sprint(replies[0]["error"]), "Transport disabled") {
		t.Fatalf("callback-polling request: %d %v", status, replies)
	}
	if err := s.endpoint.Close(ctx); err != nil {
		t.Fatalf("Close without websocket: %v", err)
	}
}

// Types lists the order of preference; only websocket serves no
// long-polling request.
func TestAttachTypesOrder(t *testing.T) {
	t.Parallel()
	s := attachStart(t, Config{Types: []string{protocol.LongPolling, protocol.WebSocket}})
	status, replies := s.post(t, "/cometd", lpHandshake)
	if status != http.StatusOK || len(replies) != 1 {
		t.Fatalf("handshake: %d %v", status, replies)
	}
	if got := attachOffered(replies[0]); !slices.Equal(got, []string{protocol.LongPolling, protocol.WebSocket}) {
		t.Fatalf("handshake offers %v", got)
	}

	only := attachStart(t, Config{Types: []string{protocol.WebSocket}})
	status, replies = only.post(t, "/cometd", lpHandshake)
	if status != http.StatusBadRequest || len(replies) != 1 || !strings.Contains(fmt.Sprint(replies[0]["error"]), "Transport disabled") {
		t.Fatalf("long-polling request with only websocket: %d %v", status, replies)
	}
	conn := attachDial(t, only)
	r := attachCall(t, conn, "h", `{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket","long-polling"],"id":"h"}`)
	if r["successful"] != true || !slices.Equal(attachOffered(r), []string{protocol.WebSocket}) {
		t.Fatalf("websocket handshake: %v", r)
	}
}

// Close closes open WebSockets with 1001 and refuses new upgrades.
func TestAttachClose(t *testing.T) {
	t.Parallel()
	s := attachStart(t, Config{})
	conn := attachDial(t, s)
	r := attachCall(t, conn, "h", `{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"h"}`)
	if r["successful"] != true {
		t.Fatalf("handshake: %v", r)
	}
	ctx := t.Context()
	// Read while closing: the peer must answer the close handshake.
	readErr := make(chan error, 1)
	go func() {
		_, _, err := conn.Read(ctx)
		readErr <- err
	}()
	if err := s.endpoint.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after Close: %v, want status 1001", err)
	}
	_, resp, err := websocket.Dial(ctx, s.wsURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Close: %v %v", resp, err)
	}
}

// Attach refuses bad arguments and then mounts nothing and leaves the
// hub's connection types alone.
func TestAttachErrors(t *testing.T) {
	t.Parallel()
	system := attachQuietSystem()
	hub, err := actors.Start(system, actors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hub.Shutdown(context.Background())
		system.Shutdown()
	})
	r := mux.NewRouter()
	for name, call := range map[string]func() (*Endpoint, error){
		"nil router": func() (*Endpoint, error) { return Attach(nil, "/cometd", hub, Config{}) },
		"nil hub":    func() (*Endpoint, error) { return Attach(r, "/cometd", nil, Config{}) },
		"bad path":   func() (*Endpoint, error) { return Attach(r, "cometd", hub, Config{}) },
		"unknown":    func() (*Endpoint, error) { return Attach(r, "/cometd", hub, Config{Types: []string{"iframe"}}) },
		"listed twice": func() (*Endpoint, error) {
			return Attach(r, "/cometd", hub, Config{Types: []string{protocol.LongPolling, protocol.LongPolling}})
		},
	} {
		if e, err := call(); err == nil || e != nil {
			t.Errorf("%s: %v %v", name, e, err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/cometd", strings.NewReader(lpHandshake))
	var m mux.RouteMatch
	if r.Match(req, &m) {
		t.Error("a failed Attach mounted a route")
	}
	rec := httptest.NewRecorder()
	NewLongPolling(hub, Options{}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cometd", strings.NewReader(lpHandshake)))
	var replies []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &replies); err != nil || len(replies) != 1 {
		t.Fatalf("handshake: %v %s", err, rec.Body)
	}
	if got := attachOffered(replies[0]); !slices.Equal(got, []string{protocol.LongPolling, protocol.CallbackPolling}) {
		t.Errorf("hub's types after failed Attach calls: %v", got)
	}
}

// attachQuietSystem returns an actor system whose runtime logs are discarded.
func attachQuietSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(
		func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })))
}
