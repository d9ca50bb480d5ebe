package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// The link between a hub and NATS: a long channel name must not cut a hub
// off its cluster, and a hub starts, serves and becomes ready whether or
// not NATS is there yet.

// publishUntil publishes on from until to has received one of these
// publishes on channel, and returns those to received. It is how a test
// without a broker handle to flush knows a subscription has reached NATS.
func publishUntil(t *testing.T, from, to *client, channel string) []msg {
	t.Helper()
	tag := fmt.Sprintf("round %d: ", publishRounds.Add(1))
	var got []msg
	i := 0
	checkFor(t, 20*time.Second, time.Millisecond, func() error {
		if r := from.publish(channel, fmt.Sprint(tag, i)); r["successful"] != true {
			t.Fatalf("publish %s: %v", channel, r)
		}
		i++
		for _, m := range to.poll() {
			if d, _ := m["data"].(string); m["channel"] == channel && strings.HasPrefix(d, tag) {
				got = append(got, m)
			}
		}
		if len(got) == 0 {
			return fmt.Errorf("%d publishes on %s, none arrived", i, channel)
		}
		return nil
	})
	return got
}

// publishRounds tells the messages of one publishUntil from those of
// earlier ones still arriving.
var publishRounds atomic.Int64

// poll returns what is queued for c now, without a held connect.
func (c *client) poll() []msg {
	c.t.Helper()
	var got []msg
	for _, m := range c.connectRaw() {
		if m["channel"] != "/meta/connect" {
			got = append(got, m)
		} else if m["successful"] != true {
			c.t.Fatalf("connect failed: %v", m)
		}
	}
	return got
}

// pollFor polls c until n messages have arrived or within passes.
func (c *client) pollFor(n int, within time.Duration) []msg {
	c.t.Helper()
	var got []msg
	_ = testutil.Poll(within, 5*time.Millisecond, func() error {
		if got = append(got, c.poll()...); len(got) < n {
			return fmt.Errorf("%d of %d messages", len(got), n)
		}
		return nil
	})
	return got
}

// localRoundTrip checks that srv serves its own clients: a subscriber gets
// a message another client publishes.
func localRoundTrip(t *testing.T, srv *server.Server, channel string) {
	t.Helper()
	sub := newClient(t, srv).start()
	if r := sub.subscribe(channel); r["successful"] != true {
		t.Fatalf("local subscribe %s: %v", channel, r)
	}
	pub := newClient(t, srv).start()
	if r := pub.publish(channel, "local"); r["successful"] != true {
		t.Fatalf("local publish %s: %v", channel, r)
	}
	if got := sub.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "local" {
		t.Fatalf("local delivery on %s: %v", channel, got)
	}
}

// TestNATSLongChannelKeepsHubsJoined (issue 15, item 1): a publish and a
// subscribe to a channel name of 5,000 bytes, whose NATS subject
// nats-server would refuse (closing the connection, after which nats.go
// gives up), get an answer, and afterwards a publish on hub A still
// reaches a subscriber on hub B. Whoever refuses the name (the hub, with
// a Bayeux error, or the broker, counted in BrokerErrors), nothing
// reaches NATS.
func TestNATSLongChannelKeepsHubsJoined(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	a := clusterStart(t, ns, "a", nil)
	b := clusterStart(t, ns, "b", nil)
	onB := newClient(t, b.srv).start()
	if r := onB.subscribe("/room"); r["successful"] != true {
		t.Fatalf("subscribe /room: %v", r)
	}
	clusterFlush(t, a, b)

	long := "/" + strings.Repeat("x", 5000)
	onA := newClient(t, a.srv).start()
	// refused reports whether the hub refused a request on long itself
	// (then the broker never saw it) or the broker counted its refusal.
	refused := func(node *clusterNode, status int, replies []msg, errorsBefore uint64) {
		t.Helper()
		if status != http.StatusOK && status != http.StatusBadRequest {
			t.Fatalf("%s: request on the long channel: HTTP %d %v", node.name, status, replies)
		}
		if status == http.StatusBadRequest {
			return // the hub refused the request as a whole
		}
		if len(replies) != 1 {
			t.Fatalf("%s: want one reply on the long channel, got %v", node.name, replies)
		}
		if replies[0]["successful"] == false {
			return // the hub refused the name with a Bayeux error
		}
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if n := node.srv.Hub().Stats().BrokerErrors; n <= errorsBefore {
				return fmt.Errorf("%s: the hub accepted the long channel and counted no broker error", node.name)
			}
			return nil
		})
	}
	beforeA, beforeB := a.srv.Hub().Stats().BrokerErrors, b.srv.Hub().Stats().BrokerErrors
	pubStatus, pubReplies := onA.post(msg{"channel": long, "clientId": onA.id, "data": "long", "id": onA.nextID()})
	subStatus, subReplies := onB.post(msg{"channel": "/meta/subscribe", "clientId": onB.id, "subscription": long, "id": onB.nextID()})

	// Both hubs are still joined: A's next publish reaches B.
	if r := onA.publish("/room", "after"); r["successful"] != true {
		t.Fatalf("publish /room: %v", r)
	}
	if got := onB.pollFor(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "after" {
		t.Fatalf("B got %v after the long channel, want A's message: a connected %v, b connected %v",
			got, a.broker.Connected(), b.broker.Connected())
	}
	refused(a, pubStatus, pubReplies, beforeA)
	refused(b, subStatus, subReplies, beforeB)
	for _, n := range []*clusterNode{a, b} {
		if st := n.broker.Stats(); !st.Connected || st.Disconnects != 0 {
			t.Fatalf("%s: the long channel disturbed the NATS connection: %+v", n.name, st)
		}
	}
}

// TestNATSDownAtStart (issue 15, item 10): a hub whose NATS server is not
// there starts all the same, serves its own clients and says on /readyz
// why it is not ready; once NATS comes, it joins, becomes ready and
// exchanges messages with another hub, a subscription made while NATS was
// down included. Then NATS goes away and comes back on the same port: the
// hubs leave and rejoin, and a subscription made meanwhile works too.
func TestNATSDownAtStart(t *testing.T) {
	t.Parallel()
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	a := startServer(t, server.Config{NATS: []string{url}, NodeName: "early"})
	if body := get(t, a.URL()+"/healthz"); body != "{\"status\":\"ok\"}\n" {
		t.Fatalf("/healthz without NATS: %q", body)
	}
	notReady := func(srv *server.Server, when string) {
		t.Helper()
		status, checks := readyz(t, srv)
		if status != http.StatusServiceUnavailable || checks["nats"] == "ok" || checks["nats"] == "" ||
			checks["hub"] != "ok" || checks["http"] != "ok" {
			t.Fatalf("/readyz %s: %d %v, want 503 naming nats only", when, status, checks)
		}
	}
	notReady(a, "before NATS is up")
	localRoundTrip(t, a, "/local")
	onA := newClient(t, a).start()
	if r := onA.subscribe("/to-early"); r["successful"] != true { // while NATS is down
		t.Fatalf("subscribe without NATS: %v", r)
	}

	ns := natstest.Run(t, port)
	// Shut the first hub down before NATS stops, as the second one is:
	// Shutdown keeps its first result, which startServer's cleanup checks.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	b := startServer(t, server.Config{NATS: []string{ns.URL()}, NodeName: "late"})
	ready := func(srv *server.Server, when string) {
		t.Helper()
		checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if status, checks := readyz(t, srv); status != http.StatusOK {
				return fmt.Errorf("/readyz %s: %d %v", when, status, checks)
			}
			return nil
		})
	}
	ready(a, "once NATS is up")
	ready(b, "of the second hub")
	onB := newClient(t, b).start()
	publishUntil(t, onB, onA, "/to-early")
	if r := onB.subscribe("/to-late"); r["successful"] != true {
		t.Fatalf("subscribe on the second hub: %v", r)
	}
	publishUntil(t, onA, onB, "/to-late")

	// NATS goes away: both hubs say so, stay alive and serve their own.
	ns.Stop()
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		for _, srv := range []*server.Server{a, b} {
			if status, _ := readyz(t, srv); status != http.StatusServiceUnavailable {
				return fmt.Errorf("%s still ready without NATS", srv.URL())
			}
		}
		return nil
	})
	notReady(a, "after NATS left")
	get(t, b.URL()+"/healthz")
	localRoundTrip(t, b, "/local-again")
	if r := onB.subscribe("/while-down"); r["successful"] != true {
		t.Fatalf("subscribe while NATS is down: %v", r)
	}

	ns.Restart()
	ready(a, "after NATS came back")
	ready(b, "after NATS came back")
	publishUntil(t, onA, onB, "/while-down")
	publishUntil(t, onB, onA, "/to-early")
}
