package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// presenceTokens is an Authenticator whose tokens are user ids.
type presenceTokens struct{}

func (presenceTokens) Authenticate(_ context.Context, token string) (*Identity, error) {
	if strings.HasPrefix(token, "bad") {
		return nil, errors.New("bad token")
	}
	return &Identity{UserID: token, Info: json.RawMessage(fmt.Sprintf(`{"name":%q}`, strings.ToUpper(token)))}, nil
}

// presenceRules: /chat/** and /staff/** keep presence; /staff/** is for
// users only; /plain/** keeps none.
func presenceRules(t testing.TB) *acl.Rules {
	t.Helper()
	rules, err := acl.New([]acl.Rule{
		acl.Default()[0],
		{Name: "chat", Pattern: "/chat/**", Subscribe: acl.Anyone, Publish: acl.Anyone, Presence: true},
		{Name: "staff", Pattern: "/staff/**", Subscribe: acl.Authenticated, Publish: acl.Authenticated, Presence: true},
		{Name: "plain", Pattern: "/plain/**", Subscribe: acl.Anyone, Publish: acl.Anyone},
		{Name: "services", Pattern: "/service/**", Subscribe: acl.Nobody, Publish: acl.Anyone},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func presenceHub(t testing.TB, mod func(*Options)) *Hub {
	t.Helper()
	opts := Options{Rules: presenceRules(t), Authenticator: presenceTokens{}, PollTimeout: 300 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	return startHub(t, opts)
}

// presenceClient handshakes with token as its user ("": anonymous),
// connects and subscribes to subs.
func presenceClient(t testing.TB, h *Hub, token string, subs ...string) string {
	t.Helper()
	hs := &protocol.Message{Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}}
	if token != "" {
		hs.Ext = json.RawMessage(fmt.Sprintf(`{"auth":{"token":%q}}`, token))
	}
	r := call(t, h, hs)
	id, _ := r[0]["clientId"].(string)
	if id == "" {
		t.Fatalf("handshake as %q: %v", token, r)
	}
	call(t, h, connectMsg(id))
	for _, s := range subs {
		if r := subscribeAs(t, h, id, s); r["successful"] != true {
			t.Fatalf("subscribe %s: %v", s, r)
		}
	}
	return id
}

func subscribeAs(t testing.TB, h *Hub, id, channel string) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(channel)
	return call(t, h, &protocol.Message{Channel: protocol.MetaSubscribe, ClientID: id,
		Subscription: protocol.Subscription{Names: []string{channel}, Raw: raw}})[0]
}

func unsubscribeAs(t testing.TB, h *Hub, id, channel string) {
	t.Helper()
	raw, _ := json.Marshal(channel)
	r := call(t, h, &protocol.Message{Channel: protocol.MetaUnsubscribe, ClientID: id,
		Subscription: protocol.Subscription{Names: []string{channel}, Raw: raw}})
	if r[0]["successful"] != true {
		t.Fatalf("unsubscribe %s: %v", channel, r)
	}
}

func disconnectAs(t testing.TB, h *Hub, id string) {
	t.Helper()
	call(t, h, &protocol.Message{Channel: protocol.MetaDisconnect, ClientID: id})
}

// presenceEvents connects until n deliveries have come and returns their
// data as "action user-or-anonymous" strings.
func presenceEvents(t testing.TB, h *Hub, id string, n int) []string {
	t.Helper()
	var out []string
	for _, d := range deliveries(t, h, id, n) {
		data, _ := d["data"].(map[string]any)
		who, _ := data["user"].(string)
		if who == "" {
			who, _ = data["anonymous"].(string)
			who = "anon:" + who
		}
		if _, leak := data["clientId"]; leak {
			t.Fatalf("a presence event carries a client id: %v", d)
		}
		out = append(out, fmt.Sprintf("%s %s %s", d["channel"], data["action"], who))
	}
	return out
}

func askPresence(t testing.TB, h *Hub, id, channel string) (map[string]any, []map[string]any) {
	t.Helper()
	r := call(t, h, &protocol.Message{Channel: "/service/presence", ClientID: id, ID: json.RawMessage(`"q"`),
		Data: json.RawMessage(fmt.Sprintf(`{"channel":%q}`, channel))})
	if len(r) == 1 {
		return r[0], nil
	}
	if len(r) != 2 {
		t.Fatalf("presence service: %v", r)
	}
	data, _ := r[1]["data"].(map[string]any)
	list, _ := data["members"].([]any)
	var members []map[string]any
	for _, m := range list {
		members = append(members, m.(map[string]any))
	}
	return r[0], members
}

// presenceWait polls fn until it returns nil, failing with its last error
// after a generous deadline (not a speed check).
func presenceWait(t testing.TB, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, fn)
}

func memberNames(list []Member) string {
	var out []string
	for _, m := range list {
		who := m.UserID
		if who == "" {
			who = "anon"
		}
		out = append(out, fmt.Sprintf("%s:%d", who, m.Sessions))
	}
	return strings.Join(out, ",")
}

// TestPresenceJoinLeave: one join when a user's first session
// subscribes, one leave when its last goes; an anonymous session is a
// member of its own, under an opaque id; patterns and channels without
// presence are not tracked; the query and the service see the same.
func TestPresenceJoinLeave(t *testing.T) {
	t.Parallel()
	h := presenceHub(t, nil)
	watch := presenceClient(t, h, "", "/bayeuxhub/presence/chat/x")
	a1 := presenceClient(t, h, "alice", "/chat/x")
	if got := presenceEvents(t, h, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x join alice" {
		t.Fatalf("alice's first session: %v", got)
	}
	a2 := presenceClient(t, h, "alice", "/chat/x", "/chat/**", "/plain/x")
	anon := presenceClient(t, h, "", "/chat/x")
	// The next event is the anonymous session's: alice's second session
	// made none.
	got := presenceEvents(t, h, watch, 1)
	if len(got) != 1 || !strings.HasPrefix(got[0], "/bayeuxhub/presence/chat/x join anon:") || strings.Contains(got[0], anon) {
		t.Fatalf("after alice's second session and an anonymous one: %v", got)
	}
	anonID := strings.TrimPrefix(got[0], "/bayeuxhub/presence/chat/x join anon:")
	if len(anonID) != 24 {
		t.Fatalf("anonymous id %q", anonID)
	}

	list, cov, err := h.Presence(context.Background(), "/chat/x")
	if err != nil || memberNames(list) != "alice:2,anon:1" || len(cov.Nodes) != 1 {
		t.Fatalf("Presence: %s %v %v", memberNames(list), cov, err)
	}
	if ids := list[0].ClientIDs; len(ids) != 2 || !strings.Contains(strings.Join(ids, " "), a1) || !strings.Contains(strings.Join(ids, " "), a2) {
		t.Fatalf("alice's client ids: %v", ids)
	}
	if string(list[0].Info) != `{"name":"ALICE"}` || list[1].Anonymous != anonID || list[1].ClientIDs[0] != anon {
		t.Fatalf("members: %+v", list)
	}
	ack, members := askPresence(t, h, anon, "/chat/x")
	if ack["successful"] != true || len(members) != 2 || members[0]["user"] != "alice" || members[0]["sessions"] != float64(2) ||
		members[1]["anonymous"] != anonID || members[0]["client_ids"] != nil {
		t.Fatalf("service: %v %v", ack, members)
	}
	if l, _, err := h.Presence(context.Background(), "/chat/y"); err != nil || len(l) != 0 {
		t.Fatalf("an empty channel: %v %v", l, err)
	}
	if st := h.Stats().Presence; st.Channels != 1 || st.Members != 2 {
		t.Fatalf("stats: %+v", st)
	}

	unsubscribeAs(t, h, a1, "/chat/x")
	disconnectAs(t, h, anon)
	if got := presenceEvents(t, h, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave anon:"+anonID {
		t.Fatalf("after alice's first session left and the anonymous one ended: %v", got)
	}
	disconnectAs(t, h, a2)
	if got := presenceEvents(t, h, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave alice" {
		t.Fatalf("after alice's last session ended: %v", got)
	}
	presenceWait(t, func() error {
		if st := h.Stats().Presence; st.Channels != 0 || st.Members != 0 {
			return fmt.Errorf("stats: %+v", st)
		}
		return nil
	})
}

// TestPresenceRefusals: the query is for channel names whose rule keeps
// presence; the service answers only a caller that may subscribe to the
// channel; a companion channel needs the same right.
func TestPresenceRefusals(t *testing.T) {
	t.Parallel()
	h := presenceHub(t, nil)
	anon := presenceClient(t, h, "")
	bob := presenceClient(t, h, "bob", "/staff/room")
	for _, ch := range []string{"/plain/x", "/chat/**", "/service/presence", "/meta/connect", "/bayeuxhub/presence/chat/x"} {
		_, _, err := h.Presence(context.Background(), ch)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code >= 500 {
			t.Fatalf("Presence(%s): %v", ch, err)
		}
	}
	if _, _, err := h.Presence(context.Background(), "/chat/"+strings.Repeat("x", 2000)); err == nil {
		t.Fatal("a channel name over the length bound: want an error")
	}
	for _, c := range []struct{ who, data, want string }{
		{anon, `{"channel":"/staff/room"}`, "403:/staff/room:Authentication required"},
		{anon, `{"channel":"/plain/x"}`, "400:/plain/x:Presence is not kept for this channel"},
		{anon, `{}`, `400:/service/presence:Ask with data {"channel": "<channel name>"}`},
		{anon, `"x"`, `400:/service/presence:Ask with data {"channel": "<channel name>"}`},
	} {
		r := call(t, h, &protocol.Message{Channel: "/service/presence", ClientID: c.who, Data: json.RawMessage(c.data)})
		if len(r) != 1 || r[0]["error"] != c.want {
			t.Fatalf("service with %s: %v", c.data, r)
		}
	}
	if _, members := askPresence(t, h, bob, "/staff/room"); len(members) != 1 || members[0]["user"] != "bob" {
		t.Fatalf("bob's answer: %v", members)
	}
	for _, c := range []struct{ who, ch, want string }{
		{anon, "/bayeuxhub/presence/staff/room", "403:/bayeuxhub/presence/staff/room:Presence of channels you may not subscribe to"},
		{anon, "/bayeuxhub/presence/staff/**", "403:/bayeuxhub/presence/staff/**:Presence of channels you may not subscribe to"},
		{anon, "/bayeuxhub/**", "403:/bayeuxhub/**:Presence of channels you may not subscribe to"},
		{anon, "/bayeuxhub/presence/chat/x", ""},
		{anon, "/bayeuxhub/stats", ""},
		{bob, "/bayeuxhub/presence/staff/**", ""},
	} {
		r := subscribeAs(t, h, c.who, c.ch)
		if c.want == "" && r["successful"] != true || c.want != "" && r["error"] != c.want {
			t.Fatalf("subscribe %s: %v", c.ch, r)
		}
	}
}

// TestPresenceService: Options.Services["presence"] replaces the
// built-in; without presence rules /service/presence is an ordinary
// service name.
func TestPresenceService(t *testing.T) {
	t.Parallel()
	own := presenceHub(t, func(o *Options) {
		o.Services = map[string]ServiceFunc{"presence": func(*Client, *protocol.Message) ([]ServiceReply, error) {
			return []ServiceReply{{Data: "mine"}}, nil
		}}
	})
	id := presenceClient(t, own, "")
	r := call(t, own, &protocol.Message{Channel: "/service/presence", ClientID: id, Data: json.RawMessage(`{"channel":"/chat/x"}`)})
	if len(r) != 2 || r[1]["data"] != "mine" {
		t.Fatalf("the application's presence service: %v", r)
	}
	off := startHub(t, Options{})
	id = remoteClient(t, off)
	r = call(t, off, &protocol.Message{Channel: "/service/presence", ClientID: id, Data: json.RawMessage(`{"channel":"/chat/x"}`)})
	if len(r) != 1 || !strings.HasPrefix(fmt.Sprint(r[0]["error"]), "404:") {
		t.Fatalf("no presence rules: %v", r)
	}
	if _, _, err := off.Presence(context.Background(), "/chat/x"); err == nil {
		t.Fatal("Presence without presence rules: want an error")
	}
	// Local clients are the server's own: not members.
	lc, err := own.NewLocalClient("")
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Subscribe("/chat/x", func(*Message) {}); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := own.Presence(context.Background(), "/chat/x"); len(l) != 0 {
		t.Fatalf("a local client counted: %v", l)
	}
}

// TestPresenceLimits: joins past MaxMembers or MaxChannels are not
// tracked, and counted; a second session of a member already there is.
func TestPresenceLimits(t *testing.T) {
	t.Parallel()
	h := presenceHub(t, func(o *Options) { o.Presence = PresenceOptions{MaxMembers: 2, MaxChannels: 2} })
	presenceClient(t, h, "alice", "/chat/a")
	presenceClient(t, h, "bob", "/chat/a")
	carol := presenceClient(t, h, "carol", "/chat/a") // third member: not tracked
	presenceClient(t, h, "alice", "/chat/a")          // alice's second session: tracked
	presenceClient(t, h, "dave", "/chat/b")
	presenceClient(t, h, "erin", "/chat/c") // third channel: not tracked
	list, _, err := h.Presence(context.Background(), "/chat/a")
	if err != nil || memberNames(list) != "alice:2,bob:1" {
		t.Fatalf("/chat/a: %s %v", memberNames(list), err)
	}
	if l, _, _ := h.Presence(context.Background(), "/chat/c"); len(l) != 0 {
		t.Fatalf("/chat/c: %v", l)
	}
	st := h.Stats().Presence
	if st.Untracked != 2 || st.Channels != 2 || st.Members != 3 {
		t.Fatalf("stats: %+v", st)
	}
	// carol's leave, untracked, changes nothing.
	disconnectAs(t, h, carol)
	if l, _, _ := h.Presence(context.Background(), "/chat/a"); memberNames(l) != "alice:2,bob:1" {
		t.Fatalf("after carol left: %s", memberNames(l))
	}
}

// memNet joins hubs in one process for tests: a broker per hub that
// hands every publish to the other hubs, in order, on one goroutine per
// hub, and asks them its queries directly. A hub's broker can be cut off
// (it sends and receives nothing: a hub that died, as the others see
// it), and told to lose presence messages it sends.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memBroker
}

type memBroker struct {
	net  *memNet
	node string
	in   BrokerInbox
	ch   chan *Message
	quit chan struct{}
	done chan struct{}
	once sync.Once
	cut  atomic.Bool
	lose atomic.Int64 // presence changes still to lose
}

func (n *memNet) broker() *memBroker {
	return &memBroker{net: n, ch: make(chan *Message, 1<<14), quit: make(chan struct{}), done: make(chan struct{})}
}

func (b *memBroker) Start(node string, in BrokerInbox) error {
	b.node, b.in = node, in
	b.net.mu.Lock()
	if b.net.nodes == nil {
		b.net.nodes = make(map[string]*memBroker)
	}
	b.net.nodes[node] = b
	b.net.mu.Unlock()
	go func() {
		defer close(b.done)
		for {
			select {
			case m := <-b.ch:
				if !b.cut.Load() {
					b.in.Deliver(m)
				}
			case <-b.quit:
				return
			}
		}
	}()
	return nil
}

func (b *memBroker) others() []*memBroker {
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	var out []*memBroker
	for _, o := range b.net.nodes {
		if o != b && !o.cut.Load() {
			out = append(out, o)
		}
	}
	return out
}

func (b *memBroker) Publish(m *Message) error {
	if b.cut.Load() {
		return nil
	}
	if m.Channel == presenceWire {
		var w presenceWireMsg
		if json.Unmarshal(m.Data, &w) == nil && !w.HB && !w.Bye && b.lose.Add(-1) >= 0 {
			return nil
		}
	}
	for _, o := range b.others() {
		select {
		case o.ch <- &Message{Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext, ClientID: m.ClientID}:
		case <-o.quit:
		}
	}
	return nil
}

func (b *memBroker) Subscribe(string) error   { return nil }
func (b *memBroker) Unsubscribe(string) error { return nil }
func (b *memBroker) Push(string, *Push) error { return nil }

func (b *memBroker) Query(_ context.Context, op string, body []byte) ([]NodeAnswer, []string, error) {
	if b.cut.Load() {
		return nil, nil, nil
	}
	var out []NodeAnswer
	for _, o := range b.others() {
		a, err := o.in.Answer(op, body)
		na := NodeAnswer{Node: o.node, Body: a}
		if err != nil {
			na = NodeAnswer{Node: o.node, Err: err.Error()}
		}
		out = append(out, na)
	}
	return out, nil, nil
}

func (b *memBroker) Close() error {
	b.once.Do(func() {
		b.cut.Store(true)
		close(b.quit)
		<-b.done
	})
	return nil
}

func clusterHub(t testing.TB, n *memNet, name string) (*Hub, *memBroker) {
	t.Helper()
	b := n.broker()
	h := presenceHub(t, func(o *Options) {
		o.Broker, o.NodeName = b, name
		o.Presence.Heartbeat = 200 * time.Millisecond // a hub silent for 600 ms is gone
	})
	return h, b
}

// TestPresenceAcrossHubs: a user with sessions on two hubs is one member
// on both; each hub publishes the events to its own subscribers; a hub
// that starts later learns the others' members; a lost change is noticed
// and the state fetched again; a hub that goes silent loses its members.
func TestPresenceAcrossHubs(t *testing.T) {
	t.Parallel()
	n := &memNet{}
	a, _ := clusterHub(t, n, "a")
	b, bb := clusterHub(t, n, "b")
	watchA := presenceClient(t, a, "", "/bayeuxhub/presence/chat/x")
	watchB := presenceClient(t, b, "", "/bayeuxhub/presence/chat/x")
	presenceClient(t, a, "alice", "/chat/x")
	bobB := presenceClient(t, b, "bob", "/chat/x")
	aliceB := presenceClient(t, b, "alice", "/chat/x")
	for _, w := range []struct {
		h  *Hub
		id string
	}{{a, watchA}, {b, watchB}} {
		got := presenceEvents(t, w.h, w.id, 2)
		slices.Sort(got) // alice's and bob's joins come from different hubs
		if strings.Join(got, "|") != "/bayeuxhub/presence/chat/x join alice|/bayeuxhub/presence/chat/x join bob" {
			t.Fatalf("events on %s: %v", w.h.NodeName(), got)
		}
	}
	list, cov, err := a.Presence(context.Background(), "/chat/x")
	if err != nil || memberNames(list) != "alice:2,bob:1" || len(cov.Nodes) != 2 || len(list[0].ClientIDs) != 2 {
		t.Fatalf("Presence on a: %+v %v %v", list, cov, err)
	}
	// The service answers from the hub's view, both hubs' members in it.
	presenceWait(t, func() error {
		if _, m := askPresence(t, a, watchA, "/chat/x"); len(m) != 2 || m[0]["sessions"] != float64(2) {
			return fmt.Errorf("service on a: %v", m)
		}
		return nil
	})

	// A third hub, started now, learns the others' members (it hears
	// nothing until its subscriber is there to see the events).
	c, cb := clusterHub(t, n, "c")
	cb.cut.Store(true)
	watchC := presenceClient(t, c, "", "/bayeuxhub/presence/chat/x")
	cb.cut.Store(false)
	presenceWait(t, func() error {
		if _, m := askPresence(t, c, watchC, "/chat/x"); len(m) != 2 || m[0]["sessions"] != float64(2) || m[1]["user"] != "bob" {
			return fmt.Errorf("service on c: %v", m)
		}
		return nil
	})
	// Fetched states put members in by channel and user id.
	if got := presenceEvents(t, c, watchC, 2); strings.Join(got, "|") != "/bayeuxhub/presence/chat/x join alice|/bayeuxhub/presence/chat/x join bob" {
		t.Fatalf("events on c: %v", got)
	}

	// B loses its next change (alice's second session leaving): the
	// others notice at its next heartbeat and fetch its state.
	syncs := a.Stats().Presence.Syncs
	bb.lose.Store(1)
	unsubscribeAs(t, b, aliceB, "/chat/x")
	presenceWait(t, func() error {
		if _, m := askPresence(t, a, watchA, "/chat/x"); len(m) != 2 || m[0]["sessions"] != float64(1) {
			return fmt.Errorf("service on a: %v", m)
		}
		return nil
	})
	if st := a.Stats().Presence; st.Syncs <= syncs {
		t.Fatalf("a did not fetch b's state again: %+v", st)
	}

	// B dies: bob, only on B, leaves on A and C; alice stays.
	bb.cut.Store(true)
	for _, w := range []struct {
		h  *Hub
		id string
	}{{a, watchA}, {c, watchC}} {
		if got := presenceEvents(t, w.h, w.id, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave bob" {
			t.Fatalf("events on %s after b died: %v", w.h.NodeName(), got)
		}
		if _, m := askPresence(t, w.h, w.id, "/chat/x"); len(m) != 1 || m[0]["user"] != "alice" {
			t.Fatalf("service on %s after b died: %v", w.h.NodeName(), m)
		}
	}
	_ = bobB
}

// TestPresenceHubLeaves: a hub that shuts down tells the others, whose
// subscribers see its members leave.
func TestPresenceHubLeaves(t *testing.T) {
	t.Parallel()
	n := &memNet{}
	a, _ := clusterHub(t, n, "a")
	bb := n.broker()
	b, err := Start(actor.NewActorSystem(), Options{Rules: presenceRules(t), Authenticator: presenceTokens{}, Broker: bb, NodeName: "b",
		PollTimeout: 300 * time.Millisecond, Presence: PresenceOptions{Heartbeat: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) }) // a no-op once shut down
	watch := presenceClient(t, a, "", "/bayeuxhub/presence/chat/x")
	presenceClient(t, b, "bob", "/chat/x")
	if got := presenceEvents(t, a, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x join bob" {
		t.Fatalf("bob on b: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := presenceEvents(t, a, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave bob" {
		t.Fatalf("after b shut down: %v", got)
	}
	if l, _, _ := a.Presence(context.Background(), "/chat/x"); len(l) != 0 {
		t.Fatalf("members left: %v", l)
	}
}
