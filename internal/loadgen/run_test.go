package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a tiny Bayeux long-polling server for end-to-end tests of
// the runner. It can drop or duplicate chosen deliveries.
type fakeServer struct {
	mu      sync.Mutex
	n       int
	clients map[string]*fakeClient
	subs    map[string][]*fakeClient
	// mangle, when set, returns how many copies (0, 1, 2) of a delivery
	// to queue for a client's k-th subscription.
	mangle func(client string, data map[string]any) int
	// ackDelay holds each publish reply back, after the delivery.
	ackDelay time.Duration
}

type fakeClient struct {
	id    string
	queue []json.RawMessage
	wake  chan struct{}
}

func newFakeServer() *fakeServer {
	return &fakeServer{clients: map[string]*fakeClient{}, subs: map[string][]*fakeClient{}}
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msgs []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&msgs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []any
	for _, m := range msgs {
		ch, _ := m["channel"].(string)
		id, _ := m["clientId"].(string)
		s.mu.Lock()
		c := s.clients[id]
		s.mu.Unlock()
		reply := map[string]any{"channel": ch, "id": m["id"], "successful": true}
		switch ch {
		case "/meta/handshake":
			s.mu.Lock()
			s.n++
			c = &fakeClient{id: fmt.Sprintf("c%d", s.n), wake: make(chan struct{}, 1)}
			s.clients[c.id] = c
			s.mu.Unlock()
			reply["clientId"] = c.id
			reply["advice"] = map[string]any{"reconnect": "retry", "interval": 0, "timeout": 500}
		case "/meta/subscribe":
			if c == nil {
				reply["successful"] = false
				reply["error"] = "402::unknown"
				break
			}
			sub, _ := m["subscription"].(string)
			s.mu.Lock()
			s.subs[sub] = append(s.subs[sub], c)
			s.mu.Unlock()
		case "/meta/connect":
			if c == nil {
				reply["successful"] = false
				reply["advice"] = map[string]any{"reconnect": "handshake"}
				break
			}
			select {
			case <-c.wake:
			case <-time.After(500 * time.Millisecond):
			case <-r.Context().Done():
			}
			s.mu.Lock()
			q := c.queue
			c.queue = nil
			s.mu.Unlock()
			out = append(out, reply)
			for _, d := range q {
				out = append(out, d)
			}
			continue
		case "/meta/disconnect":
		default:
			data, _ := m["data"].(map[string]any)
			enc, _ := json.Marshal(map[string]any{"channel": ch, "data": data})
			s.mu.Lock()
			for _, sc := range s.subs[ch] {
				copies := 1
				if s.mangle != nil {
					copies = s.mangle(sc.id, data)
				}
				for range copies {
					sc.queue = append(sc.queue, enc)
				}
				select {
				case sc.wake <- struct{}{}:
				default:
				}
			}
			s.mu.Unlock()
			if s.ackDelay > 0 {
				time.Sleep(s.ackDelay) // a slow server, not synchronisation
			}
		}
		out = append(out, reply)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func TestRunAccountingEndToEnd(t *testing.T) {
	t.Parallel()
	fs := newFakeServer()
	fs.mangle = func(client string, data map[string]any) int {
		pub, seq := data["pub"].(float64), data["seq"].(float64)
		switch {
		case client == "c1" && pub == 0 && seq == 3:
			return 0 // lost
		case client == "c2" && pub == 1 && seq == 2:
			return 2 // duplicated
		}
		return 1
	}
	ts := httptest.NewServer(fs)
	defer ts.Close()
	res, err := Run(context.Background(), Config{
		URL: ts.URL, Kind: KindPubSub, Subscribers: 5, Publishers: 2, Rate: 200,
		// The run ends when MaxMessages are out, well before Duration even
		// on a loaded machine.
		Channels: 1, SubsPerClient: 1, Size: 64, Batch: 2, Duration: 30 * time.Second,
		Drain: 5 * time.Second, MaxMessages: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishedTotal != 40 || res.SentTotal != 40 {
		t.Fatalf("published %d sent %d, want 40 40 (errors %v)", res.PublishedTotal, res.SentTotal, res.FirstErrors)
	}
	if res.Expected != 5*40 {
		t.Errorf("expected %d, want 200", res.Expected)
	}
	if res.Lost != 1 || res.Duplicated != 1 || res.OutOfOrder != 0 {
		t.Errorf("lost %d dup %d ooo %d, want 1 1 0", res.Lost, res.Duplicated, res.OutOfOrder)
	}
	if res.DeliveredTotal != 200 { // 200 - 1 lost + 1 duplicate
		t.Errorf("delivered %d, want 200", res.DeliveredTotal)
	}
	if res.Latency.Count == 0 || res.Latency.P99 <= 0 {
		t.Errorf("no latency recorded: %+v", res.Latency)
	}
	var sb strings.Builder
	res.WriteSummary(&sb)
	if !strings.Contains(sb.String(), "lost 1") {
		t.Errorf("summary lacks the loss:\n%s", sb.String())
	}
	sb.Reset()
	if err := res.WriteHTML(&sb); err != nil || !strings.Contains(sb.String(), "<svg") {
		t.Errorf("HTML report: %v", err)
	}
}

func TestRunChurnAndIdle(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(newFakeServer())
	defer ts.Close()
	res, err := Run(context.Background(), Config{URL: ts.URL, Kind: KindChurn, Subscribers: 4, Channels: 1,
		Duration: time.Second, MaxMessages: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions == 0 || res.Errors != 0 {
		t.Fatalf("churn: %d sessions, %d errors %v", res.Sessions, res.Errors, res.FirstErrors)
	}
	res, err = Run(context.Background(), Config{URL: ts.URL, Kind: KindIdle, Subscribers: 20, Channels: 1,
		Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != 20 || res.Errors != 0 {
		t.Fatalf("idle: held %d, errors %d %v", res.Held, res.Errors, res.FirstErrors)
	}
}

func TestRehandshakeOnUnknownClient(t *testing.T) {
	t.Parallel()
	fs := newFakeServer()
	ts := httptest.NewServer(fs)
	defer ts.Close()
	c := &Client{HC: NewHTTPClient(4), URL: ts.URL, Timeout: time.Second}
	if err := c.Handshake(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.ID = "gone"
	if _, err := c.Connect(context.Background()); !errors.Is(err, ErrRehandshake) {
		t.Fatalf("connect with unknown id: %v", err)
	}
}
