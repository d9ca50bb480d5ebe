package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/auth"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// presenceConfig is secureConfig with presence on /chat/** (for users
// only) and /lobby/** (for anyone), and mod applied.
func presenceConfig(t testing.TB, mod func(*server.Config)) server.Config {
	t.Helper()
	return secureConfig(t, func(cfg *server.Config, _ *auth.JWTOptions) {
		rules, err := acl.New([]acl.Rule{
			acl.Default()[0],
			{Name: "rooms", Pattern: "/chat/**", Subscribe: acl.Authenticated, Publish: acl.Authenticated, Presence: true},
			{Name: "staff", Pattern: "/staff/**", Subscribe: acl.Granted, Publish: acl.Granted, Presence: true},
			{Name: "public", Pattern: "/public/**", Subscribe: acl.Anyone, Publish: acl.Anyone},
			{Name: "services", Pattern: "/service/**", Subscribe: acl.Nobody, Publish: acl.Authenticated},
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Hub.Rules = rules
		if mod != nil {
			mod(cfg)
		}
	})
}

// presenceUser is a client with a token for user, its info {"name": ...}.
func presenceUser(t testing.TB, srv *server.Server, user string, subs ...string) *client {
	t.Helper()
	c := newClient(t, srv).startAs(userToken(t, user, jwt.MapClaims{"info": map[string]any{"name": strings.ToUpper(user)}}))
	for _, s := range subs {
		if r := c.subscribe(s); r["successful"] != true {
			t.Fatalf("%s subscribes to %s: %v", user, s, r)
		}
	}
	return c
}

// presenceSeen connects until n presence events have come and returns
// them as "action user" (or "action anon"), failing on a client id.
func presenceSeen(t testing.TB, c *client, n int) []string {
	t.Helper()
	var out []string
	for _, m := range c.deliveries(n, 20*time.Second) {
		data, _ := m["data"].(map[string]any)
		if _, leak := data["clientId"]; leak {
			t.Fatalf("a presence event carries a client id: %v", m)
		}
		who, _ := data["user"].(string)
		if who == "" {
			who = "anon"
		}
		out = append(out, fmt.Sprintf("%s %s %s", m["channel"], data["action"], who))
	}
	return out
}

// askPresenceHTTP calls /service/presence and returns the answer's
// members as "user:sessions".
func askPresenceHTTP(t testing.TB, c *client, channel string) (msg, string) {
	t.Helper()
	_, replies := c.post(msg{"channel": "/service/presence", "clientId": c.id, "id": c.nextID(), "data": msg{"channel": channel}})
	ack := find(replies, "/service/presence")
	var names []string
	for _, r := range replies {
		if r["data"] == nil {
			continue
		}
		data, _ := r["data"].(map[string]any)
		list, _ := data["members"].([]any)
		for _, m := range list {
			m := m.(map[string]any)
			if m["client_ids"] != nil || m["clientId"] != nil {
				t.Fatalf("the presence service shows client ids: %v", m)
			}
			names = append(names, fmt.Sprintf("%v:%v", m["user"], m["sessions"]))
		}
	}
	return ack, strings.Join(names, ",")
}

// apiMembers returns GET /api/presence's members as "user:sessions:ids".
func apiMembers(t testing.TB, a *apiClient, channel string) (msg, string) {
	t.Helper()
	status, out := a.call("GET", "/presence?channel="+channel, nil, nil)
	if status != 200 {
		t.Fatalf("GET /api/presence?channel=%s: %d %v", channel, status, out)
	}
	var names []string
	for _, m := range out["members"].([]any) {
		m := m.(map[string]any)
		names = append(names, fmt.Sprintf("%v:%v:%d", m["user"], m["sessions"], len(m["client_ids"].([]any))))
	}
	return out, strings.Join(names, ",")
}

// TestPresenceOverHTTP: join and leave events on the companion channel,
// one member for a user's two sessions, the client's /service/presence
// and the backend's GET /api/presence agree, the rules decide who may
// ask and watch, and /metrics counts the members.
func TestPresenceOverHTTP(t *testing.T) {
	t.Parallel()
	srv := startServer(t, presenceConfig(t, nil))
	api := newAPIClient(t, srv, testAPIKey)
	watch := presenceUser(t, srv, "carol", "/bayeuxhub/presence/chat/x")
	alice1 := presenceUser(t, srv, "alice", "/chat/x")
	alice2 := presenceUser(t, srv, "alice", "/chat/x")
	bob := presenceUser(t, srv, "bob", "/chat/x", "/chat/**")
	got := presenceSeen(t, watch, 2)
	if strings.Join(got, "|") != "/bayeuxhub/presence/chat/x join alice|/bayeuxhub/presence/chat/x join bob" {
		t.Fatalf("events: %v", got)
	}
	if ack, names := askPresenceHTTP(t, bob, "/chat/x"); ack["successful"] != true || names != "alice:2,bob:1" {
		t.Fatalf("service: %v %s", ack, names)
	}
	out, names := apiMembers(t, api, "/chat/x")
	if names != "alice:2:2,bob:1:1" || stringify(out["nodes"]) != `["`+srv.Hub().NodeName()+`"]` {
		t.Fatalf("API: %v", out)
	}
	members := out["members"].([]any)
	if info := stringify(members[0].(map[string]any)["info"]); info != `{"name":"ALICE"}` {
		t.Fatalf("alice's info: %s", info)
	}
	ids := stringify(members[0].(map[string]any)["client_ids"])
	if !strings.Contains(ids, alice1.id) || !strings.Contains(ids, alice2.id) {
		t.Fatalf("alice's client ids %s, want %s and %s", ids, alice1.id, alice2.id)
	}

	// Refusals: the service for a channel the caller may not subscribe
	// to, or without presence; watching presence one may not see.
	if ack, _ := askPresenceHTTP(t, bob, "/staff/room"); ack["error"] != "403:/staff/room:Channel not granted" {
		t.Fatalf("service on /staff/room: %v", ack)
	}
	if ack, _ := askPresenceHTTP(t, bob, "/public/x"); ack["error"] != "400:/public/x:Presence is not kept for this channel" {
		t.Fatalf("service on /public/x: %v", ack)
	}
	if r := bob.subscribe("/bayeuxhub/presence/staff/room"); r["error"] != "403:/bayeuxhub/presence/staff/room:Presence of channels you may not subscribe to" {
		t.Fatalf("watching /staff/room: %v", r)
	}
	for _, c := range []struct{ query, code string }{
		{"", "bad_request"},
		{"?channel=/public/x", "bad_request"},
		{"?channel=/chat/**", "bad_request"},
		{"?channel=chat", "invalid_channel"},
	} {
		if status, out := api.call("GET", "/presence"+c.query, nil, nil); status != 400 || errCode(out) != c.code {
			t.Fatalf("GET /api/presence%s: %d %v", c.query, status, out)
		}
	}
	if status, out := api.call("GET", "/presence?channel=/chat/empty", nil, nil); status != 200 || stringify(out["members"]) != "[]" {
		t.Fatalf("an empty channel: %d %v", status, out)
	}
	checkMetric(t, srv, "bayeuxhub_presence_members 2")

	// alice's first session leaves: she is still there; her second
	// ends: she leaves; then bob.
	alice1.unsubscribe("/chat/x")
	alice2.post(msg{"channel": "/meta/disconnect", "clientId": alice2.id})
	if got := presenceSeen(t, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave alice" {
		t.Fatalf("events after alice's sessions left: %v", got)
	}
	bob.unsubscribe("/chat/x")
	if got := presenceSeen(t, watch, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave bob" {
		t.Fatalf("events after bob left: %v", got)
	}
	if _, names := apiMembers(t, api, "/chat/x"); names != "" {
		t.Fatalf("after everyone left: %s", names)
	}
}

// checkMetric waits until /metrics has the line.
func checkMetric(t testing.TB, srv *server.Server, line string) {
	t.Helper()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(srv.URL() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !slices.Contains(strings.Split(string(body), "\n"), line) {
			return fmt.Errorf("/metrics lacks %q", line)
		}
		return nil
	})
}

// TestPresenceLimits: past max-presence-members a join is not tracked
// (no event, not listed) and counted.
func TestPresenceLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, presenceConfig(t, func(cfg *server.Config) {
		cfg.Hub.Presence = actors.PresenceOptions{MaxMembers: 2, MaxChannels: 1}
	}))
	api := newAPIClient(t, srv, testAPIKey)
	watch := presenceUser(t, srv, "carol", "/bayeuxhub/presence/chat/x")
	presenceUser(t, srv, "alice", "/chat/x")
	presenceUser(t, srv, "bob", "/chat/x")
	presenceUser(t, srv, "dave", "/chat/x")  // a third member: not tracked
	presenceUser(t, srv, "alice", "/chat/x") // alice's second session is
	presenceUser(t, srv, "erin", "/chat/y")  // a second channel: not tracked
	last := presenceUser(t, srv, "bob", "/chat/x")
	last.unsubscribe("/chat/x") // bob still has a session: no event
	got := presenceSeen(t, watch, 2)
	if strings.Join(got, "|") != "/bayeuxhub/presence/chat/x join alice|/bayeuxhub/presence/chat/x join bob" {
		t.Fatalf("events: %v", got)
	}
	if _, names := apiMembers(t, api, "/chat/x"); names != "alice:2:2,bob:1:1" {
		t.Fatalf("members: %s", names)
	}
	if _, names := apiMembers(t, api, "/chat/y"); names != "" {
		t.Fatalf("members of /chat/y: %s", names)
	}
	if st := srv.Hub().Stats().Presence; st.Untracked != 2 || st.Members != 2 || st.Channels != 1 {
		t.Fatalf("stats: %+v", st)
	}
	checkMetric(t, srv, "bayeuxhub_presence_untracked_total 2")
}

// TestPresenceAcrossNATS: two hubs joined through NATS: each hub's
// subscribers see the members of both join, the query of either hub
// covers both, and when one hub's link dies its members leave on the
// other within the documented bound (here three heartbeats of 400 ms and
// one more; the test waits longer).
func TestPresenceAcrossNATS(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	var brokers []*broker.NATS
	hub := func(name string) *server.Server {
		b, err := broker.NewNATS(broker.NATSOptions{URLs: []string{ns.URL()}, HeartbeatInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		brokers = append(brokers, b)
		return startServer(t, presenceConfig(t, func(cfg *server.Config) {
			cfg.NodeName, cfg.Hub.Broker = name, b
			cfg.Hub.Presence.Heartbeat = 400 * time.Millisecond
		}))
	}
	hubA, hubB := hub("hub-a"), hub("hub-b")
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, b := range brokers {
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush()
	apiA := newAPIClient(t, hubA, testAPIKey)
	watchA := presenceUser(t, hubA, "carol", "/bayeuxhub/presence/chat/x")
	watchB := presenceUser(t, hubB, "carol", "/bayeuxhub/presence/chat/x")
	alice := presenceUser(t, hubA, "alice", "/chat/x")
	presenceUser(t, hubB, "bob", "/chat/x")
	presenceUser(t, hubB, "alice", "/chat/x")
	for _, w := range []*client{watchA, watchB} {
		got := presenceSeen(t, w, 2)
		slices.Sort(got) // alice's and bob's joins come from different hubs
		if strings.Join(got, "|") != "/bayeuxhub/presence/chat/x join alice|/bayeuxhub/presence/chat/x join bob" {
			t.Fatalf("events on %s: %v", w.url, got)
		}
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		out, names := apiMembers(t, apiA, "/chat/x")
		if names != "alice:2:2,bob:1:1" || stringify(out["nodes"]) != `["hub-a","hub-b"]` {
			return fmt.Errorf("API on A: %v", out)
		}
		return nil
	})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, names := askPresenceHTTP(t, alice, "/chat/x"); names != "alice:2,bob:1" {
			return fmt.Errorf("service on A: %s", names)
		}
		return nil
	})

	// B's link to NATS dies (as when B crashes): on A, bob leaves and
	// alice, still on A, stays.
	if err := brokers[1].Close(); err != nil {
		t.Fatal(err)
	}
	if got := presenceSeen(t, watchA, 1); len(got) != 1 || got[0] != "/bayeuxhub/presence/chat/x leave bob" {
		t.Fatalf("on A after B's link died: %v", got)
	}
	if _, names := askPresenceHTTP(t, alice, "/chat/x"); names != "alice:1" {
		t.Fatalf("service on A after B's link died: %s", names)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		out, names := apiMembers(t, apiA, "/chat/x")
		if names != "alice:1:1" || stringify(out["nodes"]) != `["hub-a"]` {
			return fmt.Errorf("API on A: %v", out)
		}
		return nil
	})
}
