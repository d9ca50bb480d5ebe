package loadgen

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// startHub starts a bayeuxhub on a free loopback port serving only the
// given transports and returns its Bayeux endpoint.
func startHub(t *testing.T, transports ...string) string {
	t.Helper()
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-", Transports: transports,
		Hub: actors.Options{PollTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return strings.TrimSuffix(srv.URL(), "/") + "/cometd"
}

func TestWSURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:8080/cometd": "ws://127.0.0.1:8080/cometd",
		"https://example.com/cometd":   "wss://example.com/cometd",
		"ws://127.0.0.1/cometd":        "ws://127.0.0.1/cometd",
	} {
		if got, err := WSURL(in); err != nil || got != want {
			t.Errorf("WSURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := WSURL("ftp://x"); err == nil {
		t.Error("WSURL accepted ftp://")
	}
}

// TestWSRunFanout runs a small fanout over WebSocket against a bayeuxhub
// that serves websocket only, so that any long-polling request would
// fail: every message must reach every subscriber once and in order.
func TestWSRunFanout(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportWebSocket)
	res, err := Run(t.Context(), Config{
		URL: url, Transport: TransportWebSocket, Kind: KindPubSub,
		Subscribers: 20, Publishers: 4, Channels: 1, SubsPerClient: 1, Size: 100, Batch: 1,
		Duration: 10 * time.Second, Drain: 5 * time.Second, MaxMessages: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.Transport != TransportWebSocket {
		t.Errorf("transport %q", res.Config.Transport)
	}
	if res.PublishedTotal != 200 || res.Expected != 200*20 || res.DeliveredTotal != 200*20 {
		t.Errorf("published %d, expected %d, delivered %d; want 200, 4000, 4000",
			res.PublishedTotal, res.Expected, res.DeliveredTotal)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Stray != 0 || res.Unacked != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, stray %d, unacked %d",
			res.Lost, res.Duplicated, res.OutOfOrder, res.Stray, res.Unacked)
	}
	if res.Errors != 0 || res.SetupFailed != 0 {
		t.Errorf("errors %d, setup failed %d: %v", res.Errors, res.SetupFailed, res.FirstErrors)
	}
	if res.Latency.Count == 0 {
		t.Error("no latency recorded")
	}
}

// TestWSRunChat spreads publishers over several rooms with batches.
func TestWSRunChat(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportWebSocket)
	res, err := Run(t.Context(), Config{
		URL: url, Transport: TransportWebSocket, Kind: KindPubSub,
		Subscribers: 30, Publishers: 6, Channels: 6, SubsPerClient: 2, Size: 50, Batch: 3,
		Duration: 10 * time.Second, Drain: 5 * time.Second, MaxMessages: 300,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishedTotal != 300 || res.Expected == 0 || res.DeliveredTotal != res.Expected {
		t.Errorf("published %d, expected %d, delivered %d", res.PublishedTotal, res.Expected, res.DeliveredTotal)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Errors != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d, errors %d: %v",
			res.Lost, res.Duplicated, res.OutOfOrder, res.Errors, res.FirstErrors)
	}
}

// TestWSRunIdleAndChurn checks the two scenarios without traffic.
func TestWSRunIdleAndChurn(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportWebSocket)
	res, err := Run(t.Context(), Config{URL: url, Transport: TransportWebSocket, Kind: KindIdle,
		Subscribers: 10, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != 10 || res.Errors != 0 {
		t.Errorf("idle: held %d, errors %d: %v", res.Held, res.Errors, res.FirstErrors)
	}
	res, err = Run(t.Context(), Config{URL: url, Transport: TransportWebSocket, Kind: KindChurn,
		Subscribers: 4, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions == 0 || res.Errors != 0 {
		t.Errorf("churn: %d sessions, errors %d: %v", res.Sessions, res.Errors, res.FirstErrors)
	}
}

// TestWSClientInOrder drives WSClient directly: deliveries are pushed in
// publishing order while the subscriber's connect is held, and the
// publisher's connect and publishes share its socket.
func TestWSClientInOrder(t *testing.T) {
	t.Parallel()
	wsURL, err := WSURL(startHub(t, TransportWebSocket, TransportLongPolling))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const n = 100
	var (
		mu   sync.Mutex
		seqs []int64
		got  = make(chan struct{})
	)
	sub := &WSClient{URL: wsURL, OnDeliver: func(m *Msg, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !m.Bench || string(m.Channel) != "/bench/0" {
			t.Errorf("unexpected delivery on %s", m.Channel)
			return
		}
		seqs = append(seqs, m.Seq)
		if len(seqs) == n {
			close(got)
		}
	}}
	defer sub.Close()
	if err := sub.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(ctx, []string{"/bench/0"}); err != nil {
		t.Fatal(err)
	}
	loopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	loop := func(c *WSClient) {
		defer wg.Done()
		for loopCtx.Err() == nil {
			if _, err := c.Connect(loopCtx); err != nil && loopCtx.Err() == nil {
				t.Errorf("connect: %v", err)
				return
			}
		}
	}
	pub := &WSClient{URL: wsURL}
	defer pub.Close()
	if err := pub.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go loop(sub)
	go loop(pub)
	for i := range n {
		acked, err := pub.Publish(ctx, []Payload{{Channel: "/bench/0", TS: time.Now().UnixNano(), Pub: 0, Seq: uint64(i)}}, 64)
		if err != nil || !acked[0] {
			t.Fatalf("publish %d: acked %v, %v", i, acked, err)
		}
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d deliveries", len(seqs), n)
	}
	stop()
	wg.Wait()
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("delivery %d has seq %d: %v", i, s, seqs)
		}
	}
	if err := sub.Disconnect(ctx); err != nil {
		t.Errorf("disconnect: %v", err)
	}
}

// TestWSClientRehandshake checks that an unknown client id asks for a new
// handshake, as on long-polling.
func TestWSClientRehandshake(t *testing.T) {
	t.Parallel()
	wsURL, _ := WSURL(startHub(t, TransportWebSocket))
	c := &WSClient{URL: wsURL}
	defer c.Close()
	c.SetClientID("no-such-client")
	if _, err := c.Connect(t.Context()); !errors.Is(err, ErrRehandshake) {
		t.Fatalf("connect with an unknown id: %v, want ErrRehandshake", err)
	}
	if err := c.Handshake(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(t.Context()); err != nil {
		t.Fatalf("connect after the new handshake: %v", err)
	}
}

// TestWSNotServed checks that a server without the websocket transport
// makes the run fail at once, saying so.
func TestWSNotServed(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportLongPolling)
	_, err := Run(t.Context(), Config{URL: url, Transport: TransportWebSocket, Kind: KindPubSub,
		Subscribers: 5, Publishers: 1, Duration: time.Second})
	if !errors.Is(err, ErrNoWebSocket) {
		t.Fatalf("run against a long-polling-only server: %v, want ErrNoWebSocket", err)
	}
	if !strings.Contains(err.Error(), "websocket") {
		t.Errorf("error does not say why: %v", err)
	}
}
