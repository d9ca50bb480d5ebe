package loadgen

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestReach holds 40 WebSocket clients on /bench/reach against bayeuxhub;
// once they are ready, a long-polling client publishes two messages
// stamped with their publish time, and the run ends as soon as both have
// reached every client.
func TestReach(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportWebSocket, TransportLongPolling)
	pubErr := make(chan error, 1)
	pid := os.Getpid()
	res, err := Run(t.Context(), Config{
		URL: url, Transport: TransportWebSocket, Kind: KindReach, Subscribers: 40, Expect: 2,
		Hold: 5 * time.Minute, ServerPIDs: []int{pid, pid},
		OnReady: func(n int) {
			if n != 40 {
				t.Errorf("ready with %d clients", n)
			}
			go func() {
				c := &Client{HC: NewHTTPClient(4), URL: url, Timeout: time.Second}
				err := c.Handshake(context.Background())
				for seq := range uint64(2) {
					if err == nil {
						_, err = c.Publish(context.Background(), []Payload{{Channel: "/bench/reach", TS: time.Now().UnixNano(), Seq: seq}}, 0)
					}
				}
				pubErr <- err
			}()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	s := res.Reach
	if s == nil {
		t.Fatal("no reach stats")
	}
	if s.Clients != 40 || s.Received != 80 || s.Messages != 2 || s.Complete != 40 || s.EndedBy != "expect" || s.Repeated != 0 {
		t.Errorf("reach %+v", s)
	}
	if s.FirstMS <= 0 || s.LastMS < s.FirstMS || s.Latency.Count != 80 || len(s.PerMessage) != 2 || s.PerMessage[0].Deliveries != 40 {
		t.Errorf("latency: first %.2f last %.2f %+v %+v", s.FirstMS, s.LastMS, s.Latency, s.PerMessage)
	}
	if s.ServerRSS <= 0 || s.GenRSS <= 0 || s.ServerRSS < s.GenRSS {
		t.Errorf("rss: server %d (two PIDs summed), generator %d", s.ServerRSS, s.GenRSS)
	}
	if res.Config.Channel != "/bench/reach" || res.Config.Hold != 5*time.Minute {
		t.Errorf("config %+v", res.Config)
	}
	var sb strings.Builder
	res.WriteSummary(&sb)
	if !strings.Contains(sb.String(), "40 clients got every one of the 2 expected") {
		t.Errorf("summary:\n%s", sb.String())
	}
}

// TestReachHold: without --expect the run waits for the hold and counts
// the clients that got every message seen.
func TestReachHold(t *testing.T) {
	t.Parallel()
	_, url := startFakeCentrifugo(t)
	res, err := Run(t.Context(), Config{URL: url, Protocol: ProtocolCentrifugo, Kind: KindReach, Subscribers: 5,
		Hold: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Reach; s == nil || s.Clients != 5 || s.EndedBy != "hold" || s.Received != 0 || res.Config.Channel != "bench_reach" {
		t.Errorf("reach %+v, channel %q", s, res.Config.Channel)
	}
}
