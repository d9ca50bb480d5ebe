package actors

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// historyHub starts a hub whose /h/** channels keep history.
func historyHub(t *testing.T, hist acl.History, opts Options) *Hub {
	t.Helper()
	rules, err := acl.New([]acl.Rule{
		{Pattern: "/h/**", Subscribe: acl.Anyone, Publish: acl.Anyone, History: hist},
		{Pattern: "/**", Subscribe: acl.Anyone, Publish: acl.Anyone},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Rules = rules
	return startHub(t, opts)
}

// replaySubscribe subscribes a fresh remote client to channel with a
// replay id and returns its id and the subscribe's reply and the
// deliveries that came with it.
func replaySubscribe(t *testing.T, h *Hub, channel string, after int64) (string, map[string]any, []map[string]any) {
	t.Helper()
	id := remoteClient(t, h)
	raw, _ := json.Marshal(channel)
	ext, _ := json.Marshal(map[string]any{"replay": map[string]int64{channel: after}})
	r := call(t, h, &protocol.Message{Channel: protocol.MetaSubscribe, ClientID: id,
		Subscription: protocol.Subscription{Names: []string{channel}, Raw: raw}, Ext: ext})
	return id, r[0], r[1:]
}

func replayIDOf(t *testing.T, m map[string]any) int64 {
	t.Helper()
	ext, _ := m["ext"].(map[string]any)
	id, ok := ext["replayId"].(float64)
	if !ok {
		t.Fatalf("delivery without ext.replayId: %v", m)
	}
	return int64(id)
}

func TestReplayAllThenLive(t *testing.T) {
	t.Parallel()
	h := historyHub(t, acl.History{Size: 5}, Options{})
	for i := range 8 {
		if err := h.Publish("/h/a", i); err != nil {
			t.Fatal(err)
		}
	}
	id, reply, _ := replaySubscribe(t, h, "/h/a", ReplayAll)
	if reply["successful"] != true {
		t.Fatalf("subscribe: %v", reply)
	}
	if err := h.Publish("/h/a", 8); err != nil {
		t.Fatal(err)
	}
	got := deliveries(t, h, id, 6)
	var data []string
	var last int64
	for _, m := range got {
		data = append(data, fmt.Sprint(m["data"]))
		rid := replayIDOf(t, m)
		if rid <= last {
			t.Errorf("replay ids not increasing: %d after %d", rid, last)
		}
		last = rid
	}
	if strings.Join(data, ",") != "3,4,5,6,7,8" {
		t.Fatalf("got %v, want the 5 retained (3..7) then the live 8", data)
	}
	// From a replay id: exactly what came after it.
	first := replayIDOf(t, got[0])
	id2, reply, _ := replaySubscribe(t, h, "/h/a", first+2)
	if reply["successful"] != true {
		t.Fatalf("subscribe from an id: %v", reply)
	}
	got = deliveries(t, h, id2, 3)
	if len(got) != 3 || got[0]["data"] != float64(6) || got[2]["data"] != float64(8) {
		t.Fatalf("replay after id %d: %v", first+2, got)
	}
}

func TestReplayIDOutsideHistoryIsRefused(t *testing.T) {
	t.Parallel()
	h := historyHub(t, acl.History{Size: 3}, Options{})
	for i := range 10 {
		_ = h.Publish("/h/b", i)
	}
	id, _, _ := replaySubscribe(t, h, "/h/b", ReplayAll)
	got := deliveries(t, h, id, 3)
	oldest := replayIDOf(t, got[0])
	for _, after := range []int64{oldest - 2, oldest + 1000, 12345} {
		_, reply, _ := replaySubscribe(t, h, "/h/b", after)
		if reply["successful"] != false || !strings.HasPrefix(fmt.Sprint(reply["error"]), "400:/h/b:Replay id") {
			t.Errorf("replay from %d (oldest %d): %v", after, oldest, reply)
		}
	}
	// The one just before the oldest loses nothing: it is served.
	if _, reply, _ := replaySubscribe(t, h, "/h/b", oldest-1); reply["successful"] != true {
		t.Errorf("replay from just before the oldest: %v", reply)
	}
	// A refused subscribe leaves the client unsubscribed.
	if _, reply, _ := replaySubscribe(t, h, "/h/b", oldest-5); reply["successful"] != false {
		t.Fatal(reply)
	}
}

func TestReplaySalesforceShapeAndHandshake(t *testing.T) {
	t.Parallel()
	h := historyHub(t, acl.History{Size: 10, Shape: acl.ShapeSalesforce}, Options{})
	r := call(t, h, &protocol.Message{Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}})
	if ext, _ := r[0]["ext"].(map[string]any); ext["replay"] != true {
		t.Errorf("handshake reply without ext.replay true: %v", r[0])
	}
	_ = h.Publish("/h/sf", map[string]any{"x": 1}, WithExt(map[string]any{"mine": true}))
	id, _, _ := replaySubscribe(t, h, "/h/sf", ReplayAll)
	got := deliveries(t, h, id, 1)
	data, _ := got[0]["data"].(map[string]any)
	event, _ := data["event"].(map[string]any)
	if event["replayId"] == nil || event["replayId"] != float64(replayIDOf(t, got[0])) {
		t.Errorf("no data.event.replayId matching ext.replayId: %v", got[0])
	}
	if payload, _ := data["payload"].(map[string]any); payload["x"] != float64(1) {
		t.Errorf("payload: %v", got[0])
	}
	if ext, _ := got[0]["ext"].(map[string]any); ext["mine"] != true || ext["replayEpoch"] == nil {
		t.Errorf("the publisher's ext and the epoch: %v", got[0])
	}
}

// 10,000 publishes race a replaying subscribe: the subscriber gets every
// message from its replay id on, once each, in replay id order.
func TestReplaySeam(t *testing.T) {
	t.Parallel()
	h := historyHub(t, acl.History{Size: 20000}, Options{})
	const n = 10000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := h.Publish("/h/seam", i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	poll(t, "a few publishes", func() bool { return h.Stats().Published > n/10 })
	id, reply, _ := replaySubscribe(t, h, "/h/seam", ReplayAll)
	if reply["successful"] != true {
		t.Fatal(reply)
	}
	wg.Wait()
	var got []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		for _, r := range call(t, h, &protocol.Message{Channel: protocol.MetaConnect, ClientID: id, ConnectionType: protocol.LongPolling,
			Advice: &protocol.Advice{Timeout: protocol.Int(0)}}) {
			if r["channel"] != protocol.MetaConnect {
				got = append(got, r)
			}
		}
	}
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m["data"] != float64(i) {
			t.Fatalf("message %d is %v: gap, duplicate or disorder at the seam", i, m["data"])
		}
	}
}
