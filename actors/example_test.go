package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// remote plays an HTTP client by calling the transports' entry point
// directly; a real program mounts transport.LongPolling instead.
type remote struct {
	hub *actors.Hub
	id  string
}

func (r *remote) send(m *protocol.Message) []map[string]any {
	if m.Channel != protocol.MetaHandshake {
		m.ClientID = r.id
	}
	var out []map[string]any
	for _, p := range r.hub.HandleRemote(context.Background(), actors.RemoteRequest{Messages: []*protocol.Message{m}}) {
		var v map[string]any
		_ = json.Unmarshal(p, &v)
		out = append(out, v)
	}
	return out
}

func handshake(h *actors.Hub, ext string) *remote {
	r := &remote{hub: h}
	reply := r.send(&protocol.Message{Channel: protocol.MetaHandshake, Version: "1.0",
		SupportedConnectionTypes: []string{"long-polling"}, Ext: json.RawMessage(ext)})
	r.id, _ = reply[0]["clientId"].(string)
	r.send(&protocol.Message{Channel: protocol.MetaConnect, ConnectionType: "long-polling"})
	return r
}

func subscription(names ...string) protocol.Subscription {
	raw, _ := json.Marshal(names)
	return protocol.Subscription{Names: names, Raw: raw}
}

func shutdown(h *actors.Hub) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
}

// The reply bot of the Perl module's synopsis: a local client that answers
// every message on /chat/demo but its own.
func Example() {
	hub, err := actors.Start(actor.NewActorSystem(), actors.Options{Alias: "bayeux_server"})
	if err != nil {
		panic(err)
	}
	defer shutdown(hub)

	bot, _ := hub.NewLocalClient("test_local_client")
	_ = bot.Subscribe("/chat/demo", func(m *actors.Message) {
		if m.ClientID == bot.ID() {
			return // don't auto-reply to my own messages
		}
		var in struct{ User string }
		_ = json.Unmarshal(m.Data, &in)
		_ = bot.Publish(m.Channel, map[string]string{"user": "Autobot", "chat": "I got your message, " + in.User})
	})

	ann := handshake(hub, "")
	ann.send(&protocol.Message{Channel: protocol.MetaSubscribe, Subscription: subscription("/chat/demo")})
	ann.send(&protocol.Message{Channel: "/chat/demo", Data: json.RawMessage(`{"user":"ann","chat":"hello"}`)})
	for seen := 0; seen < 2; {
		for _, m := range ann.send(&protocol.Message{Channel: protocol.MetaConnect, ConnectionType: "long-polling"}) {
			if m["channel"] == "/chat/demo" {
				fmt.Println(m["data"].(map[string]any)["chat"])
				seen++
			}
		}
	}
	// Output:
	// hello
	// I got your message, ann
}

// A /service/echo handler: its replies go to the caller only, in the
// response to the publish.
func ExampleServiceFunc() {
	hub, _ := actors.Start(actor.NewActorSystem(), actors.Options{
		Services: map[string]actors.ServiceFunc{
			"echo": func(c *actors.Client, m *protocol.Message) ([]actors.ServiceReply, error) {
				return []actors.ServiceReply{{Data: m.Data}}, nil
			},
		},
	})
	defer shutdown(hub)
	c := handshake(hub, "")
	for _, r := range c.send(&protocol.Message{Channel: "/service/echo", Data: json.RawMessage(`"ping"`), ID: json.RawMessage(`"7"`)}) {
		fmt.Println(r["channel"], r["id"], r["successful"], r["data"])
	}
	// Output:
	// /service/echo 7 true <nil>
	// /service/echo 7 <nil> ping
}

// An authorization hook (Perl: MessageACL) that checks a password at
// handshake, remembers it in the client's flags, and refuses subscriptions
// to /private/** to clients that are not admins.
func ExampleACLFunc() {
	acl := func(c *actors.Client, m *protocol.Message) error {
		switch m.Channel {
		case protocol.MetaHandshake:
			var ext struct{ Username, Password string }
			_ = json.Unmarshal(m.Ext, &ext)
			if ext.Password != "secret" {
				return errors.New("Invalid username or password")
			}
			c.Flags["admin"] = ext.Username == "admin"
		case protocol.MetaSubscribe:
			for _, s := range m.Subscription.Names {
				if strings.HasPrefix(s, "/private/") && c.Flags["admin"] != true {
					return protocol.ErrDenied(s, "Subscription denied")
				}
			}
		}
		return nil
	}
	hub, _ := actors.Start(actor.NewActorSystem(), actors.Options{MessageACL: acl})
	defer shutdown(hub)

	fmt.Println(handshake(hub, `{"username":"eve","password":"guess"}`).id == "")
	user := handshake(hub, `{"username":"bob","password":"secret"}`)
	r := user.send(&protocol.Message{Channel: protocol.MetaSubscribe, Subscription: subscription("/private/top/secret")})
	fmt.Println(r[0]["successful"], r[0]["error"])
	admin := handshake(hub, `{"username":"admin","password":"secret"}`)
	r = admin.send(&protocol.Message{Channel: protocol.MetaSubscribe, Subscription: subscription("/private/top/secret")})
	fmt.Println(r[0]["successful"])
	// Output:
	// true
	// false 403:/private/top/secret:Subscription denied
	// true
}

// printer is an actor that prints the messages delivered to it.
type printer struct{ done chan struct{} }

func (p *printer) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*actors.Message); ok {
		fmt.Printf("%s %s\n", m.Channel, m.Data)
		p.done <- struct{}{}
	}
}

// An actor receives deliveries by PID: the Perl module's "state" argument.
func ExampleLocalClient_SubscribePID() {
	system := actor.NewActorSystem()
	hub, _ := actors.Start(system, actors.Options{})
	defer shutdown(hub)

	done := make(chan struct{})
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &printer{done: done} }))
	listener, _ := hub.NewLocalClient("listener")
	_ = listener.SubscribePID("/weather/*", pid)

	speaker, _ := hub.NewLocalClient("speaker")
	_ = speaker.Publish("/weather/oslo", map[string]int{"celsius": -3})
	<-done
	// Output:
	// /weather/oslo {"celsius":-3}
}

// notifier is an actor that pushes a message to one client through the
// hub's actor API, as a POE session posts client_push.
type notifier struct {
	hub    *actor.PID
	client string
	result chan error
}

func (n *notifier) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		ctx.Request(n.hub, &actors.Push{ClientID: n.client, Channel: "/notice", Data: "your report is ready"})
	}
	if r, ok := ctx.Message().(*actors.Result); ok {
		n.result <- r.Err
	}
}

// Another actor sends a message to one client only (Perl: client_push).
func ExamplePush() {
	system := actor.NewActorSystem()
	hub, _ := actors.Start(system, actors.Options{})
	defer shutdown(hub)
	c := handshake(hub, "")

	result := make(chan error, 1)
	system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &notifier{hub: hub.PID(), client: c.id, result: result}
	}))
	fmt.Println("push accepted:", <-result == nil)
	for got := false; !got; {
		for _, m := range c.send(&protocol.Message{Channel: protocol.MetaConnect, ConnectionType: "long-polling"}) {
			if m["channel"] == "/notice" {
				fmt.Println(m["data"])
				got = true
			}
		}
	}
	// Output:
	// push accepted: true
	// your report is ready
}
