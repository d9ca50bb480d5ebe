package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// wsClient is a bare Bayeux client over a WebSocket, so that tests see
// each frame: a reader goroutine decodes every frame into wsClient.frames.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan []msg
	done   chan struct{} // the reader ended
	err    error         // why it ended; read after done
	id     string
	seq    int
	ctx    context.Context
	cancel context.CancelFunc
}

// wsURL is the server's Bayeux endpoint as a ws:// URL.
func wsURL(srv *server.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL(), "http") + "/cometd"
}

// wsDial opens a WebSocket to srv's /cometd and starts reading it; read
// false leaves the socket unread (a client that stops reading).
func wsDial(t testing.TB, srv *server.Server, read bool) *wsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, _, err := websocket.Dial(ctx, wsURL(srv), nil)
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(-1)
	c := &wsClient{t: t, conn: conn, frames: make(chan []msg, 4096), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	if read {
		go c.read()
	} else {
		close(c.done)
	}
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			c.err = err
			close(c.frames)
			return
		}
		var frame []msg
		if err := json.Unmarshal(data, &frame); err != nil {
			frame = []msg{{"channel": "!undecodable", "raw": string(data)}}
		}
		select {
		case c.frames <- frame:
		case <-c.ctx.Done():
			close(c.frames)
			return
		}
	}
}

// close closes the socket and waits for the reader.
func (c *wsClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	c.cancel()
	_ = c.conn.CloseNow()
	<-c.done
}

func (c *wsClient) nextID() string {
	c.seq++
	return fmt.Sprint(c.seq)
}

// sendRaw writes one text frame.
func (c *wsClient) sendRaw(data string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(data)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes messages as one array frame.
func (c *wsClient) send(msgs ...msg) {
	c.t.Helper()
	body, err := json.Marshal(msgs)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(body))
}

// next returns the next frame, failing after within.
func (c *wsClient) next(within time.Duration) []msg {
	c.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("socket closed while waiting for a frame")
		}
		return f
	case <-timer.C:
		c.t.Fatalf("no frame within %v", within)
		return nil
	}
}

// await reads frames until one holds a message for which match is true,
// and returns that message; other messages are kept in skipped.
func (c *wsClient) await(within time.Duration, match func(msg) bool) (found msg, skipped []msg) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("no matching message within %v; got %v", within, skipped)
		}
		for _, m := range c.next(left) {
			if found == nil && match(m) {
				found = m
				continue
			}
			skipped = append(skipped, m)
		}
		if found != nil {
			return found, skipped
		}
	}
}

// reply sends m with a fresh id and waits for the reply on its channel.
func (c *wsClient) reply(m msg) msg {
	c.t.Helper()
	id := c.nextID()
	m["id"] = id
	if c.id != "" && m["clientId"] == nil {
		m["clientId"] = c.id
	}
	c.send(m)
	r, _ := c.await(10*time.Second, func(r msg) bool { return r["id"] == id && r["channel"] == m["channel"] })
	return r
}

// handshake handshakes over the socket and remembers the client id.
func (c *wsClient) handshake() msg {
	c.t.Helper()
	r := c.reply(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket", "long-polling"}})
	if r["successful"] != true {
		c.t.Fatalf("handshake failed: %v", r)
	}
	c.id = r["clientId"].(string)
	return r
}

// start handshakes, makes the first (immediate) connect and subscribes.
func (c *wsClient) start(subs ...string) *wsClient {
	c.t.Helper()
	c.handshake()
	if r := c.reply(msg{"channel": "/meta/connect", "connectionType": "websocket"}); r["successful"] != true {
		c.t.Fatalf("first connect failed: %v", r)
	}
	for _, s := range subs {
		if r := c.reply(msg{"channel": "/meta/subscribe", "subscription": s}); r["successful"] != true {
			c.t.Fatalf("subscribe %s failed: %v", s, r)
		}
	}
	return c
}

// wsData returns a delivery's data.n.
func wsData(m msg) int {
	d, _ := m["data"].(map[string]any)
	n, _ := d["n"].(float64)
	return int(n)
}

func TestWebSocketHandshakeSubscribePublish(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	a := wsDial(t, srv, true)
	r := a.handshake()
	types, _ := r["supportedConnectionTypes"].([]any)
	if len(types) == 0 || types[0] != "websocket" {
		t.Fatalf("handshake does not offer websocket first: %v", r["supportedConnectionTypes"])
	}
	if r := a.reply(msg{"channel": "/meta/connect", "connectionType": "websocket"}); r["successful"] != true {
		t.Fatalf("connect: %v", r)
	}
	if r := a.reply(msg{"channel": "/meta/subscribe", "subscription": "/chat/ws"}); r["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	b := wsDial(t, srv, true).start()
	lp := newClient(t, srv).start()

	if r := b.reply(msg{"channel": "/chat/ws", "data": msg{"n": 1}}); r["successful"] != true {
		t.Fatalf("publish over websocket: %v", r)
	}
	got, _ := a.await(5*time.Second, func(m msg) bool { return m["channel"] == "/chat/ws" })
	if wsData(got) != 1 || got["clientId"] != nil {
		t.Fatalf("delivery: %v", got)
	}
	if r := lp.publish("/chat/ws", msg{"n": 2}); r["successful"] != true {
		t.Fatalf("publish over long-polling: %v", r)
	}
	got, _ = a.await(5*time.Second, func(m msg) bool { return m["channel"] == "/chat/ws" })
	if wsData(got) != 2 {
		t.Fatalf("delivery: %v", got)
	}

	// A long-polling subscriber gets what a WebSocket client publishes.
	if r := lp.subscribe("/chat/lp"); r["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	if r := a.reply(msg{"channel": "/chat/lp", "data": msg{"n": 3}}); r["successful"] != true {
		t.Fatalf("publish: %v", r)
	}
	if d := lp.deliveries(1, 5*time.Second); len(d) != 1 || wsData(d[0]) != 3 {
		t.Fatalf("long-polling deliveries: %v", d)
	}
}

func TestWebSocketPushWithoutConnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{PollTimeout: 20 * time.Second}})
	a := wsDial(t, srv, true).start("/push/a")
	// A held connect: deliveries must not wait for it, nor end it.
	connectID := a.nextID()
	a.send(msg{"channel": "/meta/connect", "clientId": a.id, "connectionType": "websocket", "id": connectID})
	pub := newClient(t, srv).start()
	pub.publish("/push/a", msg{"n": 1})
	got, skipped := a.await(5*time.Second, func(m msg) bool { return m["channel"] == "/push/a" })
	if wsData(got) != 1 {
		t.Fatalf("delivery: %v", got)
	}
	if m := find(skipped, "/meta/connect"); m != nil {
		t.Fatalf("the held connect was answered to carry the delivery: %v", m)
	}

	// And with no connect outstanding at all: a second client whose only
	// connect was the first one, answered at once.
	b := wsDial(t, srv, true).start("/push/b")
	pub.publish("/push/b", msg{"n": 2})
	got, skipped = b.await(5*time.Second, func(m msg) bool { return m["channel"] == "/push/b" })
	if wsData(got) != 2 || len(skipped) != 0 {
		t.Fatalf("delivery %v, other messages %v", got, skipped)
	}
}

func TestWebSocketHeldConnectTimesOut(t *testing.T) {
	t.Parallel()
	const poll = 600 * time.Millisecond
	srv := startServer(t, server.Config{Hub: actors.Options{PollTimeout: poll}})
	a := wsDial(t, srv, true).start()
	start := time.Now()
	r := a.reply(msg{"channel": "/meta/connect", "connectionType": "websocket"})
	held := time.Since(start)
	if r["successful"] != true {
		t.Fatalf("connect: %v", r)
	}
	if held < poll*3/4 {
		t.Fatalf("connect held %v, poll timeout %v", held, poll)
	}
	// While one connect is held, requests in later frames are answered.
	connectID := a.nextID()
	a.send(msg{"channel": "/meta/connect", "clientId": a.id, "connectionType": "websocket", "id": connectID})
	if r := a.reply(msg{"channel": "/meta/subscribe", "subscription": "/x"}); r["successful"] != true {
		t.Fatalf("subscribe while a connect is held: %v", r)
	}
	r, _ = a.await(30*time.Second, func(m msg) bool { return m["id"] == connectID })
	if r["successful"] != true {
		t.Fatalf("second connect: %v", r)
	}
}

func TestWebSocketOrderOf500(t *testing.T) {
	t.Parallel()
	const n = 500
	srv := startServer(t, server.Config{})
	sub := wsDial(t, srv, true).start("/order")
	pub := wsDial(t, srv, true).start()
	// 500 frames, one publish each, written without waiting for replies.
	for i := range n {
		pub.send(msg{"channel": "/order", "clientId": pub.id, "data": msg{"n": i}, "id": fmt.Sprint("p", i)})
	}
	var got []int
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n {
		for _, m := range sub.next(time.Until(deadline)) {
			if m["channel"] == "/order" {
				got = append(got, wsData(m))
			}
		}
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d: order broken (%v...)", i, v, got[max(0, i-3):min(len(got), i+3)])
		}
	}
	acks := 0
	for acks < n {
		for _, m := range pub.next(10 * time.Second) {
			if m["channel"] == "/order" && m["successful"] == true {
				acks++
			}
		}
	}
}

func TestWebSocketSlowReaderIsBounded(t *testing.T) {
	t.Parallel()
	const maxQueue = 200
	srv := startServer(t, server.Config{Hub: actors.Options{MaxQueue: maxQueue, QueuePolicy: actors.QueueDropOldest}})
	reader := wsDial(t, srv, true)
	reader.start("/flood")
	// Hand the session to a socket that is never read: the client stopped
	// reading.
	slow := wsDial(t, srv, false)
	slow.id = reader.id
	slow.send(msg{"channel": "/meta/connect", "clientId": slow.id, "connectionType": "websocket", "id": "c1", "advice": msg{"timeout": 0}})

	payload := strings.Repeat("x", 4096)
	hub := srv.Hub()
	published := 0
	// Publish until the session queue has overflowed: the write queue and
	// the socket buffers are full, so the session keeps the rest, bounded.
	checkFor(t, 60*time.Second, time.Millisecond, func() error {
		for range 100 {
			if err := hub.Publish("/flood", msg{"n": published, "p": payload}); err != nil {
				return err
			}
			published++
		}
		if st := hub.Stats(); st.Dropped == 0 {
			return fmt.Errorf("no overflow after %d messages (queued %d)", published, st.Queued)
		}
		return nil
	})
	// The session queue stays at its limit whatever more is published:
	// publish until 2,000 more have been dropped (the socket's buffers may
	// still take some of them: loopback TCP buffers grow).
	dropped := hub.Stats().Dropped
	checkFor(t, 60*time.Second, time.Millisecond, func() error {
		for range 100 {
			if err := hub.Publish("/flood", msg{"n": published, "p": payload}); err != nil {
				return err
			}
			published++
		}
		st := hub.Stats()
		if st.Queued > maxQueue {
			t.Fatalf("session queue %d above --max-queue %d", st.Queued, maxQueue)
		}
		if st.Dropped < dropped+2000 {
			return fmt.Errorf("%d more dropped after %d messages", st.Dropped-dropped, published)
		}
		return nil
	})
	if q := hub.Stats().Queued; q > maxQueue {
		t.Fatalf("session queue %d above --max-queue %d", q, maxQueue)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("published %d messages of 4 KiB (%d MiB) to a client that does not read: %d queued in the session, %d dropped; heap in use %d MiB",
		published, published*4096>>20, hub.Stats().Queued, hub.Stats().Dropped, ms.HeapInuse>>20)
}

func TestWebSocketMalformedFrames(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{MaxBody: 64 << 10})
	c := wsDial(t, srv, true)
	for _, frame := range []string{`{not json`, `[1,2]`, `"x"`, `[]`, `[{"channel":"/meta/connect"}]`} {
		c.sendRaw(frame)
		f := c.next(5 * time.Second)
		if len(f) == 0 {
			t.Fatalf("frame %q answered with an empty frame", frame)
		}
		for _, r := range f {
			if r["successful"] != false || errorCode(r) != "400" && errorCode(r) != "401" {
				t.Fatalf("frame %q answered %v", frame, f)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	if f := c.next(5 * time.Second); len(f) != 1 || errorCode(f[0]) != "400" {
		t.Fatalf("binary frame answered %v", f)
	}
	// The connection is still usable.
	c.start("/after")

	// A frame over MaxBody closes the socket with 1009.
	big := wsDial(t, srv, true)
	// The server may close the socket while the frame is still being
	// written: the write error is expected.
	_ = big.conn.Write(ctx, websocket.MessageText, []byte(`[{"channel":"/x","data":"`+strings.Repeat("y", 70<<10)+`"}]`))
	select {
	case _, ok := <-big.frames:
		if ok {
			t.Fatal("a frame over MaxBody was answered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a frame over MaxBody did not close the socket")
	}
	<-big.done
}

func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{AllowedOrigins: []string{"https://app.example.com"}})
	dial := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		conn, resp, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			if resp == nil {
				return 0, err
			}
			return resp.StatusCode, err
		}
		_ = conn.CloseNow()
		return http.StatusSwitchingProtocols, nil
	}
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example.com", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"", http.StatusSwitchingProtocols},
		{srv.URL(), http.StatusSwitchingProtocols},
	} {
		if got, err := dial(tc.origin); got != tc.want {
			t.Errorf("Origin %q: status %d (%v), want %d", tc.origin, got, err, tc.want)
		}
	}
}

func TestWebSocketSwitchToLongPolling(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	ws := wsDial(t, srv, true).start("/switch")
	id := ws.id
	connectID := ws.nextID()
	ws.send(msg{"channel": "/meta/connect", "clientId": id, "connectionType": "websocket", "id": connectID})
	// Frames are handled in order: once this is answered, the connect is
	// held.
	if r := ws.reply(msg{"channel": "/meta/subscribe", "subscription": "/switch/more"}); r["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	ws.close() // the held connect is abandoned, the session stays

	// The client continues over long-polling with the same clientId; its
	// first request (not held) turns pushing off.
	lp := newClient(t, srv)
	lp.id = id
	if r := find(lp.connectRaw(), "/meta/connect"); r == nil || r["successful"] != true {
		t.Fatalf("long-polling connect after the socket closed: %v", r)
	}
	pub := newClient(t, srv).start()
	for i := range 3 {
		if r := pub.publish("/switch", msg{"n": i}); r["successful"] != true {
			t.Fatalf("publish: %v", r)
		}
	}
	got := lp.deliveries(3, 10*time.Second)
	var ns []int
	for _, m := range got {
		ns = append(ns, wsData(m))
	}
	if !slices.Equal(ns, []int{0, 1, 2}) {
		t.Fatalf("long-polling after the socket closed got %v (%v)", ns, got)
	}
	// And back to a WebSocket: pushing resumes.
	ws2 := wsDial(t, srv, true)
	ws2.id = id
	if r := ws2.reply(msg{"channel": "/meta/connect", "connectionType": "websocket", "advice": msg{"timeout": 0}}); r["successful"] != true {
		t.Fatalf("connect over a new socket: %v", r)
	}
	pub.publish("/switch", msg{"n": 3})
	m, _ := ws2.await(5*time.Second, func(m msg) bool { return m["channel"] == "/switch" })
	if wsData(m) != 3 {
		t.Fatalf("delivery after switching back: %v", m)
	}
}

func TestWebSocketTransportsConfig(t *testing.T) {
	t.Parallel()
	t.Run("websocket only", func(t *testing.T) {
		srv := startServer(t, server.Config{Transports: []string{"websocket"}})
		c := wsDial(t, srv, true)
		r := c.handshake()
		if types := fmt.Sprint(r["supportedConnectionTypes"]); types != "[websocket]" {
			t.Fatalf("offered %s", types)
		}
		status, replies := newClient(t, srv).post(msg{"channel": "/meta/handshake", "version": "1.0",
			"supportedConnectionTypes": []string{"long-polling"}})
		if status != http.StatusBadRequest || len(replies) != 1 || errorCode(replies[0]) != "400" {
			t.Fatalf("long-polling request: %d %v", status, replies)
		}
		// A client that only knows long-polling has nothing in common.
		r = c.reply(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
		if r["successful"] != false || errorCode(r) != "406" {
			t.Fatalf("handshake without websocket: %v", r)
		}
	})
	t.Run("long-polling only", func(t *testing.T) {
		srv := startServer(t, server.Config{Transports: []string{"long-polling"}})
		r := newClient(t, srv).handshake()
		if types := fmt.Sprint(r["supportedConnectionTypes"]); types != "[long-polling]" {
			t.Fatalf("offered %s", types)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, wsURL(srv), nil)
		if err == nil {
			_ = conn.CloseNow()
			t.Fatal("upgrade accepted with websocket disabled")
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("upgrade with websocket disabled: %v %v", resp, err)
		}
		resp, err = http.Get(srv.URL() + "/cometd?jsonp=cb&message=" +
			url.QueryEscape(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["callback-polling"]}]`))
		if err != nil {
			t.Fatal(err)
		}
		if status, replies := decodeResponse(t, resp); status != http.StatusBadRequest || len(replies) != 1 || errorCode(replies[0]) != "400" {
			t.Fatalf("callback-polling request: %d %v", status, replies)
		}
		if _, err := server.New(server.Config{Transports: []string{"comet"}}); err == nil {
			t.Fatal("unknown transport accepted")
		}
	})
}

func TestWebSocketServerShutdownClosesSockets(t *testing.T) {
	t.Parallel()
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-", Hub: actors.Options{PollTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	c := wsDial(t, srv, true).start()
	connectID := c.nextID()
	c.send(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "websocket", "id": connectID})
	// Frames are handled in order: once this is answered, the connect is
	// held.
	if r := c.reply(msg{"channel": "/meta/subscribe", "subscription": "/x"}); r["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// The held connect was answered before the socket closed with 1001.
	r, _ := c.await(5*time.Second, func(m msg) bool { return m["id"] == connectID })
	if r["successful"] != true {
		t.Fatalf("held connect at shutdown: %v", r)
	}
	<-c.done
	err = c.err
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Fatalf("socket closed with %v, want 1001", err)
	}
}
