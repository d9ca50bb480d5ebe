package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"
	"github.com/gorilla/mux"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

// TestEmbedAttach runs the wiring of examples/embed/main.go: the program's
// own actor system and router, WebSocket and long-polling through
// transport.Attach (the hub's ConnectionTypes left unset), a local reply
// bot and a publish sent to the hub actor by its alias. A WebSocket client
// and a long-polling client exchange messages; then the program stops in
// the README's order and the WebSocket client gets its held connect's
// reply before the close with 1001.
func TestEmbedAttach(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	system := embedAttachSystem()
	hub, err := actors.Start(system, actors.Options{Alias: "bayeux"})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := hub.NewLocalClient("reply-bot")
	if err != nil {
		t.Fatal(err)
	}
	err = bot.Subscribe("/chat/demo", func(m *actors.Message) {
		if m.ClientID == bot.ID() {
			return
		}
		var in struct{ User string }
		_ = json.Unmarshal(m.Data, &in)
		_ = bot.Publish(m.Channel, map[string]string{"user": "Autobot", "chat": "I got your message, " + in.User})
	})
	if err != nil {
		t.Fatal(err)
	}
	router := mux.NewRouter()
	endpoint, err := transport.Attach(router, "/cometd", hub, transport.Config{
		Types: []string{protocol.WebSocket, protocol.LongPolling},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: router}
	served := make(chan error, 1)
	go func() { served <- transport.Serve(srv, ln) }()
	base := "http://" + ln.Addr().String() + "/cometd"

	stopped := false
	stop := func() error {
		stopped = true
		bg := context.Background() // no deadline: go test -timeout catches a hang
		err := errors.Join(hub.Drain(bg), endpoint.Close(bg), srv.Shutdown(bg))
		if e := <-served; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
		err = errors.Join(err, hub.Shutdown(bg))
		system.Shutdown()
		return err
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})

	// The WebSocket client: handshake, connect, subscribe; a reader
	// goroutine collects every message until the socket closes.
	conn, _, err := websocket.Dial(ctx, "ws"+base[len("http"):], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ws := &embedAttachWS{conn: conn, got: make(chan map[string]any, 100), closed: make(chan error, 1)}
	go ws.read()
	ws.send(t, msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket"}, "id": "h"})
	r := ws.await(t, embedAttachReply("h"))
	if r["successful"] != true || fmt.Sprint(r["supportedConnectionTypes"]) != "[websocket long-polling]" {
		t.Fatalf("websocket handshake: %v", r)
	}
	ws.id, _ = r["clientId"].(string)
	ws.send(t, msg{"channel": "/meta/connect", "clientId": ws.id, "connectionType": "websocket", "advice": msg{"timeout": 0}, "id": "c0"})
	if r := ws.await(t, embedAttachReply("c0")); r["successful"] != true {
		t.Fatalf("websocket connect: %v", r)
	}
	ws.send(t, msg{"channel": "/meta/subscribe", "clientId": ws.id, "subscription": "/chat/demo", "id": "s"})
	if r := ws.await(t, embedAttachReply("s")); r["successful"] != true {
		t.Fatalf("websocket subscribe: %v", r)
	}
	// A held connect, as a client keeps one: answered when the hub drains.
	ws.send(t, msg{"channel": "/meta/connect", "clientId": ws.id, "connectionType": "websocket", "id": "c1"})

	// The long-polling client, on the same path.
	lp := &embedAttachLP{url: base, http: &http.Client{Transport: &http.Transport{}}}
	defer lp.http.CloseIdleConnections()
	r = lp.call(t, msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if r["successful"] != true || fmt.Sprint(r["supportedConnectionTypes"]) != "[websocket long-polling]" {
		t.Fatalf("long-polling handshake: %v", r)
	}
	lp.id, _ = r["clientId"].(string)
	if r := lp.call(t, msg{"channel": "/meta/connect", "clientId": lp.id, "connectionType": "long-polling", "advice": msg{"timeout": 0}}); r["successful"] != true {
		t.Fatalf("long-polling connect: %v", r)
	}
	if r := lp.call(t, msg{"channel": "/meta/subscribe", "clientId": lp.id, "subscription": "/chat/demo"}); r["successful"] != true {
		t.Fatalf("long-polling subscribe: %v", r)
	}

	chat := func(user, text string) func(msg) bool {
		return func(m msg) bool {
			d, _ := m["data"].(msg)
			return m["channel"] == "/chat/demo" && d["user"] == user && d["chat"] == text
		}
	}
	// WebSocket to long-polling, with the bot's answer to both.
	ws.send(t, msg{"channel": "/chat/demo", "clientId": ws.id, "data": msg{"user": "ws", "chat": "hello from ws"}, "id": "p1"})
	if r := ws.await(t, embedAttachReply("p1")); r["successful"] != true {
		t.Fatalf("websocket publish: %v", r)
	}
	lp.await(t, chat("ws", "hello from ws"))
	lp.await(t, chat("Autobot", "I got your message, ws"))
	ws.await(t, chat("Autobot", "I got your message, ws"))

	// Long-polling to WebSocket.
	if r := lp.call(t, msg{"channel": "/chat/demo", "clientId": lp.id, "data": msg{"user": "lp", "chat": "hello from lp"}}); r["successful"] != true {
		t.Fatalf("long-polling publish: %v", r)
	}
	ws.await(t, chat("lp", "hello from lp"))
	ws.await(t, chat("Autobot", "I got your message, lp"))
	lp.await(t, chat("Autobot", "I got your message, lp"))

	// Another actor reaches the hub by its alias.
	system.Root.Send(system.NewLocalPID("bayeux"), &actors.Publish{Channel: "/chat/demo", Data: msg{"user": "system", "chat": "by alias"}})
	ws.await(t, chat("system", "by alias"))
	lp.await(t, chat("system", "by alias"))

	// Stop as the example does. The held connect is answered first, then
	// the socket closes with 1001.
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if r := ws.await(t, embedAttachReply("c1")); r["successful"] != true {
		t.Fatalf("held connect at shutdown: %v", r)
	}
	if err := <-ws.closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("websocket end: %v, want status 1001", err)
	}
}

// embedAttachReply matches the reply to the message with id (not a
// delivery, which may carry the publisher's id too).
func embedAttachReply(id string) func(msg) bool {
	return func(m msg) bool { return m["id"] == id && m["successful"] != nil }
}

// embedAttachWS is a Bayeux client over a WebSocket whose reader goroutine
// collects every message it receives.
type embedAttachWS struct {
	conn   *websocket.Conn
	id     string
	got    chan map[string]any
	closed chan error // the read error that ended the reader
	seen   []map[string]any
}

func (c *embedAttachWS) read() {
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			close(c.got)
			c.closed <- err
			return
		}
		var msgs []map[string]any
		if json.Unmarshal(data, &msgs) != nil {
			msgs = []map[string]any{{"unreadable": string(data)}}
		}
		for _, m := range msgs {
			c.got <- m
		}
	}
}

func (c *embedAttachWS) send(t *testing.T, m msg) {
	t.Helper()
	frame, _ := json.Marshal([]msg{m})
	if err := c.conn.Write(t.Context(), websocket.MessageText, frame); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// await returns the first message received, now or earlier, for which
// match holds, and removes it.
func (c *embedAttachWS) await(t *testing.T, match func(msg) bool) msg {
	t.Helper()
	for {
		if i := slices.IndexFunc(c.seen, match); i >= 0 {
			m := c.seen[i]
			c.seen = slices.Delete(c.seen, i, i+1)
			return m
		}
		m, ok := <-c.got
		if !ok {
			t.Fatalf("websocket closed before the awaited message; got %v", c.seen)
		}
		c.seen = append(c.seen, m)
	}
}

// embedAttachLP is a long-polling Bayeux client that keeps the deliveries
// its requests bring.
type embedAttachLP struct {
	url  string
	http *http.Client
	id   string

	mu   sync.Mutex
	seen []map[string]any
}

// call posts one message and returns its reply; deliveries in the
// response are kept for await.
func (c *embedAttachLP) call(t *testing.T, m msg) msg {
	t.Helper()
	body, _ := json.Marshal([]msg{m})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var replies []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&replies); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v", m["channel"], resp.StatusCode, err)
	}
	var reply msg
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range replies {
		if reply == nil && r["channel"] == m["channel"] && r["successful"] != nil {
			reply = r
			continue
		}
		c.seen = append(c.seen, r)
	}
	if reply == nil {
		t.Fatalf("%s: no reply in %v", m["channel"], replies)
	}
	return reply
}

// await long-polls until a delivery for which match holds has come, and
// removes it.
func (c *embedAttachLP) await(t *testing.T, match func(msg) bool) msg {
	t.Helper()
	for {
		c.mu.Lock()
		i := slices.IndexFunc(c.seen, match)
		var m msg
		if i >= 0 {
			m = c.seen[i]
			c.seen = slices.Delete(c.seen, i, i+1)
		}
		c.mu.Unlock()
		if m != nil {
			return m
		}
		if r := c.call(t, msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling"}); r["successful"] != true {
			t.Fatalf("long-polling connect: %v", r)
		}
	}
}

// embedAttachSystem returns an actor system whose runtime logs are discarded.
func embedAttachSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(
		func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })))
}
