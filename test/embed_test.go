package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// syncBuffer is a log sink that tests can read while the hub writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The Perl distribution's ACL test: subscribing to /private/top/secret is
// refused, other subscriptions are not.
func TestPerlScenarioACL(t *testing.T) {
	srv := startServer(t, server.Config{Hub: actors.Options{MessageACL: func(c *actors.Client, m *protocol.Message) error {
		if m.Channel == protocol.MetaSubscribe {
			for _, s := range m.Subscription.Names {
				if s == "/private/top/secret" {
					return errors.New("Subscription denied")
				}
			}
		}
		return nil
	}}})
	c := newClient(t, srv).start()
	r := c.subscribe("/private/top/secret")
	if r["successful"] != false || r["subscription"] != "/private/top/secret" || r["error"] != "403:/meta/subscribe:Subscription denied" {
		t.Fatalf("refused subscription: %v", r)
	}
	if r := c.subscribe("/public"); r["successful"] != true {
		t.Fatalf("allowed subscription: %v", r)
	}
}

// The Perl distribution's services test: echo and a calculator, whose
// replies reach the caller only.
func TestPerlScenarioServices(t *testing.T) {
	srv := startServer(t, server.Config{Hub: actors.Options{Services: map[string]actors.ServiceFunc{
		"echo": func(c *actors.Client, m *protocol.Message) ([]actors.ServiceReply, error) {
			return []actors.ServiceReply{{Data: m.Data}}, nil
		},
		"calculator": func(c *actors.Client, m *protocol.Message) ([]actors.ServiceReply, error) {
			var op struct {
				A, B float64
				Op   string
			}
			if err := json.Unmarshal(m.Data, &op); err != nil {
				return nil, fmt.Errorf("bad operands: %w", err)
			}
			switch op.Op {
			case "+":
				return []actors.ServiceReply{{Data: map[string]float64{"result": op.A + op.B}}}, nil
			case "*":
				return []actors.ServiceReply{{Data: map[string]float64{"result": op.A * op.B}}}, nil
			}
			return nil, protocol.ErrDenied(m.Channel, "Unknown operator")
		},
		"_handler": func(c *actors.Client, m *protocol.Message) ([]actors.ServiceReply, error) {
			return []actors.ServiceReply{{Data: "fallback for " + m.Channel}}, nil
		},
	}}})
	caller := newClient(t, srv).start()
	caller.subscribe("/service/echo", "/service/calculator")
	bystander := newClient(t, srv).start()
	bystander.subscribe("/service/**", "/done")

	_, r := caller.post(msg{"channel": "/service/echo", "clientId": caller.id, "data": msg{"x": "y"}, "id": "e1"})
	if len(r) != 2 || r[0]["successful"] != true || fmt.Sprint(r[1]["data"]) != "map[x:y]" || r[1]["id"] != "e1" {
		t.Fatalf("echo: %v", r)
	}
	_, r = caller.post(msg{"channel": "/service/calculator", "clientId": caller.id, "data": msg{"a": 6, "b": 7, "op": "*"}, "id": "c1"})
	if len(r) != 2 || r[1]["data"].(msg)["result"] != 42.0 {
		t.Fatalf("calculator: %v", r)
	}
	_, r = caller.post(msg{"channel": "/service/calculator", "clientId": caller.id, "data": msg{"a": 1, "b": 1, "op": "^"}})
	if len(r) != 1 || r[0]["successful"] != false || r[0]["error"] != "403:/service/calculator:Unknown operator" {
		t.Fatalf("calculator error: %v", r)
	}
	_, r = caller.post(msg{"channel": "/service/other", "clientId": caller.id, "data": 1})
	if len(r) != 2 || r[1]["data"] != "fallback for /service/other" {
		t.Fatalf("_handler fallback: %v", r)
	}
	caller.publish("/done", 1)
	if got := bystander.deliveries(1, 5*time.Second); len(got) != 1 || got[0]["channel"] != "/done" {
		t.Fatalf("service replies reached another client: %v", got)
	}
}

// The Perl distribution's local client test: a local client and an HTTP
// client talk to each other.
func TestPerlScenarioLocalClient(t *testing.T) {
	srv := startServer(t, server.Config{})
	local, err := srv.Hub().NewLocalClient("test_local_client")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *actors.Message, 10)
	if err := local.Subscribe("/chat/demo", func(m *actors.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	web := newClient(t, srv).start()
	web.subscribe("/chat/demo")
	web.publish("/chat/demo", msg{"user": "web", "chat": "hi local"})
	select {
	case m := <-got:
		if m.ClientID != web.id || !strings.Contains(string(m.Data), "hi local") {
			t.Fatalf("local client got %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("local client got nothing")
	}
	if err := local.Publish("/chat/demo", msg{"user": "local", "chat": "hi web"}, actors.WithID("L1")); err != nil {
		t.Fatal(err)
	}
	d := web.deliveries(2, 5*time.Second)
	if len(d) != 2 || d[1]["data"].(msg)["chat"] != "hi web" || d[1]["id"] != "L1" || d[1]["clientId"] != nil {
		t.Fatalf("HTTP client got %v", d)
	}
}

// sink is an actor that forwards the *actors.Message values it receives.
type sinkActor struct{ out chan *actors.Message }

func (s *sinkActor) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*actors.Message); ok {
		s.out <- m
	}
}

func TestLocalActorAndHTTPSubscribersEachGetOneCopy(t *testing.T) {
	srv := startServer(t, server.Config{})
	hub := srv.Hub()
	byFn := make(chan *actors.Message, 10)
	fnClient, _ := hub.NewLocalClient("")
	_ = fnClient.Subscribe("/room/1", func(m *actors.Message) { byFn <- m })
	_ = fnClient.Subscribe("/room/*", func(m *actors.Message) { byFn <- m })

	byPID := make(chan *actors.Message, 10)
	pid := hub.System().Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &sinkActor{out: byPID} }))
	// Subscribed through the hub's actor API, like a POE session posting to the alias.
	res, err := hub.System().Root.RequestFuture(hub.PID(), &actors.Subscribe{ClientID: "actor-client", Channel: "/room/**", Receiver: pid}, 5*time.Second).Result()
	if err != nil || res.(*actors.Result).Err != nil {
		t.Fatalf("actor subscribe: %v %v", res, err)
	}
	web := newClient(t, srv).start()
	web.subscribe("/room/1", "/room/**")
	web.publish("/room/1", "once")

	for name, ch := range map[string]chan *actors.Message{"callback": byFn, "actor": byPID} {
		select {
		case m := <-ch:
			if string(m.Data) != `"once"` {
				t.Fatalf("%s subscriber got %s", name, m.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s subscriber got nothing", name)
		}
	}
	web.publish("/room/1", "marker")
	if d := web.deliveries(2, 5*time.Second); len(d) != 2 || d[0]["data"] != "once" || d[1]["data"] != "marker" {
		t.Fatalf("HTTP subscriber: %v", d)
	}
	for name, ch := range map[string]chan *actors.Message{"callback": byFn, "actor": byPID} {
		if m := <-ch; string(m.Data) != `"marker"` {
			t.Fatalf("%s subscriber got a second copy: %s", name, m.Data)
		}
	}
}

func TestActorAPI(t *testing.T) {
	srv := startServer(t, server.Config{})
	hub := srv.Hub()
	root := hub.System().Root
	ask := func(m any) *actors.Result {
		t.Helper()
		r, err := root.RequestFuture(hub.PID(), m, 5*time.Second).Result()
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		return r.(*actors.Result)
	}
	web := newClient(t, srv).start()
	web.subscribe("/api")
	if r := ask(&actors.Publish{Channel: "/api", Data: "from an actor", ClientID: "some-actor", ID: "a1", Ext: msg{"k": 1}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := ask(&actors.Publish{Channel: "/meta/nope", Data: 1}); r.Err == nil {
		t.Fatal("publish to /meta through the actor API accepted")
	}
	// Push to one client: by the hub and straight to the session's PID.
	if r := ask(&actors.Push{ClientID: web.id, Channel: "/private/notice", Data: "just you"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	pid, ok := hub.SessionPID(web.id)
	if !ok {
		t.Fatal("no session PID")
	}
	root.Send(pid, &actors.Push{ClientID: web.id, Channel: "/private/notice", Data: "direct"})
	d := web.deliveries(3, 5*time.Second)
	if len(d) != 3 || d[0]["data"] != "from an actor" || d[0]["id"] != "a1" || d[1]["data"] != "just you" || d[2]["data"] != "direct" {
		t.Fatalf("deliveries: %v", d)
	}
	if r := ask(&actors.Push{ClientID: "nobody", Channel: "/x", Data: 1}); !errors.Is(r.Err, actors.ErrUnknownClient) {
		t.Fatalf("push to an unknown client: %v", r.Err)
	}
	// A remote client subscribed server-side by an actor.
	if r := ask(&actors.Subscribe{ClientID: web.id, Channel: "/server/side"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := ask(&actors.Publish{Channel: "/server/side", Data: "pushed by subscription"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if d := web.deliveries(1, 5*time.Second); len(d) != 1 || d[0]["data"] != "pushed by subscription" {
		t.Fatalf("server-side subscription: %v", d)
	}
	if r := ask(&actors.Unsubscribe{ClientID: web.id, Channel: "/server/side"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := ask(&actors.Unsubscribe{ClientID: web.id, Channel: "/server/side"}); r.Err == nil {
		t.Fatal("second unsubscribe succeeded")
	}
	if r := ask(&actors.Disconnect{ClientID: web.id}); r.Err != nil {
		t.Fatal(r.Err)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, ok := hub.SessionPID(web.id); ok {
			return errors.New("session still there")
		}
		return nil
	})
}

func TestCallbackEvents(t *testing.T) {
	var mu sync.Mutex
	var events []actors.Event
	srv := startServer(t, server.Config{Hub: actors.Options{Callback: func(e actors.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}}})
	// Other actors watch the hub on the event stream.
	streamed := make(chan actors.Event, 100)
	sub := srv.Hub().System().EventStream.Subscribe(func(ev any) {
		if e, ok := ev.(actors.Event); ok {
			select {
			case streamed <- e:
			default:
			}
		}
	})
	defer srv.Hub().System().EventStream.Unsubscribe(sub)

	c := newClient(t, srv).start()
	c.subscribe("/ev")
	_, _ = c.post(msg{"channel": "/ev", "clientId": c.id, "data": msg{"n": 1}, "id": "e9", "ext": msg{"x": true}})
	_ = srv.Hub().Push(c.id, "/ev/push", "p")
	c.unsubscribe("/ev")
	_, _ = c.post(msg{"channel": "/meta/disconnect", "clientId": c.id})

	want := []actors.EventType{actors.EventClientConnect, actors.EventSubscribe, actors.EventPublish, actors.EventClientPush, actors.EventUnsubscribe, actors.EventClientDisconnect}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(events) < len(want) {
			return fmt.Errorf("%d events so far", len(events))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, e := range events {
		if e.Type != want[i] || e.ClientID != c.id {
			t.Fatalf("event %d = %+v, want %s for %s", i, e, want[i], c.id)
		}
		switch e.Type {
		case actors.EventClientConnect:
			if e.IP != "127.0.0.1" || e.Local {
				t.Errorf("client_connect keys: %+v", e)
			}
		case actors.EventSubscribe, actors.EventUnsubscribe:
			if e.Channel != "/ev" {
				t.Errorf("%s keys: %+v", e.Type, e)
			}
		case actors.EventPublish:
			if e.Channel != "/ev" || string(e.Data) != `{"n":1}` || string(e.ID) != `"e9"` || string(e.Ext) != `{"x":true}` {
				t.Errorf("publish keys: %+v", e)
			}
		case actors.EventClientPush:
			if e.Channel != "/ev/push" {
				t.Errorf("client_push keys: %+v", e)
			}
		}
	}
	if len(streamed) < len(want) {
		t.Errorf("event stream saw %d events, want at least %d", len(streamed), len(want))
	}
}

// Panics in user code (service handler, authorization hook, callback)
// become an error for that message and a log line; the hub keeps running.
func TestUserCodePanics(t *testing.T) {
	logs := &syncBuffer{}
	logger := zerolog.New(logs)
	srv := startServer(t, server.Config{Logger: &logger, Hub: actors.Options{
		Services: map[string]actors.ServiceFunc{
			"boom": func(*actors.Client, *protocol.Message) ([]actors.ServiceReply, error) { panic("service exploded") },
		},
		MessageACL: func(c *actors.Client, m *protocol.Message) error {
			if m.Channel == "/acl/boom" {
				panic("acl exploded")
			}
			return nil
		},
		Callback: func(e actors.Event) {
			if e.Channel == "/cb/boom" {
				panic("callback exploded")
			}
		},
	}})
	c := newClient(t, srv).start()
	c.subscribe("/cb/boom")
	if r := c.publish("/service/boom", 1); r["successful"] != false || errorCode(r) != "500" {
		t.Errorf("panicking service: %v", r)
	}
	if r := c.publish("/acl/boom", 1); r["successful"] != false || errorCode(r) != "500" {
		t.Errorf("panicking ACL: %v", r)
	}
	if r := c.publish("/cb/boom", "still delivered"); r["successful"] != true {
		t.Errorf("panicking callback: %v", r)
	}
	if d := c.deliveries(1, 5*time.Second); len(d) != 1 || d[0]["data"] != "still delivered" {
		t.Fatalf("after the panics: %v", d)
	}
	// The callback runs on the hub's event goroutine, just after the event.
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, want := range []string{"service handler panicked", "authorization hook panicked", "event callback panicked"} {
			if !strings.Contains(logs.String(), want) {
				return fmt.Errorf("no log line %q", want)
			}
		}
		return nil
	})
}
