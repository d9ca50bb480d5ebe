package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

func startHub(t testing.TB, opts Options) *Hub {
	t.Helper()
	h, err := Start(actor.NewActorSystem(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return h
}

// call runs messages through the hub as a remote request and decodes the
// replies.
func call(t testing.TB, h *Hub, msgs ...*protocol.Message) []map[string]any {
	t.Helper()
	parts := h.HandleRemote(context.Background(), RemoteRequest{Messages: msgs, RemoteAddr: "127.0.0.1:1"})
	out := make([]map[string]any, len(parts))
	for i, p := range parts {
		if err := json.Unmarshal(p, &out[i]); err != nil {
			t.Fatalf("reply %d is not JSON: %v: %s", i, err, p)
		}
	}
	return out
}

func remoteClient(t testing.TB, h *Hub, subs ...string) string {
	t.Helper()
	r := call(t, h, &protocol.Message{Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}})
	id, _ := r[0]["clientId"].(string)
	if id == "" {
		t.Fatalf("handshake: %v", r)
	}
	call(t, h, connectMsg(id))
	for _, s := range subs {
		raw, _ := json.Marshal(s)
		r := call(t, h, &protocol.Message{Channel: protocol.MetaSubscribe, ClientID: id, Subscription: protocol.Subscription{Names: []string{s}, Raw: raw}})
		if r[0]["successful"] != true {
			t.Fatalf("subscribe %s: %v", s, r)
		}
	}
	return id
}

// deliveries connects until n messages have been delivered to a remote
// client (or 10 s pass) and returns them.
func deliveries(t testing.TB, h *Hub, id string, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		for _, r := range call(t, h, connectMsg(id)) {
			if r["channel"] != protocol.MetaConnect {
				got = append(got, r)
			}
		}
	}
	return got
}

func connectMsg(id string) *protocol.Message {
	return &protocol.Message{Channel: protocol.MetaConnect, ClientID: id, ConnectionType: protocol.LongPolling}
}

func publishMsg(id, channel string, data string) *protocol.Message {
	return &protocol.Message{Channel: channel, ClientID: id, Data: json.RawMessage(data)}
}

// held reports whether the client has a /meta/connect held.
func held(h *Hub, id string) bool {
	ref := h.lookupSession(id)
	return ref != nil && ref.idleSince.Load() == 0
}

func TestSessionPanicIsIsolated(t *testing.T) {
	h := startHub(t, Options{})
	victim := remoteClient(t, h, "/p")
	other := remoteClient(t, h, "/p")

	victimConnect := make(chan []map[string]any, 1)
	go func() { victimConnect <- call(t, h, connectMsg(victim)) }()
	otherConnect := make(chan []map[string]any, 1)
	go func() { otherConnect <- call(t, h, connectMsg(other)) }()
	testutil.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if !held(h, victim) || !held(h, other) {
			return fmt.Errorf("connects held: victim %v, other %v", held(h, victim), held(h, other))
		}
		return nil
	})

	// A delivery with no message makes the victim's session actor panic.
	h.root.Send(h.lookupSession(victim).pid, (*Message)(nil))

	select {
	case r := <-victimConnect:
		if len(r) != 1 || r[0]["successful"] != false || r[0]["error"] != "402:"+victim+":Unknown client" {
			t.Fatalf("victim's held connect: %v", r)
		}
		if adv, _ := r[0]["advice"].(map[string]any); adv["reconnect"] != "handshake" {
			t.Fatalf("victim not told to re-handshake: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("victim's held connect was not completed")
	}
	testutil.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if h.lookupSession(victim) != nil {
			return errors.New("the victim's session is still registered")
		}
		return nil
	})

	// The other session is untouched: its held connect gets the next publish.
	if r := call(t, h, publishMsg(other, "/p", `"still here"`)); r[0]["successful"] != true {
		t.Fatalf("publish after the panic: %v", r)
	}
	select {
	case r := <-otherConnect:
		if len(r) != 2 || r[0]["data"] != "still here" {
			t.Fatalf("other client after the panic: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("other client not served after a neighbour's panic")
	}
	if r := call(t, h, connectMsg(victim)); r[0]["error"] != "402:"+victim+":Unknown client" {
		t.Fatalf("victim still known: %v", r)
	}
	if st := h.Stats(); st.Clients != 1 || st.Channels != 1 {
		t.Fatalf("after the panic: %+v", st)
	}
}

func TestChannelActorsComeAndGo(t *testing.T) {
	h := startHub(t, Options{})
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = remoteClient(t, h, fmt.Sprintf("/room/%d", i%5), "/room/**")
	}
	if st := h.Stats(); st.Channels != 6 || st.Clients != 20 {
		t.Fatalf("after subscribing: %+v", st)
	}
	for _, id := range ids {
		call(t, h, &protocol.Message{Channel: protocol.MetaDisconnect, ClientID: id})
	}
	testutil.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if st := h.Stats(); st.Channels != 0 || st.Clients != 0 {
			return fmt.Errorf("%d channels, %d clients left", st.Channels, st.Clients)
		}
		return nil
	})
	h.chanMu.RLock()
	n := len(h.channels)
	h.chanMu.RUnlock()
	if n != 0 {
		t.Fatalf("channel registry keeps %d entries", n)
	}
}

func TestResubscribeAfterChannelRemoval(t *testing.T) {
	h := startHub(t, Options{})
	// Subscribe and unsubscribe in a tight loop so that channel removal and a
	// new subscribe race; every round must still deliver.
	id := remoteClient(t, h)
	sub := func(ch string, on bool) {
		name := protocol.MetaSubscribe
		if !on {
			name = protocol.MetaUnsubscribe
		}
		raw, _ := json.Marshal(ch)
		r := call(t, h, &protocol.Message{Channel: name, ClientID: id, Subscription: protocol.Subscription{Names: []string{ch}, Raw: raw}})
		if r[0]["successful"] != true {
			t.Fatalf("%s %s: %v", name, ch, r)
		}
	}
	for i := range 50 {
		sub("/flip", true)
		call(t, h, publishMsg(id, "/flip", fmt.Sprint(i)))
		r := call(t, h, connectMsg(id))
		if len(r) != 2 || r[0]["data"] != float64(i) {
			t.Fatalf("round %d: %v", i, r)
		}
		sub("/flip", false)
	}
}

func TestLocalAndRemoteClientsSeeEachOther(t *testing.T) {
	h := startHub(t, Options{})
	remote := remoteClient(t, h, "/chat/demo")

	bot, err := h.NewLocalClient("test_local_client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewLocalClient("test_local_client"); err == nil {
		t.Fatal("a second local client took the same id")
	}
	var mu sync.Mutex
	var seen []*Message
	// The Perl synopsis' reply bot: answer every message but its own.
	err = bot.Subscribe("/chat/demo", func(m *Message) {
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
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
	call(t, h, publishMsg(remote, "/chat/demo", `{"user":"ann","chat":"hi"}`))
	got := deliveries(t, h, remote, 2)
	if len(got) != 2 || got[1]["data"].(map[string]any)["chat"] != "I got your message, ann" {
		t.Fatalf("remote client: %v", got)
	}
	testutil.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 {
			return fmt.Errorf("the bot saw %d messages, want 2 (its own reply too)", len(seen))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if seen[0].ClientID != remote || seen[1].ClientID != bot.ID() {
		t.Fatalf("bot saw messages from %q and %q", seen[0].ClientID, seen[1].ClientID)
	}
}

// collector is an actor that gathers the *Message values it receives.
type collector struct{ got chan *Message }

func (c *collector) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*Message); ok {
		c.got <- m
	}
}

func TestLocalActorCallbackAndRemoteSubscribersGetOneCopy(t *testing.T) {
	h := startHub(t, Options{})
	remote := remoteClient(t, h, "/fan/**")
	got := make(chan *Message, 10)
	pid := h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &collector{got: got} }))
	byPID, _ := h.NewLocalClient("")
	if err := byPID.SubscribePID("/fan/out", pid); err != nil {
		t.Fatal(err)
	}
	if err := byPID.SubscribePID("/fan/*", pid); err != nil {
		t.Fatal(err)
	}
	byFn, _ := h.NewLocalClient("")
	fnGot := make(chan *Message, 10)
	if err := byFn.Subscribe("/fan/out", func(m *Message) { fnGot <- m }); err != nil {
		t.Fatal(err)
	}
	pub, _ := h.NewLocalClient("")
	if err := pub.Publish("/fan/out", "once", WithID("m1"), WithExt(map[string]int{"n": 1})); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("/fan/out", "marker"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan *Message{got, fnGot} {
		for _, want := range []string{`"once"`, `"marker"`} {
			select {
			case m := <-ch:
				if string(m.Data) != want || m.ClientID != pub.ID() {
					t.Fatalf("local subscriber got %s from %s, want %s", m.Data, m.ClientID, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("local subscriber got nothing")
			}
		}
	}
	r := deliveries(t, h, remote, 2)
	if len(r) != 2 || r[0]["data"] != "once" || r[0]["id"] != "m1" || r[1]["data"] != "marker" {
		t.Fatalf("remote subscriber: %v", r)
	}
	select {
	case m := <-got:
		t.Fatalf("actor subscribed through two patterns got a copy: %s", m.Data)
	case <-time.After(50 * time.Millisecond):
	}
	if err := pub.Publish("/meta/x", 1); err == nil {
		t.Fatal("local publish to /meta accepted")
	}
	if err := pub.Publish("/fan/*", 1); err == nil {
		t.Fatal("local publish to a wildcard accepted")
	}
}

func TestShutdownAnswersHeldConnects(t *testing.T) {
	h, err := Start(actor.NewActorSystem(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := remoteClient(t, h)
	done := make(chan []map[string]any, 1)
	go func() { done <- call(t, h, connectMsg(id)) }()
	testutil.CheckFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		if !held(h, id) {
			return errors.New("connect not held")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if len(r) != 1 || r[0]["channel"] != protocol.MetaConnect {
			t.Fatalf("held connect at shutdown: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held connect not answered at shutdown")
	}
}
