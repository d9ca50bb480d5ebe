package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// clusterNode is one hub of a test cluster and its NATS broker.
type clusterNode struct {
	name   string
	srv    *server.Server
	broker *broker.NATS
}

// clusterStart starts a hub named name joined to the NATS server ns; mod,
// when set, adjusts the broker's options.
func clusterStart(t *testing.T, ns *natstest.Server, name string, mod func(*broker.NATSOptions)) *clusterNode {
	t.Helper()
	opts := broker.NATSOptions{URLs: []string{ns.URL()}, ReconnectWait: 20 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	b, err := broker.NewNATS(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, server.Config{NodeName: name, Hub: actors.Options{Broker: b}})
	return &clusterNode{name: name, srv: srv, broker: b}
}

// clusterFlush waits until the NATS server knows every subscription the
// nodes have made so far.
func clusterFlush(t *testing.T, nodes ...*clusterNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.broker.Flush(ctx); err != nil {
			t.Fatalf("flush %s: %v", n.name, err)
		}
	}
}

// clusterSink collects what a local client receives.
type clusterSink struct {
	mu   sync.Mutex
	msgs []*actors.Message
}

func (s *clusterSink) add(m *actors.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
}

func (s *clusterSink) list() []*actors.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*actors.Message(nil), s.msgs...)
}

func (s *clusterSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// clusterLocal makes a local client on n subscribed to channels.
func clusterLocal(t *testing.T, n *clusterNode, id string, channels ...string) (*actors.LocalClient, *clusterSink) {
	t.Helper()
	lc, err := n.srv.Hub().NewLocalClient(id)
	if err != nil {
		t.Fatal(err)
	}
	sink := &clusterSink{}
	for _, ch := range channels {
		if err := lc.Subscribe(ch, sink.add); err != nil {
			t.Fatal(err)
		}
	}
	return lc, sink
}

// clusterSeq checks that msgs carry the numbers want..., in order.
func clusterSeq(t *testing.T, who string, data []json.RawMessage, want []int) {
	t.Helper()
	if len(data) != len(want) {
		t.Fatalf("%s: %d messages, want %d", who, len(data), len(want))
	}
	for i, d := range data {
		if string(d) != fmt.Sprint(want[i]) {
			t.Fatalf("%s: message %d is %s, want %d", who, i, d, want[i])
		}
	}
}

func clusterRange(from, to int) []int {
	var r []int
	for i := from; i < to; i++ {
		r = append(r, i)
	}
	return r
}

func clusterLocalData(msgs []*actors.Message) []json.RawMessage {
	var out []json.RawMessage
	for _, m := range msgs {
		out = append(out, m.Data)
	}
	return out
}

func clusterHTTPData(t *testing.T, msgs []msg) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, m := range msgs {
		b, err := json.Marshal(m["data"])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestClusterFanOut: 300 messages published on hub A reach HTTP and local
// subscribers on A, B and C exactly once and in order.
func TestClusterFanOut(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	c := clusterStart(t, ns, "c", nil)
	var https []*client
	var sinks []*clusterSink
	for _, n := range []*clusterNode{a, b, c} {
		hc := newClient(t, n.srv).start()
		if !strings.HasPrefix(hc.id, n.name+"_") {
			t.Fatalf("client id %q on node %s lacks the node prefix", hc.id, n.name)
		}
		if r := hc.subscribe("/room/1"); r["successful"] != true {
			t.Fatalf("subscribe: %v", r)
		}
		https = append(https, hc)
		// The local client is subscribed twice over (name and pattern):
		// one copy each all the same.
		_, sink := clusterLocal(t, n, n.name+"_bot", "/room/1", "/room/*")
		sinks = append(sinks, sink)
	}
	clusterFlush(t, a, b, c)

	pub, _ := clusterLocal(t, a, "a_publisher")
	const n = 300
	for i := range n {
		if err := pub.Publish("/room/1", i); err != nil {
			t.Fatal(err)
		}
	}
	for i, hc := range https {
		got := hc.deliveries(n, 20*time.Second)
		clusterSeq(t, "HTTP client on "+[]string{"a", "b", "c"}[i], clusterHTTPData(t, got), clusterRange(0, n))
	}
	for i, s := range sinks {
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if s.len() < n {
				return fmt.Errorf("%d of %d", s.len(), n)
			}
			return nil
		})
		clusterSeq(t, "local client on "+[]string{"a", "b", "c"}[i], clusterLocalData(s.list()), clusterRange(0, n))
		for _, m := range s.list() {
			if m.ClientID != "a_publisher" || m.Channel != "/room/1" {
				t.Fatalf("message from %q on %s", m.ClientID, m.Channel)
			}
		}
	}
	// An HTTP publisher on C reaches A too, with its id and ext.
	pc := newClient(t, c.srv).start()
	_, replies := pc.post(msg{"channel": "/room/1", "clientId": pc.id, "data": "from c", "id": "77", "ext": msg{"k": 1}})
	if r := only(t, replies, "/room/1"); r["successful"] != true {
		t.Fatalf("publish on c: %v", r)
	}
	got := https[0].deliveries(1, 10*time.Second)
	if len(got) != 1 || got[0]["data"] != "from c" || got[0]["id"] != "77" || got[0]["ext"].(map[string]any)["k"] != 1.0 {
		t.Fatalf("A got %v", got)
	}
	for _, hc := range https[1:] {
		if got := hc.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "from c" {
			t.Fatalf("got %v", got)
		}
	}
	for _, nd := range []*clusterNode{a, b, c} {
		if st := nd.srv.Hub().Stats(); st.BrokerErrors != 0 {
			t.Fatalf("%s: %d broker errors", nd.name, st.BrokerErrors)
		}
	}
	// B's node subscriptions are /room/1 and /room/*: NATS sends two
	// copies of each message; the broker drops one.
	if st := b.broker.Stats(); st.Delivered != n+1 || st.Duplicates != n+1 {
		t.Fatalf("b broker stats %+v", st)
	}
}

// TestClusterWildcards: /a/* and /a/** on B match publishes on A to /a/x
// and /a/x/y as in one hub, and a client (and node) subscribed through
// overlapping patterns gets one copy.
func TestClusterWildcards(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	one := newClient(t, b.srv).start()
	one.subscribe("/a/*")
	deep := newClient(t, b.srv).start()
	deep.subscribe("/a/**")
	all := newClient(t, b.srv).start()
	all.subscribe("/a/*", "/a/**", "/a/x", "/**")
	clusterFlush(t, b)
	if st := b.broker.Stats(); st.Subscriptions != 4 {
		t.Fatalf("b subscribed to %d subjects, want 4", st.Subscriptions)
	}
	pub := newClient(t, a.srv).start()
	for i := range 5 {
		pub.publish("/a/x", i)
		pub.publish("/a/x/y", 100+i)
	}
	pub.publish("/b", "last")
	// Order holds per channel; between /a/x and /a/x/y, which a client
	// gets through different subscriptions (channel actors), it does not,
	// on one hub as across hubs. So channels are listed one after another.
	channels := func(ms []msg) string {
		var s []string
		for _, ch := range []string{"/a/x", "/a/x/y", "/b"} {
			for _, m := range ms {
				if m["channel"] == ch {
					s = append(s, fmt.Sprintf("%v=%v", m["channel"], m["data"]))
				}
			}
		}
		return strings.Join(s, " ")
	}
	if got, want := channels(one.deliveries(5, 10*time.Second)), "/a/x=0 /a/x=1 /a/x=2 /a/x=3 /a/x=4"; got != want {
		t.Errorf("/a/* got %s, want %s", got, want)
	}
	if got, want := channels(deep.deliveries(10, 10*time.Second)),
		"/a/x=0 /a/x=1 /a/x=2 /a/x=3 /a/x=4 /a/x/y=100 /a/x/y=101 /a/x/y=102 /a/x/y=103 /a/x/y=104"; got != want {
		t.Errorf("/a/** got %s, want %s", got, want)
	}
	if got, want := channels(all.deliveries(11, 10*time.Second)),
		"/a/x=0 /a/x=1 /a/x=2 /a/x=3 /a/x=4 /a/x/y=100 /a/x/y=101 /a/x/y=102 /a/x/y=103 /a/x/y=104 /b=last"; got != want {
		t.Errorf("overlapping got %s, want %s", got, want)
	}
	// /a/x matches four of B's subjects, /a/x/y two, /b one.
	if st := b.broker.Stats(); st.Delivered != 11 || st.Received != 5*4+5*2+1 || st.Duplicates != 5*3+5 {
		t.Fatalf("b broker stats %+v", st)
	}
}

// TestClusterNoInterest: a node with no subscriber for a channel gets none
// of its messages, and a node's NATS subscription ends with its last
// local subscriber.
func TestClusterNoInterest(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	c := clusterStart(t, ns, "c", nil)
	_, onB := clusterLocal(t, b, "b_bot", "/only-b")
	cc := newClient(t, c.srv).start()
	cc.subscribe("/marker")
	clusterFlush(t, b, c)
	if st := c.broker.Stats(); st.Subscriptions != 1 {
		t.Fatalf("c subscriptions %d, want 1", st.Subscriptions)
	}
	pub, _ := clusterLocal(t, a, "a_pub")
	for i := range 100 {
		if err := pub.Publish("/only-b", i); err != nil {
			t.Fatal(err)
		}
	}
	// A's messages reach C in order: once the marker is there, any
	// /only-b message sent to C would be too.
	if err := pub.Publish("/marker", "m"); err != nil {
		t.Fatal(err)
	}
	if got := cc.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "m" {
		t.Fatalf("c got %v", got)
	}
	if st := c.broker.Stats(); st.Received != 1 || st.Delivered != 1 {
		t.Fatalf("c received %d NATS messages, want only the marker: %+v", st.Received, st)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if onB.len() != 100 {
			return fmt.Errorf("b has %d of 100", onB.len())
		}
		return nil
	})
	// C's last subscriber leaves: C drops its NATS subscription.
	cc.unsubscribe("/marker")
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := c.broker.Stats().Subscriptions; n != 0 {
			return fmt.Errorf("c still has %d subscriptions", n)
		}
		return nil
	})
}

// TestClusterPush: Hub.Push on A reaches an HTTP client and a local client
// held by B.
func TestClusterPush(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	hc := newClient(t, b.srv).start()
	_, sink := clusterLocal(t, b, "b_bot", "/private/**")
	if err := a.srv.Hub().Push(hc.id, "/private/note", map[string]string{"to": "http"}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Hub().Push("b_bot", "/private/note", map[string]string{"to": "local"}); err != nil {
		t.Fatal(err)
	}
	got := hc.deliveries(1, 10*time.Second)
	if len(got) != 1 || got[0]["channel"] != "/private/note" || got[0]["data"].(map[string]any)["to"] != "http" {
		t.Fatalf("HTTP client on b got %v", got)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if sink.len() != 1 {
			return fmt.Errorf("local client on b has %d pushes", sink.len())
		}
		return nil
	})
	if d := string(sink.list()[0].Data); d != `{"to":"local"}` {
		t.Fatalf("local push data %s", d)
	}
	// A client id of an unknown node form is refused at once.
	if err := a.srv.Hub().Push("nosuchclient", "/private/note", 1); err == nil {
		t.Fatal("push to an unknown client: want an error")
	}
	if st := b.broker.Stats(); st.PushesReceived != 2 {
		t.Fatalf("b broker stats %+v", st)
	}
}

// TestClusterNATSRestart: the NATS server restarts in the middle of
// traffic. Each hub keeps serving its own clients; publishes while NATS is
// down are counted in BrokerErrors (no reconnect buffer here, so each
// one fails at once); nothing crashes; traffic between the hubs resumes
// once NATS is back, still in order and once each.
func TestClusterNATSRestart(t *testing.T) {
	// Not parallel: the NATS server restarts on the same port.
	ns := natstest.Run(t, natstest.FreePort(t))
	var downs, ups sync.WaitGroup
	downs.Add(2)
	ups.Add(2)
	mod := func(o *broker.NATSOptions) {
		var down, up sync.Once
		o.ReconnectBufSize = -1
		o.OnDisconnect = func(error) { down.Do(downs.Done) }
		o.OnReconnect = func(string) { up.Do(ups.Done) }
	}
	a := clusterStart(t, ns, "a", mod)
	b := clusterStart(t, ns, "b", mod)
	_, onA := clusterLocal(t, a, "a_sub", "/live")
	_, onB := clusterLocal(t, b, "b_sub", "/live")
	clusterFlush(t, b)
	pub, _ := clusterLocal(t, a, "a_pub")

	var published int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // steady traffic, about one message a millisecond
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := pub.Publish("/live", published); err != nil {
				t.Error(err)
				return
			}
			published++
		}
	}()
	waitB := func(n int) {
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if onB.len() < n {
				return fmt.Errorf("b has %d of %d", onB.len(), n)
			}
			return nil
		})
	}
	waitB(50)
	ns.Stop()
	downs.Wait()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := a.srv.Hub().Stats().BrokerErrors; n < 30 {
			return fmt.Errorf("%d broker errors so far", n)
		}
		return nil
	})
	before := onB.len()
	ns.Restart()
	ups.Wait()
	clusterFlush(t, a, b)
	waitB(before + 50)
	close(stop)
	<-done

	total := published
	// A's own subscriber got everything: the hub served its local clients
	// all along.
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if onA.len() != total {
			return fmt.Errorf("a has %d of %d", onA.len(), total)
		}
		return nil
	})
	clusterSeq(t, "local subscriber on a", clusterLocalData(onA.list()), clusterRange(0, total))
	// B got a gap, never a duplicate or a reordering.
	prev := -1
	for _, m := range onB.list() {
		var v int
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v <= prev {
			t.Fatalf("b got %d after %d", v, prev)
		}
		prev = v
	}
	errs := a.srv.Hub().Stats().BrokerErrors
	if got := uint64(onB.len()) + errs; got > uint64(total) {
		t.Fatalf("b got %d and a counted %d errors of %d published", onB.len(), errs, total)
	}
	t.Logf("published %d, b got %d, a counted %d broker errors, %d lost in flight",
		total, onB.len(), errs, uint64(total)-uint64(onB.len())-errs)
	if st := b.broker.Stats(); st.Disconnects != 1 || st.Reconnects != 1 || !st.Connected {
		t.Fatalf("b broker stats %+v", st)
	}
}

// TestClusterNodeLeaves: C shuts down; A and B keep exchanging messages
// and the NATS server forgets C's subscriptions.
func TestClusterNodeLeaves(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	base := ns.NumSubscriptions()
	// C is shut down by the test itself, not by startServer's cleanup
	// (server.Shutdown must not be called twice).
	bc, err := broker.NewNATS(broker.NATSOptions{URLs: []string{ns.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	csrv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-", NodeName: "c", Hub: actors.Options{Broker: bc}})
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterNode{name: "c", srv: csrv, broker: bc}
	cShut := false
	t.Cleanup(func() {
		if !cShut {
			_ = csrv.Shutdown(context.Background())
		}
	})
	ca := newClient(t, a.srv).start()
	ca.subscribe("/room")
	cb := newClient(t, b.srv).start()
	cb.subscribe("/room")
	cc := newClient(t, c.srv).start()
	cc.subscribe("/room")
	clusterFlush(t, a, b, c)
	cc.publish("/room", "c here")
	for _, hc := range []*client{ca, cb} {
		if got := hc.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "c here" {
			t.Fatalf("got %v", got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cShut = true
	if err := c.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := ns.NumSubscriptions(); n != base+2 { // A's and B's /room
			return fmt.Errorf("NATS has %d subscriptions, want %d", n, base+2)
		}
		return nil
	})
	for i := range 20 {
		ca.publish("/room", i)
		cb.publish("/room", 100+i)
	}
	// Each sees its own and the other's messages, each side in order.
	for _, hc := range []*client{ca, cb} {
		got := hc.deliveries(40, 10*time.Second)
		var fromA, fromB []json.RawMessage
		for _, d := range clusterHTTPData(t, got) {
			var v int
			_ = json.Unmarshal(d, &v)
			if v < 100 {
				fromA = append(fromA, d)
			} else {
				fromB = append(fromB, d)
			}
		}
		clusterSeq(t, "from a", fromA, clusterRange(0, 20))
		clusterSeq(t, "from b", fromB, clusterRange(100, 120))
	}
	// A push to a client of the departed node goes nowhere, quietly.
	if err := a.srv.Hub().Push(cc.id, "/room", "gone"); err != nil {
		t.Fatalf("push to a departed node's client: %v", err)
	}
	for _, nd := range []*clusterNode{a, b} {
		if st := nd.srv.Hub().Stats(); st.BrokerErrors != 0 {
			t.Fatalf("%s: %d broker errors", nd.name, st.BrokerErrors)
		}
	}
}

// TestClusterConfigNATS: server.Config.NATS and NodeName (the --nats and
// --node-name flags) create the broker.
func TestClusterConfigNATS(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	alpha := startServer(t, server.Config{NATS: []string{ns.URL()}, NodeName: "alpha"})
	beta := startServer(t, server.Config{NATS: []string{ns.URL()}, NodeName: "beta"})
	ca := newClient(t, alpha).start()
	if !strings.HasPrefix(ca.id, "alpha_") {
		t.Fatalf("client id %q", ca.id)
	}
	cb := newClient(t, beta).start()
	cb.subscribe("/hello")
	// No broker handle here to flush: publish until the subscription has
	// reached NATS, then check the rest arrive in order.
	_, sink := clusterLocal(t, &clusterNode{name: "beta", srv: beta}, "beta_bot", "/hello")
	i := 0
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		ca.publish("/hello", i)
		i++
		if sink.len() == 0 {
			return fmt.Errorf("nothing yet")
		}
		return nil
	})
	if _, err := server.Start(server.Config{Addr: "127.0.0.1:0", NATS: []string{"nats://a:1,nats://b:2"}}); err == nil {
		t.Fatal("a comma in a NATS URL entry: want an error")
	}
}
