package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

// jsRules compiles channel rules for the JetStream history tests.
func jsRules(t *testing.T, rules ...acl.Rule) *acl.Rules {
	t.Helper()
	for i := range rules {
		rules[i].Subscribe, rules[i].Publish = acl.Anyone, acl.Anyone
	}
	r, err := acl.New(rules)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// jsHistory starts a broker named node on ns and returns a JetStream
// history on it.
func jsHistory(t *testing.T, ns *natstest.Server, node string, rules *acl.Rules) (*JetStreamHistory, *NATS, *inbox) {
	t.Helper()
	b, in := startNode(t, node, NATSOptions{URLs: []string{ns.URL()}, ReconnectWait: 20 * time.Millisecond})
	h, err := NewJetStreamHistory(b, JetStreamOptions{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	return h, b, in
}

// jsConn connects to ns; the connection is closed when the test ends.
func jsConn(t *testing.T, ns *natstest.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// jsCtx is a context bounded as the hub bounds a history call.
func jsCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func jsAppend(t *testing.T, h actors.History, channel string, data any, keep actors.Retention) actors.Position {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	pos, err := h.Append(jsCtx(t), &actors.Message{Channel: channel, Data: raw, ClientID: "n1_pub"}, keep)
	if err != nil {
		t.Fatalf("append to %s: %v", channel, err)
	}
	return pos
}

func jsSince(t *testing.T, h actors.History, channel string, after int64) actors.Replay {
	t.Helper()
	r, err := h.Since(jsCtx(t), channel, after)
	if err != nil {
		t.Fatalf("since %d on %s: %v", after, channel, err)
	}
	return r
}

// jsData returns the data of msgs, as strings.
func jsData(msgs []*actors.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Data))
	}
	return out
}

// jsPoll polls fn until it returns nil or total passes.
func jsPoll(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, total, 5*time.Millisecond, fn)
}

// TestJetStreamHistoryAppendSince: ids increase per channel (not
// consecutively: the rule's channels share a stream), every field of a
// message comes back, and Since answers ReplayAll, an id in the middle,
// the newest id, the one before the oldest and an id past the newest.
func TestJetStreamHistoryAppendSince(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	keep := actors.Retention{Max: 100}
	h, _, _ := jsHistory(t, ns, "n1", jsRules(t, acl.Rule{Pattern: "/chat/**", History: acl.History{Size: 100}}))

	if r := jsSince(t, h, "/chat/a", actors.ReplayAll); len(r.Messages) != 0 || r.Oldest != 0 || r.Newest != 0 {
		t.Fatalf("before any append: %+v", r)
	}
	m := &actors.Message{Channel: "/chat/a", Data: json.RawMessage(`{"n":0}`), ID: json.RawMessage(`"m0"`),
		Ext: json.RawMessage(`{"k":[1]}`), ClientID: "n1_abc"}
	first, err := h.Append(jsCtx(t), m, keep)
	if err != nil {
		t.Fatal(err)
	}
	if m.ReplayID != 0 || m.Epoch != "" {
		t.Fatalf("Append changed the caller's message: %+v", m)
	}
	ids := []int64{first.ID}
	var other []int64
	for i := 1; i < 5; i++ {
		other = append(other, jsAppend(t, h, "/chat/b", -i, keep).ID)
		pos := jsAppend(t, h, "/chat/a", i, keep)
		if pos.ID <= ids[len(ids)-1] || pos.Epoch != first.Epoch {
			t.Fatalf("append %d: %+v after %d (epoch %q)", i, pos, ids[len(ids)-1], first.Epoch)
		}
		ids = append(ids, pos.ID)
	}
	if first.Epoch == "" || ids[1] == ids[0]+1 {
		t.Fatalf("epoch %q, ids %v: want an epoch and the other channel's ids in between", first.Epoch, ids)
	}
	if base := uint64(time.Now().UnixMilli()) << 10; uint64(ids[0]) > base || uint64(ids[0]) < base-(60_000<<10) {
		t.Fatalf("first id %d: want the stream's making time in ms times 1024 (about %d)", ids[0], base)
	}

	all := jsSince(t, h, "/chat/a", actors.ReplayAll)
	if got := jsData(all.Messages); strings.Join(got, " ") != `{"n":0} 1 2 3 4` {
		t.Fatalf("ReplayAll: %v", got)
	}
	if all.Oldest != ids[0] || all.Newest != ids[4] || all.Epoch != first.Epoch {
		t.Fatalf("ReplayAll bounds: oldest %d newest %d epoch %q, want %d %d %q", all.Oldest, all.Newest, all.Epoch, ids[0], ids[4], first.Epoch)
	}
	for i, got := range all.Messages {
		if got.ReplayID != ids[i] || got.Epoch != first.Epoch || got.Channel != "/chat/a" || got.ClientID != "n1_pub" && i > 0 {
			t.Fatalf("message %d: %+v", i, got)
		}
	}
	if g := all.Messages[0]; g.ClientID != "n1_abc" || string(g.ID) != `"m0"` || string(g.Ext) != `{"k":[1]}` {
		t.Fatalf("first message's fields: %+v", g)
	}
	if got := jsData(jsSince(t, h, "/chat/a", ids[2]).Messages); strings.Join(got, " ") != "3 4" {
		t.Fatalf("after id %d: %v", ids[2], got)
	}
	if r := jsSince(t, h, "/chat/a", ids[4]); len(r.Messages) != 0 || r.Newest != ids[4] || r.Oldest != ids[0] {
		t.Fatalf("after the newest: %+v", r)
	}
	if r := jsSince(t, h, "/chat/a", ids[0]-1); len(r.Messages) != 5 {
		t.Fatalf("after the one before the oldest: %d messages", len(r.Messages))
	}
	if r := jsSince(t, h, "/chat/a", ids[4]+1000); len(r.Messages) != 0 || r.Newest != ids[4] {
		t.Fatalf("after an id past the newest: %+v", r)
	}
	if got := jsData(jsSince(t, h, "/chat/b", other[0]).Messages); strings.Join(got, " ") != "-2 -3 -4" {
		t.Fatalf("the other channel after its first: %v", got)
	}
	if r := jsSince(t, h, "/chat/none", actors.ReplayAll); len(r.Messages) != 0 || r.Newest != 0 || r.Epoch != first.Epoch {
		t.Fatalf("a channel without messages: %+v", r)
	}
	if r := jsSince(t, h, "/elsewhere", actors.ReplayAll); len(r.Messages) != 0 || r.Newest != 0 {
		t.Fatalf("a channel no rule with history covers: %+v", r)
	}
	if _, err := h.Append(jsCtx(t), &actors.Message{Channel: "/elsewhere", Data: json.RawMessage(`1`)}, keep); !errors.Is(err, actors.ErrHistoryUnavailable) {
		t.Fatalf("append outside the rules: %v", err)
	}
}

// TestJetStreamHistoryRetentionByCount: a channel keeps its rule's last
// Size messages; the horizon is the first retained message, so a replay
// from an id before the one preceding it is outside the history, and
// another channel's traffic does not push a channel's messages out.
func TestJetStreamHistoryRetentionByCount(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	keep := actors.Retention{Max: 3}
	h, _, _ := jsHistory(t, ns, "n1", jsRules(t, acl.Rule{Pattern: "/r/*", History: acl.History{Size: 3}}))
	var ids []int64
	for i := range 6 {
		ids = append(ids, jsAppend(t, h, "/r/a", i, keep).ID)
	}
	for i := range 10 {
		jsAppend(t, h, "/r/b", i, keep)
	}
	r := jsSince(t, h, "/r/a", actors.ReplayAll)
	if got := jsData(r.Messages); strings.Join(got, " ") != "3 4 5" || r.Oldest != ids[3] || r.Newest != ids[5] {
		t.Fatalf("ReplayAll: %v oldest %d newest %d, want 3 4 5 from %d to %d", got, r.Oldest, r.Newest, ids[3], ids[5])
	}
	// ids[2], dropped, is just before the oldest (the channel's ids were
	// consecutive then): nothing after it was dropped.
	if r := jsSince(t, h, "/r/a", ids[2]); strings.Join(jsData(r.Messages), " ") != "3 4 5" || ids[2] < r.Oldest-1 {
		t.Fatalf("after the last dropped id: %+v", r)
	}
	// ids[1] is older than the horizon: nothing fetched, bounds given.
	if r := jsSince(t, h, "/r/a", ids[1]); len(r.Messages) != 0 || ids[1] >= r.Oldest-1 || r.Newest != ids[5] {
		t.Fatalf("after a dropped id: %+v", r)
	}
	// With the other channel's ids in between, the last dropped id of a
	// channel is behind the horizon: the history cannot tell that
	// nothing was dropped between it and the oldest.
	var mixed []int64
	for i := range 4 {
		mixed = append(mixed, jsAppend(t, h, "/r/c", i, keep).ID)
		jsAppend(t, h, "/r/b", i, keep)
	}
	if r := jsSince(t, h, "/r/c", mixed[0]); r.Oldest != mixed[1] || mixed[0] >= r.Oldest-1 || len(r.Messages) != 0 {
		t.Fatalf("after the dropped first of /r/c: %+v (ids %v)", r, mixed)
	}
}

// TestJetStreamHistoryRetentionByTTL: messages older than the rule's TTL
// are gone from replays.
func TestJetStreamHistoryRetentionByTTL(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	keep := actors.Retention{TTL: 300 * time.Millisecond}
	h, _, _ := jsHistory(t, ns, "n1", jsRules(t, acl.Rule{Pattern: "/ttl/**", History: acl.History{TTL: keep.TTL}}))
	start := time.Now()
	a := jsAppend(t, h, "/ttl/x", "a", keep)
	a2 := jsAppend(t, h, "/ttl/x", "b", keep)
	if r := jsSince(t, h, "/ttl/x", actors.ReplayAll); len(r.Messages) != 2 && time.Since(start) < keep.TTL {
		t.Fatalf("young messages: %+v", r)
	}
	jsPoll(t, 10*time.Second, func() error {
		if r := jsSince(t, h, "/ttl/x", actors.ReplayAll); len(r.Messages) != 0 || r.Newest != 0 {
			return fmt.Errorf("still retained: %v", jsData(r.Messages))
		}
		return nil
	})
	if age := time.Since(start); age < keep.TTL {
		t.Fatalf("messages gone after %v, before their TTL of %v", age, keep.TTL)
	}
	b := jsAppend(t, h, "/ttl/x", "c", keep)
	if b.ID <= a.ID || b.Epoch != a.Epoch {
		t.Fatalf("after expiry: %+v, before %+v", b, a)
	}
	// The last id that expired is just before the oldest (no other
	// channel's ids between); the one before it is outside the history.
	if r := jsSince(t, h, "/ttl/x", a2.ID); len(r.Messages) != 1 || r.Oldest != b.ID || a2.ID < r.Oldest-1 {
		t.Fatalf("after the last id that expired: %+v", r)
	}
	if r := jsSince(t, h, "/ttl/x", a.ID); len(r.Messages) != 0 || a.ID >= r.Oldest-1 {
		t.Fatalf("after an older id that expired: %+v", r)
	}
}

// TestJetStreamHistoryAcrossHubs: two hubs (each with its own broker and
// connection) share the stream: one's messages are the other's replay,
// with the same ids and epoch, and their ids interleave in one order per
// channel when both publish at once.
func TestJetStreamHistoryAcrossHubs(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	rules := jsRules(t, acl.Rule{Pattern: "/x/**", History: acl.History{Size: 1000}})
	keep := actors.Retention{Max: 1000}
	h1, _, _ := jsHistory(t, ns, "n1", rules)
	h2, _, _ := jsHistory(t, ns, "n2", rules)
	h3, err := NewJetStreamHistoryConn(jsConn(t, ns), JetStreamOptions{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	p := jsAppend(t, h1, "/x/1", "one", keep)
	for _, h := range []actors.History{h2, h3} {
		r := jsSince(t, h, "/x/1", actors.ReplayAll)
		if len(r.Messages) != 1 || r.Messages[0].ReplayID != p.ID || r.Epoch != p.Epoch || r.Messages[0].Epoch != p.Epoch {
			t.Fatalf("another hub's replay: %+v, stored at %+v", r, p)
		}
	}
	if q := jsAppend(t, h2, "/x/1", "two", keep); q.Epoch != p.Epoch || q.ID <= p.ID {
		t.Fatalf("second hub's append: %+v after %+v", q, p)
	}

	const each = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w, h := range []actors.History{h1, h2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := h.Append(ctx, &actors.Message{Channel: "/x/2", Data: json.RawMessage(fmt.Sprintf("[%d,%d]", w, i))}, keep)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := jsSince(t, h3, "/x/2", actors.ReplayAll)
	if len(r.Messages) != 2*each {
		t.Fatalf("%d messages, want %d", len(r.Messages), 2*each)
	}
	next := [2]int{}
	for i, m := range r.Messages {
		var v [2]int
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v[1] != next[v[0]] || (i > 0 && m.ReplayID <= r.Messages[i-1].ReplayID) {
			t.Fatalf("message %d: %s id %d; want writer %d's %d after id %d", i, m.Data, m.ReplayID, v[0], next[v[0]], r.Messages[max(i-1, 0)].ReplayID)
		}
		next[v[0]]++
	}
}

// TestJetStreamHistoryStreamPerRule: each rule with history has its own
// stream and limits, overlapping rules included; a rule without history
// has none; a hub whose rule says otherwise updates the stream's limits.
func TestJetStreamHistoryStreamPerRule(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	rules := jsRules(t,
		acl.Rule{Pattern: "/a/vip", History: acl.History{Size: 2}},
		acl.Rule{Pattern: "/a/**", History: acl.History{Size: 5, TTL: time.Hour}},
		acl.Rule{Pattern: "/b/*", History: acl.History{TTL: time.Minute}},
		acl.Rule{Pattern: "/c/**"},
	)
	h, _, _ := jsHistory(t, ns, "n1", rules)
	jsAppend(t, h, "/a/vip", 1, actors.Retention{Max: 2})
	jsAppend(t, h, "/a/x/y", 2, actors.Retention{Max: 5, TTL: time.Hour})
	jsAppend(t, h, "/b/z", 3, actors.Retention{TTL: time.Minute})
	if _, err := h.Append(jsCtx(t), &actors.Message{Channel: "/c/q", Data: json.RawMessage(`4`)}, actors.Retention{Max: 1}); !errors.Is(err, actors.ErrHistoryUnavailable) {
		t.Fatalf("append on a rule without history: %v", err)
	}

	js, err := jetstream.New(jsConn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	lister := js.StreamNames(jsCtx(t))
	for n := range lister.Name() {
		names[n] = true
	}
	if lister.Err() != nil {
		t.Fatal(lister.Err())
	}
	if len(names) != 3 {
		t.Fatalf("streams %v, want one per rule with history", names)
	}
	for _, c := range []struct {
		channel, subject string
		perSubject       int64
		age              time.Duration
	}{
		{"/a/vip", ".a.vip", 2, 0},
		{"/a/x/y", ".a.x.y", 5, time.Hour},
		{"/b/z", ".b.z", -1, time.Minute},
	} {
		name, subject, ok := h.StreamOf(c.channel)
		if !ok || !names[name] || !strings.HasPrefix(name, "BAYEUX_HISTORY_") || !strings.HasPrefix(subject, "bayeux.hist.") || !strings.HasSuffix(subject, c.subject) {
			t.Fatalf("StreamOf(%s) = %q %q %v among %v", c.channel, name, subject, ok, names)
		}
		s, err := js.Stream(jsCtx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if cfg.MaxMsgsPerSubject != c.perSubject || cfg.MaxAge != c.age || cfg.Subjects[0] != strings.TrimSuffix(subject, c.subject)+".>" {
			t.Fatalf("stream of %s: per subject %d, age %v, subjects %v", c.channel, cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.Subjects)
		}
		if m, err := s.GetLastMsgForSubject(jsCtx(t), subject); err != nil || !strings.HasPrefix(string(m.Data), `{"v":1,"c":"`+c.channel+`"`) {
			t.Fatalf("stored record of %s: %v %s", c.channel, err, m.Data)
		}
	}
	if _, _, ok := h.StreamOf("/c/q"); ok {
		t.Fatal("StreamOf a channel whose rule keeps no history")
	}

	// Another hub whose rule for /a/** keeps 7 for 30 s: its first append
	// updates the stream, the ids and epoch go on.
	before := jsSince(t, h, "/a/x/y", actors.ReplayAll)
	h2, _, _ := jsHistory(t, ns, "n2", jsRules(t, acl.Rule{Pattern: "/a/**", History: acl.History{Size: 7, TTL: 30 * time.Second}}))
	p := jsAppend(t, h2, "/a/x/y", 5, actors.Retention{Max: 7, TTL: 30 * time.Second})
	name, _, _ := h.StreamOf("/a/x/y")
	s, err := js.Stream(jsCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.MaxMsgsPerSubject != 7 || cfg.MaxAge != 30*time.Second {
		t.Fatalf("updated stream: per subject %d, age %v", cfg.MaxMsgsPerSubject, cfg.MaxAge)
	}
	if p.Epoch != before.Epoch || p.ID <= before.Newest {
		t.Fatalf("after the update: %+v, before %+v", p, before)
	}
}

// TestJetStreamHistoryUnavailable: with NATS gone, or JetStream off, or
// before the broker starts, Append and Since fail at once (well within
// their context) with actors.ErrHistoryUnavailable; when NATS is back,
// the history works again with the same stream.
func TestJetStreamHistoryUnavailable(t *testing.T) {
	t.Parallel()
	rules := jsRules(t, acl.Rule{Pattern: "/u/**", History: acl.History{Size: 10}})
	keep := actors.Retention{Max: 10}
	bounded := func(what string, f func(ctx context.Context) error) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := f(ctx)
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Fatalf("%s took %v, beyond its context's second", what, took)
		}
		if !errors.Is(err, actors.ErrHistoryUnavailable) {
			t.Fatalf("%s: %v, want ErrHistoryUnavailable", what, err)
		}
		return err
	}
	appendTo := func(h actors.History) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := h.Append(ctx, &actors.Message{Channel: "/u/1", Data: json.RawMessage(`1`)}, keep)
			return err
		}
	}
	since := func(h actors.History) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := h.Since(ctx, "/u/1", actors.ReplayAll)
			return err
		}
	}

	t.Run("broker not started", func(t *testing.T) {
		t.Parallel()
		b, err := NewNATS(NATSOptions{URLs: []string{"nats://127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewJetStreamHistory(b, JetStreamOptions{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		if err := bounded("append before Start", appendTo(h)); !errors.Is(err, ErrNotStarted) {
			t.Fatalf("append before Start: %v", err)
		}
	})

	t.Run("NATS down", func(t *testing.T) {
		t.Parallel()
		ns := natstest.Run(t, 0)
		h, b, _ := jsHistory(t, ns, "n1", rules)
		p := jsAppend(t, h, "/u/1", "before", keep)
		ns.Stop()
		jsPoll(t, 10*time.Second, func() error {
			if b.Connected() {
				return errors.New("still connected")
			}
			return nil
		})
		bounded("append with NATS down", appendTo(h))
		bounded("replay with NATS down", since(h))
		ns.Restart()
		jsPoll(t, 10*time.Second, func() error {
			_, err := h.Append(jsCtx(t), &actors.Message{Channel: "/u/1", Data: json.RawMessage(`"after"`)}, keep)
			return err
		})
		r := jsSince(t, h, "/u/1", p.ID)
		if got := jsData(r.Messages); len(got) != 1 || got[0] != `"after"` || r.Epoch != p.Epoch {
			t.Fatalf("after NATS came back: %v, epoch %q (was %q)", got, r.Epoch, p.Epoch)
		}
	})

	t.Run("NATS silent", func(t *testing.T) {
		t.Parallel()
		// Connected, but what listens for JetStream requests never
		// answers: the context bounds the call.
		ns := natstest.RunWith(t, 0, func(o *server.Options) { o.JetStream = false })
		mute := jsConn(t, ns)
		if _, err := mute.Subscribe("$JS.API.>", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := mute.Flush(); err != nil {
			t.Fatal(err)
		}
		h, err := NewJetStreamHistoryConn(jsConn(t, ns), JetStreamOptions{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		bounded("append to a silent JetStream", appendTo(h))
		bounded("replay from a silent JetStream", since(h))
	})

	t.Run("JetStream off", func(t *testing.T) {
		t.Parallel()
		ns := natstest.RunWith(t, 0, func(o *server.Options) { o.JetStream = false })
		h, _, _ := jsHistory(t, ns, "n1", rules)
		if err := bounded("append without JetStream", appendTo(h)); !strings.Contains(err.Error(), "JetStream enabled") {
			t.Fatalf("append without JetStream: %v, want a hint", err)
		}
		bounded("replay without JetStream", since(h))
	})
}

// TestJetStreamEnvelopeCarriesReplayIDs: a broker with a JetStream
// history sends a message's replay id and epoch; another node with one
// delivers them, a node keeping its own history drops them (and stamps
// the message itself), and a broker without one sends none.
func TestJetStreamEnvelopeCarriesReplayIDs(t *testing.T) {
	t.Parallel()
	ns := natstest.Run(t, 0)
	rules := jsRules(t, acl.Rule{Pattern: "/e/**", History: acl.History{Size: 10}})
	_, a, _ := jsHistory(t, ns, "a", rules)
	_, b, inB := jsHistory(t, ns, "b", rules)
	c, inC := startNode(t, "c", NATSOptions{URLs: []string{ns.URL()}})
	for _, n := range []*NATS{b, c} {
		if err := n.Subscribe("/e/1"); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, a, b, c)
	if err := a.Publish(&actors.Message{Channel: "/e/1", Data: json.RawMessage(`1`), ReplayID: 42, Epoch: "ep"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(&actors.Message{Channel: "/e/1", Data: json.RawMessage(`2`), ReplayID: 43, Epoch: "ep"}); err != nil {
		t.Fatal(err)
	}
	jsPoll(t, 10*time.Second, func() error {
		if n, m := len(inB.messages()), len(inC.messages()); n != 2 || m != 1 {
			return fmt.Errorf("b has %d of 2, c %d of 1", n, m)
		}
		return nil
	})
	for _, m := range inB.messages() {
		switch string(m.Data) {
		case "1":
			if m.ReplayID != 42 || m.Epoch != "ep" {
				t.Fatalf("b got %+v from a", m)
			}
		default:
			if m.ReplayID != 0 || m.Epoch != "" {
				t.Fatalf("b got %+v from c, which has no shared history", m)
			}
		}
	}
	if m := inC.messages()[0]; m.ReplayID != 0 || m.Epoch != "" || string(m.Data) != "1" {
		t.Fatalf("c, without a shared history, got %+v", m)
	}
}

// TestHistoryRecordRoundTrip: a stored record keeps what a delivery
// needs; an envelope with replay ids round-trips them.
func TestHistoryRecordRoundTrip(t *testing.T) {
	m := &actors.Message{Channel: "/a/\"b\"", Data: json.RawMessage(`{"x":[1,2]}`), ID: json.RawMessage(`7`),
		Ext: json.RawMessage(`{"k":true}`), ClientID: "n1_abc", ReplayID: 99, Epoch: "e"}
	rec := appendHistoryRecord(nil, m)
	got, err := decodeHistoryRecord(rec)
	if err != nil {
		t.Fatalf("%v: %s", err, rec)
	}
	if got.Channel != m.Channel || string(got.Data) != string(m.Data) || string(got.ID) != string(m.ID) ||
		string(got.Ext) != string(m.Ext) || got.ClientID != m.ClientID || got.ReplayID != 0 || strings.Contains(string(rec), `"r":`) {
		t.Fatalf("record %s decoded as %+v", rec, got)
	}
	if got, err := decodeHistoryRecord(appendHistoryRecord(nil, &actors.Message{Channel: "/c"})); err != nil || string(got.Data) != "null" {
		t.Fatalf("bare record: %+v, %v", got, err)
	}
	for _, bad := range []string{`{`, `{"c":"/a","d":1}`, `{"v":2,"c":"/a","d":1}`, `{"v":1,"d":1}`} {
		if _, err := decodeHistoryRecord([]byte(bad)); err == nil {
			t.Errorf("decodeHistoryRecord(%s): want an error", bad)
		}
	}
	env := appendEnvelopeBody(appendEnvelopeHead(nil, "n1/00", 1), m, true)
	e, err := decodeEnvelope(env)
	if err != nil || e.ReplayID != 99 || e.Epoch != "e" {
		t.Fatalf("envelope %s: %+v, %v", env, e, err)
	}
	if env := appendEnvelopeTail(appendEnvelopeHead(nil, "n1/00", 1), m); strings.Contains(string(env), `"r":`) {
		t.Fatalf("envelope without replay ids: %s", env)
	}
}

// TestNewJetStreamHistoryOptions: bad options are refused.
func TestNewJetStreamHistoryOptions(t *testing.T) {
	b, err := NewNATS(NATSOptions{URLs: []string{"nats://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []JetStreamOptions{{Replicas: 6}, {Replicas: -1}, {MaxBytes: -1}, {Storage: 7}} {
		if _, err := NewJetStreamHistory(b, o); err == nil {
			t.Errorf("%+v: want an error", o)
		}
	}
	if _, err := NewJetStreamHistoryConn(nil, JetStreamOptions{}); err == nil {
		t.Error("nil connection: want an error")
	}
	if _, err := NewJetStreamHistory(nil, JetStreamOptions{}); err == nil {
		t.Error("nil broker: want an error")
	}
	if _, err := newJetStreamHistory(JetStreamOptions{SubjectPrefix: "a..b"}); err == nil {
		t.Error("bad prefix: want an error")
	}
}
