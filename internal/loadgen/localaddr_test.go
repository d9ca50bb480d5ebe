package loadgen

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sourceRecorder records the source addresses of the requests h serves.
type sourceRecorder struct {
	h    http.Handler
	mu   sync.Mutex
	seen map[string]int
}

func (s *sourceRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	s.seen[host]++
	s.mu.Unlock()
	s.h.ServeHTTP(w, r)
}

func (s *sourceRecorder) hosts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for k, v := range s.seen {
		m[k] = v
	}
	return m
}

// TestLocalAddrs spreads long-polling and WebSocket (Centrifugo) clients
// over two source addresses: the server sees both, and nothing else.
func TestLocalAddrs(t *testing.T) {
	t.Parallel()
	addrs := []string{"127.0.0.2", "127.0.0.3"}
	check := func(what string, seen map[string]int) {
		t.Helper()
		if len(seen) != 2 || seen["127.0.0.2"] == 0 || seen["127.0.0.3"] == 0 {
			t.Errorf("%s: requests came from %v, want both of %v", what, seen, addrs)
		}
	}

	lp := &sourceRecorder{h: newFakeServer(), seen: map[string]int{}}
	ts := httptest.NewServer(lp)
	defer ts.Close()
	res, err := Run(t.Context(), Config{URL: ts.URL, Kind: KindPubSub, Subscribers: 6, Publishers: 2, Rate: 200,
		Channels: 1, Duration: 60 * time.Second, Drain: 5 * time.Second, MaxMessages: 20, LocalAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 || res.PublishedTotal != 20 {
		t.Errorf("long-polling: published %d, lost %d %v", res.PublishedTotal, res.Lost, res.FirstErrors)
	}
	check("long-polling", lp.hosts())

	f := &fakeCentrifugo{subs: map[string][]*fakeCFConn{}}
	ws := &sourceRecorder{h: f, seen: map[string]int{}}
	wts := httptest.NewServer(ws)
	defer wts.Close()
	res, err = Run(t.Context(), Config{URL: "ws" + strings.TrimPrefix(wts.URL, "http") + "/connection/websocket",
		Protocol: ProtocolCentrifugo, Kind: KindIdle, Subscribers: 6, Channels: 1, Duration: 50 * time.Millisecond, LocalAddrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != 6 {
		t.Errorf("websocket: held %d", res.Held)
	}
	check("websocket", ws.hosts())
}

func TestParseLocalAddrs(t *testing.T) {
	t.Parallel()
	ips, err := ParseLocalAddrs([]string{"127.0.0.2", " 127.1.2.3", ""})
	if err != nil || len(ips) != 2 || ips[1].String() != "127.1.2.3" {
		t.Errorf("%v %v", ips, err)
	}
	for _, bad := range []string{"10.0.0.1", "::1", "localhost", "127.0.0.300", "0.0.0.0"} {
		if _, err := ParseLocalAddrs([]string{bad}); err == nil || !strings.Contains(err.Error(), "127.0.0.0/8") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	c := Config{URL: "http://x", Publishers: 1, Duration: time.Second, LocalAddrs: []string{"192.168.1.1"}}
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted a non-loopback source address")
	}
}
