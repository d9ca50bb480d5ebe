package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// wsBenchServer serves a hub over WebSocket for a benchmark.
func wsBenchServer(b *testing.B) (*actors.Hub, string) {
	b.Helper()
	return wsBenchServerWith(b, WebSocketOptions{})
}

// wsBenchServerWith is wsBenchServer with WebSocket options.
func wsBenchServerWith(b *testing.B, opts WebSocketOptions) (*actors.Hub, string) {
	b.Helper()
	hub, err := actors.Start(actor.NewActorSystem(), actors.Options{ConnectionTypes: DefaultTypes()})
	if err != nil {
		b.Fatal(err)
	}
	ws := NewWebSocket(hub, opts)
	srv := httptest.NewServer(ws.Wrap(NewLongPolling(hub, Options{})))
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hub.Drain(ctx)
		_ = ws.Close(ctx)
		srv.Close()
		_ = hub.Shutdown(ctx)
		hub.System().Shutdown()
	})
	return hub, "ws" + strings.TrimPrefix(srv.URL, "http") + "/cometd"
}

// wsBenchClient handshakes, connects and subscribes to channel (if not
// empty) on a new socket and returns it with its client id.
func wsBenchClient(b *testing.B, url, channel string) (*websocket.Conn, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadLimit(-1)
	b.Cleanup(func() { _ = conn.CloseNow() })
	call := func(m string) map[string]any {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			b.Fatal(err)
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var out []map[string]any
		if err := json.Unmarshal(data, &out); err != nil || len(out) == 0 || out[0]["successful"] != true {
			b.Fatalf("%s: %s", m, data)
		}
		return out[0]
	}
	id := call(`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}`)["clientId"].(string)
	call(`{"channel":"/meta/connect","connectionType":"websocket","clientId":"` + id + `"}`)
	if channel != "" {
		call(`{"channel":"/meta/subscribe","subscription":"` + channel + `","clientId":"` + id + `"}`)
	}
	return conn, id
}

// BenchmarkWebSocketPush: hub.Publish to 10 WebSocket subscribers that
// read as fast as they can, at most 256 messages ahead of the slowest; one
// op is one message published, delivered to all of them.
func BenchmarkWebSocketPush(b *testing.B) {
	const subscribers, window = 10, 256
	hub, url := wsBenchServer(b)
	var wg sync.WaitGroup
	got := make([]int, subscribers)
	ahead := make([]chan struct{}, subscribers) // a token per message not read yet
	for i := range subscribers {
		conn, _ := wsBenchClient(b, url, "/bench")
		ahead[i] = make(chan struct{}, window)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got[i] < b.N {
				_, data, err := conn.Read(context.Background())
				if err != nil {
					return
				}
				n := bytes.Count(data, []byte(`"channel":"/bench"`))
				got[i] += n
				for range n {
					<-ahead[i]
				}
			}
		}()
	}
	data := map[string]any{"text": strings.Repeat("x", 100)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range ahead {
			ahead[i] <- struct{}{}
		}
		if err := hub.Publish("/bench", data); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	for i, n := range got {
		if n != b.N {
			b.Fatalf("subscriber %d got %d of %d", i, n, b.N)
		}
	}
	b.ReportMetric(float64(b.N*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkWebSocketRequests: one client sends publish frames (to a
// channel without subscribers), at most 64 ahead of their
// acknowledgements, and reads the acknowledgements; one op is one frame
// answered.
func BenchmarkWebSocketRequests(b *testing.B) {
	const window = 64
	_, url := wsBenchServer(b)
	conn, id := wsBenchClient(b, url, "")
	ahead := make(chan struct{}, window) // a token per frame not answered yet
	acked := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for acked < b.N {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			n := bytes.Count(data, []byte(`"successful":true`))
			acked += n
			for range n {
				<-ahead
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ahead <- struct{}{}
		frame := fmt.Appendf(nil, `{"channel":"/nobody","data":{"n":%d},"clientId":%q,"id":"%d"}`, i, id, i)
		if err := conn.Write(context.Background(), websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	if acked != b.N {
		b.Fatalf("%d of %d answered", acked, b.N)
	}
}
