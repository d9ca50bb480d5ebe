package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// counter is an actor that counts the messages it receives and signals
// when it has seen want of them.
type counter struct {
	want int64
	n    int64
	done *sync.WaitGroup
}

func (c *counter) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *Message, int:
		c.n++
		if c.n == c.want {
			c.done.Done()
		}
	}
}

// BenchmarkRawActorSend is the baseline for the in-process figures: plain
// protoactor-go sends from one goroutine to 100 actors, no hub.
func BenchmarkRawActorSend(b *testing.B) {
	system := actor.NewActorSystem()
	const subs = 100
	var done sync.WaitGroup
	done.Add(subs)
	pids := make([]*actor.PID, subs)
	for i := range pids {
		pids[i] = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &counter{want: int64(b.N), done: &done} }))
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, p := range pids {
			system.Root.Send(p, i)
		}
	}
	done.Wait()
	b.ReportMetric(float64(b.N*subs)/time.Since(start).Seconds(), "deliveries/s")
	for _, p := range pids {
		system.Root.Stop(p)
	}
}

// BenchmarkFanoutLocalPID: one channel, 100 actor subscribers (by PID), no
// HTTP; each publish is delivered 100 times.
func BenchmarkFanoutLocalPID(b *testing.B) {
	benchFanout(b, func(h *Hub, c *LocalClient, want int64, done *sync.WaitGroup) error {
		pid := h.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &counter{want: want, done: done} }))
		return c.SubscribePID("/bench", pid)
	})
}

// BenchmarkFanoutLocalCallback: one channel, 100 callback subscribers.
func BenchmarkFanoutLocalCallback(b *testing.B) {
	benchFanout(b, func(h *Hub, c *LocalClient, want int64, done *sync.WaitGroup) error {
		var n atomic.Int64
		return c.Subscribe("/bench", func(*Message) {
			if n.Add(1) == want {
				done.Done()
			}
		})
	})
}

func benchFanout(b *testing.B, subscribe func(*Hub, *LocalClient, int64, *sync.WaitGroup) error) {
	h, err := Start(actor.NewActorSystem(), Options{MaxSessionsPerIP: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	const subs = 100
	var done sync.WaitGroup
	done.Add(subs)
	for range subs {
		c, err := h.NewLocalClient("")
		if err != nil {
			b.Fatal(err)
		}
		if err := subscribe(h, c, int64(b.N), &done); err != nil {
			b.Fatal(err)
		}
	}
	pub, _ := h.NewLocalClient("")
	data := json.RawMessage(`{"n":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := pub.Publish("/bench", data); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
	b.ReportMetric(float64(b.N*subs)/time.Since(start).Seconds(), "deliveries/s")
}

// BenchmarkFanoutRemote: one channel, 100 remote sessions long-polling
// through HandleRemote (the transport's entry, without HTTP), each publish
// delivered 100 times.
func BenchmarkFanoutRemote(b *testing.B) {
	h, err := Start(actor.NewActorSystem(), Options{MaxSessionsPerIP: -1, MaxQueue: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	const subs = 100
	ids := make([]string, subs)
	for i := range ids {
		ids[i] = remoteClient(b, h, "/bench")
	}
	var got atomic.Int64
	want := int64(b.N) * subs
	all := make(chan struct{}) // closed once every delivery has arrived
	var allOnce sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, id := range ids {
		connect := []*protocol.Message{connectMsg(id)}
		wg.Go(func() {
			for ctx.Err() == nil && got.Load() < want {
				parts := h.HandleRemote(ctx, RemoteRequest{Messages: connect})
				if n := len(parts) - 1; n > 0 && got.Add(int64(n)) >= want {
					allOnce.Do(func() { close(all) })
				}
			}
		})
	}
	pub, _ := h.NewLocalClient("")
	data := json.RawMessage(`{"n":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		_ = pub.Publish("/bench", data)
	}
	<-all
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "deliveries/s")
	b.StopTimer()
	cancel()
	wg.Wait()
}

// BenchmarkPublishRemote: one remote client publishing one message per
// request through HandleRemote, no subscribers (dispatch and ack cost).
func BenchmarkPublishRemote(b *testing.B) {
	h, err := Start(actor.NewActorSystem(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	id := remoteClient(b, h)
	m := []*protocol.Message{publishMsg(id, "/bench", `{"n":1}`)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if parts := h.HandleRemote(context.Background(), RemoteRequest{Messages: m}); len(parts) != 1 {
			b.Fatal(fmt.Sprint(parts))
		}
	}
}

// BenchmarkHandshakeDisconnect: session churn through HandleRemote.
func BenchmarkHandshakeDisconnect(b *testing.B) {
	h, err := Start(actor.NewActorSystem(), Options{MaxSessionsPerIP: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	hs := []*protocol.Message{{Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := h.HandleRemote(context.Background(), RemoteRequest{Messages: hs})
		var v struct{ ClientID string }
		_ = json.Unmarshal(r[0], &v)
		h.HandleRemote(context.Background(), RemoteRequest{Messages: []*protocol.Message{{Channel: protocol.MetaDisconnect, ClientID: v.ClientID}}})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
