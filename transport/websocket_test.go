package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// wsTestServer serves a hub's WebSocket transport (in front of
// long-polling) on an httptest server with a short ReadTimeout.
type wsTestServer struct {
	hub *actors.Hub
	ws  *WebSocket
	srv *httptest.Server
}

func wsStart(t *testing.T, hubOpts actors.Options, opts WebSocketOptions) *wsTestServer {
	t.Helper()
	if hubOpts.ConnectionTypes == nil {
		hubOpts.ConnectionTypes = DefaultTypes()
	}
	hub, err := actors.Start(actor.NewActorSystem(), hubOpts)
	if err != nil {
		t.Fatal(err)
	}
	s := &wsTestServer{hub: hub, ws: NewWebSocket(hub, opts)}
	s.srv = httptest.NewUnstartedServer(s.ws.Wrap(NewLongPolling(hub, Options{})))
	// A read timeout far below the poll timeout: the transport must clear
	// it on upgraded connections.
	s.srv.Config.ReadTimeout = 300 * time.Millisecond
	s.srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hub.Drain(ctx)
		if err := s.ws.Close(ctx); err != nil {
			t.Error(err)
		}
		s.srv.Close()
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hub.System().Shutdown()
	})
	return s
}

func (s *wsTestServer) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/cometd" }

// open returns the number of connections being served.
func (s *wsTestServer) open() int {
	s.ws.mu.Lock()
	defer s.ws.mu.Unlock()
	return len(s.ws.conns)
}

// wsPeer is a minimal Bayeux client over a WebSocket.
type wsPeer struct {
	t    *testing.T
	conn *websocket.Conn
	id   string
}

func wsPeerDial(t *testing.T, s *wsTestServer) *wsPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, s.url(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsPeer{t: t, conn: conn}
}

func (p *wsPeer) send(frame string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// frame reads one frame as raw JSON and decoded.
func (p *wsPeer) frame(within time.Duration) (string, []map[string]any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, data, err := p.conn.Read(ctx)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	var out []map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		p.t.Fatalf("frame is not a JSON array: %v: %s", err, data)
	}
	return string(data), out
}

// call sends one message and reads frames until its reply (by id).
func (p *wsPeer) call(within time.Duration, m string) map[string]any {
	p.t.Helper()
	var head struct{ ID string }
	_ = json.Unmarshal([]byte(m), &head)
	p.send(m)
	deadline := time.Now().Add(within)
	for {
		_, msgs := p.frame(time.Until(deadline))
		for _, r := range msgs {
			if r["id"] == head.ID {
				return r
			}
		}
	}
}

func (p *wsPeer) start(subs ...string) {
	p.t.Helper()
	r := p.call(5*time.Second, `{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"hs"}`)
	if r["successful"] != true {
		p.t.Fatalf("handshake: %v", r)
	}
	p.id = r["clientId"].(string)
	if r := p.call(5*time.Second, `{"channel":"/meta/connect","connectionType":"websocket","id":"c0","clientId":"`+p.id+`"}`); r["successful"] != true {
		p.t.Fatalf("connect: %v", r)
	}
	for i, s := range subs {
		if r := p.call(5*time.Second, fmt.Sprintf(`{"channel":"/meta/subscribe","subscription":%q,"id":"s%d","clientId":%q}`, s, i, p.id)); r["successful"] != true {
			p.t.Fatalf("subscribe: %v", r)
		}
	}
}

func TestWebSocketOutlivesServerReadTimeout(t *testing.T) {
	s := wsStart(t, actors.Options{PollTimeout: time.Second}, WebSocketOptions{})
	p := wsPeerDial(t, s)
	p.start()
	start := time.Now()
	// Held for the poll timeout, over three times the server's ReadTimeout.
	r := p.call(5*time.Second, `{"channel":"/meta/connect","connectionType":"websocket","id":"c1","clientId":"`+p.id+`"}`)
	if r["successful"] != true || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("held connect: %v after %v", r, time.Since(start))
	}
	if r := p.call(5*time.Second, `{"channel":"/meta/subscribe","subscription":"/a","id":"s","clientId":"`+p.id+`"}`); r["successful"] != true {
		t.Fatalf("subscribe after the read timeout: %v", r)
	}
}

func TestWebSocketPingPong(t *testing.T) {
	s := wsStart(t, actors.Options{PollTimeout: time.Second},
		WebSocketOptions{PingInterval: 50 * time.Millisecond, PongTimeout: 150 * time.Millisecond})
	live := wsPeerDial(t, s)
	live.start()
	// A peer that reads answers pings (its library does, while reading).
	frames := make(chan []byte, 16)
	go func() {
		defer close(frames)
		for {
			_, data, err := live.conn.Read(context.Background())
			if err != nil {
				return
			}
			frames <- data
		}
	}()
	// A peer that never reads never answers a ping: it is closed.
	_ = wsPeerDial(t, s)
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := s.open(); n != 2 {
			return fmt.Errorf("%d connections open, want 2 (both peers)", n)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := s.open(); n != 1 {
			return fmt.Errorf("%d connections open, want 1 (the silent peer closed)", n)
		}
		return nil
	})
	// The reading peer is still served after many ping intervals.
	live.send(`{"channel":"/meta/subscribe","subscription":"/a","id":"s","clientId":"` + live.id + `"}`)
	select {
	case data, ok := <-frames:
		if !ok || !strings.Contains(string(data), `"successful":true`) {
			t.Fatalf("subscribe: %s (open %v)", data, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
	}
	_ = live.conn.CloseNow()
	for range frames {
	}
}

func TestWebSocketFramesCappedAtMaxBody(t *testing.T) {
	const maxBody = 512
	s := wsStart(t, actors.Options{}, WebSocketOptions{MaxBody: maxBody})
	p := wsPeerDial(t, s)
	p.start("/cap")
	const n = 40
	for i := range n {
		if err := s.hub.Publish("/cap", map[string]any{"n": i, "pad": strings.Repeat("p", 60)}); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < n {
		raw, msgs := p.frame(5 * time.Second)
		if len(raw) > maxBody {
			t.Fatalf("frame of %d bytes over MaxBody %d", len(raw), maxBody)
		}
		for _, m := range msgs {
			if m["channel"] != "/cap" {
				continue
			}
			if v := int(m["data"].(map[string]any)["n"].(float64)); v != got {
				t.Fatalf("message %d is %d", got, v)
			}
			got++
		}
	}
}

func TestWebSocketPushQueueBound(t *testing.T) {
	c := &wsConn{t: &WebSocket{opts: WebSocketOptions{MaxWriteQueue: 2}}}
	msg := []byte(`{"channel":"/a","data":1}`)
	for i := range 2 {
		if !c.push([][]byte{msg}) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if c.push([][]byte{msg}) {
		t.Fatal("push accepted at the bound")
	}
	// The writer takes the queue; pushes stay refused until the session's
	// backlog has come back in a reply, so that they cannot overtake it.
	c.mu.Lock()
	c.queue, c.pushed = nil, 0
	c.mu.Unlock()
	if c.push([][]byte{msg}) {
		t.Fatal("push accepted before the backlog was sent")
	}
	c.reply([][]byte{[]byte(`{"channel":"/meta/subscribe","successful":true}`)})
	if c.push([][]byte{msg}) {
		t.Fatal("push accepted after a reply without the backlog")
	}
	c.reply([][]byte{msg, []byte(`{"channel":"/meta/connect","successful":true}`)})
	if !c.push([][]byte{msg}) {
		t.Fatal("push refused after the backlog was sent")
	}
	c.markClosed()
	if c.push([][]byte{msg}) {
		t.Fatal("push accepted on a closed connection")
	}
}

func TestWebSocketNotAnUpgrade(t *testing.T) {
	ws := NewWebSocket(nil, WebSocketOptions{})
	rec := httptest.NewRecorder()
	ws.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cometd", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"error":"400::WebSocket upgrade expected"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	// Wrap passes other requests on.
	reached := false
	h := ws.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/cometd", strings.NewReader("[]")))
	if !reached {
		t.Fatal("Wrap did not pass a POST on")
	}
}

func TestWebSocketClose(t *testing.T) {
	s := wsStart(t, actors.Options{}, WebSocketOptions{})
	p := wsPeerDial(t, s)
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		_, _, err := p.conn.Read(ctx)
		readErr <- err
	}()
	if err := s.ws.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after Close: %v, want status 1001", err)
	}
	_, resp, err := websocket.Dial(ctx, s.url(), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade after Close: %v %v", resp, err)
	}
}

func TestWebSocketBadFrames(t *testing.T) {
	s := wsStart(t, actors.Options{}, WebSocketOptions{MaxBody: 1024})
	p := wsPeerDial(t, s)
	for _, tc := range []struct{ frame, want string }{
		{`{`, `[{"successful":false,"error":"400::Malformed JSON"}]`},
		{`42`, `[{"successful":false,"error":"400::Request must be a JSON object or array"}]`},
		{`[]`, `[{"successful":false,"error":"400::Empty batch"}]`},
	} {
		p.send(tc.frame)
		if raw, _ := p.frame(5 * time.Second); raw != tc.want {
			t.Errorf("frame %q answered %s, want %s", tc.frame, raw, tc.want)
		}
	}
	p.start() // still usable
	p.send(`[{"channel":"/x","data":"` + strings.Repeat("z", 2048) + `"}]`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := p.conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("frame over MaxBody: %v, want status 1009", err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := s.open(); n != 0 {
			return fmt.Errorf("%d connections open, want 0 (the connection ended)", n)
		}
		return nil
	})
}

func TestOriginChecker(t *testing.T) {
	check := OriginChecker([]string{"https://app.example.com", "http://other.example.com:8080/"})
	for _, tc := range []struct {
		origin []string
		host   string
		want   bool
	}{
		{nil, "bayeux.example.com", true},
		{[]string{"https://bayeux.example.com"}, "bayeux.example.com", true},
		{[]string{"http://bayeux.example.com:80"}, "bayeux.example.com", true},
		{[]string{"https://app.example.com"}, "bayeux.example.com", true},
		{[]string{"HTTP://OTHER.example.com:8080"}, "bayeux.example.com", true},
		{[]string{"https://evil.example.com"}, "bayeux.example.com", false},
		{[]string{"https://app.example.com.evil.test"}, "bayeux.example.com", false},
		{[]string{"null"}, "bayeux.example.com", false},
		{[]string{""}, "bayeux.example.com", false},
		{[]string{"https://app.example.com", "https://app.example.com"}, "bayeux.example.com", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/cometd", nil)
		r.Host = tc.host
		if tc.origin != nil {
			r.Header["Origin"] = tc.origin
		}
		if got := check(r); got != tc.want {
			t.Errorf("Origin %q at %s: %v, want %v", tc.origin, tc.host, got, tc.want)
		}
	}
	anyOrigin := OriginChecker([]string{"*"})
	r := httptest.NewRequest(http.MethodGet, "/cometd", nil)
	r.Header.Set("Origin", "https://anywhere.test")
	if !anyOrigin(r) {
		t.Error("* does not allow any origin")
	}
}

func TestLongPollingTypes(t *testing.T) {
	hub, err := actors.Start(actor.NewActorSystem(), actors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hub.Shutdown(context.Background())
		hub.System().Shutdown()
	})
	hs := `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`
	for _, tc := range []struct {
		types  []string
		jsonp  bool
		status int
	}{
		{[]string{protocol.CallbackPolling}, false, http.StatusBadRequest},
		{[]string{WebSocketType}, false, http.StatusBadRequest},
		{[]string{WebSocketType}, true, http.StatusBadRequest},
		{[]string{protocol.LongPolling}, true, http.StatusBadRequest},
	} {
		lp := NewLongPolling(hub, Options{Types: tc.types})
		target := "/cometd"
		if tc.jsonp {
			target += "?jsonp=cb"
		}
		rec := httptest.NewRecorder()
		lp.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(hs)))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), "Transport disabled") {
			t.Errorf("types %v, jsonp %v: %d %s", tc.types, tc.jsonp, rec.Code, rec.Body)
		}
	}
}

func TestCheckTypes(t *testing.T) {
	if err := CheckTypes(DefaultTypes()); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]string{nil, {"iframe"}, {"websocket", "WebSocket"}} {
		if err := CheckTypes(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestWebSocketCompression: with Compression, a client that asks for
// permessage-deflate gets it (without context takeover: nothing is kept
// per connection between frames) and its deliveries arrive intact; without
// it, or for a client that does not ask, frames go uncompressed.
func TestWebSocketCompression(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		server, client bool
		want           string
	}{
		{true, true, "permessage-deflate"},
		{true, false, ""},
		{false, true, ""},
	} {
		s := wsStart(t, actors.Options{}, WebSocketOptions{Compression: tc.server})
		mode := websocket.CompressionDisabled
		if tc.client {
			mode = websocket.CompressionNoContextTakeover
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, resp, err := websocket.Dial(ctx, s.url(), &websocket.DialOptions{CompressionMode: mode})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadLimit(-1)
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if !strings.HasPrefix(ext, tc.want) || tc.want == "" && ext != "" {
			t.Fatalf("server %v, client %v: extensions %q, want %q", tc.server, tc.client, ext, tc.want)
		}
		p := &wsPeer{t: t, conn: conn}
		p.start("/z")
		text := strings.Repeat("compressible ", 500)
		if err := s.hub.Publish("/z", map[string]any{"text": text}); err != nil {
			t.Fatal(err)
		}
		for got := false; !got; {
			_, msgs := p.frame(5 * time.Second)
			for _, m := range msgs {
				if m["channel"] == "/z" {
					if m["data"].(map[string]any)["text"] != text {
						t.Fatalf("delivery changed: %v", m)
					}
					got = true
				}
			}
		}
		_ = conn.CloseNow()
	}
}

// TestWebSocketInflatedFrameOverMaxBody: MaxBody bounds a frame once
// inflated, not only its compressed bytes on the wire: a frame of a few
// hundred bytes (gorilla's client compresses it) that inflates to 256 KiB
// closes the connection with 1009, and the server serves the next client.
func TestWebSocketInflatedFrameOverMaxBody(t *testing.T) {
	t.Parallel()
	s := wsStart(t, actors.Options{}, WebSocketOptions{MaxBody: 4096, Compression: true})
	d := gorilla.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(s.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("no permessage-deflate: %v", resp.Header)
	}
	conn.EnableWriteCompression(true)
	bomb := `[{"channel":"/x","data":"` + strings.Repeat("a", 256<<10) + `"}]`
	if err := conn.WriteMessage(gorilla.TextMessage, []byte(bomb)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = conn.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseMessageTooBig) {
		t.Fatalf("inflated frame over MaxBody: %v, want status 1009", err)
	}
	p := wsPeerDial(t, s)
	p.start()
}
