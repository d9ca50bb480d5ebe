package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
)

// TestReplayClusterSalesforceShape: with history-shape salesforce, a
// message published on one hub reaches another hub's subscriber live and
// in its replay in the Salesforce shape, with the same replay id.
func TestReplayClusterSalesforceShape(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { // last, after the hubs' shutdown
		close(stop)
		wg.Wait()
	})
	ns := natstest.Run(t, 0)
	rules := replayRules(t, acl.ShapeSalesforce)
	a := replayHub(t, ns, "a", rules)
	c := replayHub(t, ns, "c", rules)
	const channel = "/replay/sf"
	subscribe := func(name string) *replaySub {
		t.Helper()
		s := &replaySub{name: name, channel: channel, hubs: []string{c.URL()}, http: &http.Client{Timeout: 60 * time.Second}}
		joined := make(chan struct{}, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(stop, joined)
		}()
		<-joined
		if _, _, err := s.state(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	live := subscribe("live on c")
	p := newClient(t, a).start()
	for n := range 3 {
		if r := p.publish(channel, msg{"n": n}); r["successful"] != true {
			t.Fatalf("publish: %v", r)
		}
	}
	check := func(who string, got []replayDelivery) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%s: %d messages", who, len(got))
		}
		for i, d := range got {
			event, _ := d.data["event"].(map[string]any)
			raw, _ := event["replayId"].(json.Number)
			id, _ := raw.Int64()
			if d.n != int64(i) || id != d.replayID || id == 0 {
				t.Fatalf("%s: message %d: %v, ext replay id %d", who, i, d.data, d.replayID)
			}
		}
	}
	pollFor := func(s *replaySub) {
		t.Helper()
		checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
			n, _, err := s.state()
			if err != nil {
				t.Fatal(err)
			}
			if n < 3 {
				return fmt.Errorf("%s: %d of 3 messages", s.name, n)
			}
			return nil
		})
	}
	pollFor(live)
	check("live on c", live.deliveries())

	// A replay from -2 on c, a hub that stored none of them itself.
	replayed := subscribe("replay on c")
	pollFor(replayed)
	check("replay on c", replayed.deliveries())
	for i, d := range replayed.deliveries() {
		if want := live.deliveries()[i].replayID; d.replayID != want || !strings.EqualFold(d.epoch, live.deliveries()[i].epoch) {
			t.Fatalf("replayed message %d: id %d epoch %q, live %d", i, d.replayID, d.epoch, want)
		}
	}
}
