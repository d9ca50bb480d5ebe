package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// parkServer is a hub whose long-polling transport parks held connects
// after parkAfter, served through Serve on 127.0.0.1.
type parkServer struct {
	hub  *actors.Hub
	srv  *http.Server
	url  string
	done chan error
}

func parkStart(t *testing.T, hubOpts actors.Options, parkAfter time.Duration) *parkServer {
	t.Helper()
	system := attachQuietSystem()
	hub, err := actors.Start(system, hubOpts)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	if _, err := Attach(r, "/cometd", hub, Config{Types: []string{protocol.LongPolling}, LongPolling: Options{ParkAfter: parkAfter}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &parkServer{hub: hub, srv: &http.Server{Handler: r}, url: "http://" + ln.Addr().String() + "/cometd", done: make(chan error, 1)}
	go func() { s.done <- Serve(s.srv, ln) }()
	t.Cleanup(func() {
		ctx := context.Background() // no deadline: go test -timeout catches a hang
		if err := hub.Drain(ctx); err != nil {
			t.Error(err)
		}
		if err := s.srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		system.Shutdown()
	})
	return s
}

// parkClient is one long-polling client with its own connection pool, so
// that its requests show which connection they went on.
type parkClient struct {
	t        *testing.T
	s        *parkServer
	http     *http.Client
	clientID string
}

func parkHandshake(t *testing.T, s *parkServer, subs ...string) *parkClient {
	t.Helper()
	c := &parkClient{t: t, s: s, http: &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}}
	t.Cleanup(c.http.CloseIdleConnections)
	rs, _ := c.post(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`)
	c.clientID, _ = rs[0]["clientId"].(string)
	if c.clientID == "" {
		t.Fatalf("handshake: %v", rs)
	}
	for _, sub := range subs {
		if rs, _ := c.post(fmt.Sprintf(`[{"channel":"/meta/subscribe","clientId":%q,"subscription":%q}]`, c.clientID, sub)); rs[0]["successful"] != true {
			t.Fatalf("subscribe %s: %v", sub, rs)
		}
	}
	// The first connect is answered at once.
	c.connect()
	return c
}

// post sends one request and returns its replies and whether it went on
// a connection used before.
func (c *parkClient) post(body string) ([]map[string]any, bool) {
	c.t.Helper()
	reused := false
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("status %d", resp.StatusCode)
	}
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("response is not a JSON array: %v", err)
	}
	return out, reused
}

func (c *parkClient) connect() ([]map[string]any, bool) {
	c.t.Helper()
	return c.post(fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, c.clientID))
}

// dataOn returns the data of the messages on channel among ms.
func dataOn(ms []map[string]any, channel string) []any {
	var out []any
	for _, m := range ms {
		if m["channel"] == channel {
			out = append(out, m["data"])
		}
	}
	return out
}

// A connect held past ParkAfter is parked and still answered on its own
// connection when a message comes, and that connection serves the next
// request.
func TestParkedConnectAnsweredOnItsConnection(t *testing.T) {
	t.Parallel()
	s := parkStart(t, actors.Options{PollTimeout: 500 * time.Millisecond}, 20*time.Millisecond)
	c := parkHandshake(t, s, "/park")
	type result struct {
		ms     []map[string]any
		reused bool
	}
	got := make(chan result, 1)
	go func() { ms, reused := c.connect(); got <- result{ms, reused} }()
	time.Sleep(200 * time.Millisecond) // well past ParkAfter
	if err := s.hub.Publish("/park", "while parked"); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the parked connect was not answered")
	}
	if d := dataOn(r.ms, "/park"); len(d) != 1 || d[0] != "while parked" {
		t.Fatalf("parked connect's answer: %v", r.ms)
	}
	if !r.reused {
		t.Error("the held connect did not go on the client's open connection")
	}
	// The handed-back connection reads the next request.
	if _, reused := c.connect(); !reused {
		t.Error("the next request did not reuse the parked connection")
	}
}

// Parked connects hold no goroutine, where a held request holds two. Not parallel: it counts the process's goroutines.
func TestParkedConnectsHoldNoGoroutine(t *testing.T) {
	const n = 50
	// The connections are open and idle before: each held poll adds the
	// client's caller and, unless parked, the server's background reader;
	// a parked one also ends the server's goroutine of its connection.
	for _, tc := range []struct {
		name      string
		parkAfter time.Duration
		min, max  int
	}{
		{"parked", 20 * time.Millisecond, -1 << 20, n / 2},
		{"not parked", -1, 2*n - 10, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := parkStart(t, actors.Options{}, tc.parkAfter)
			clients := make([]*parkClient, n)
			for i := range clients {
				clients[i] = parkHandshake(t, s, "/many")
			}
			before := runtime.NumGoroutine()
			answered := make(chan int, n)
			for _, c := range clients {
				go func() { ms, _ := c.connect(); answered <- len(dataOn(ms, "/many")) }()
			}
			time.Sleep(500 * time.Millisecond) // all held, and parked if they are to be
			if held := runtime.NumGoroutine() - before; held < tc.min || held > tc.max {
				t.Errorf("%d more goroutines with %d connects held, want %d to %d", held, n, tc.min, tc.max)
			}
			if err := s.hub.Publish("/many", "all"); err != nil {
				t.Fatal(err)
			}
			for range n {
				select {
				case got := <-answered:
					if got != 1 {
						t.Errorf("a held connect got %d messages, want 1", got)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("held connects not answered")
				}
			}
		})
	}
}

// A client that closes its connection while its connect is parked loses
// nothing: what the session would have answered waits for its next
// connect.
func TestParkedConnectClientLeaves(t *testing.T) {
	t.Parallel()
	s := parkStart(t, actors.Options{PollTimeout: 2 * time.Second}, 20*time.Millisecond)
	c := parkHandshake(t, s, "/left")
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/cometd"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, c.clientID)
	fmt.Fprintf(conn, "POST /cometd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	time.Sleep(200 * time.Millisecond) // parked
	_ = conn.Close()
	time.Sleep(50 * time.Millisecond)
	if err := s.hub.Publish("/left", "kept"); err != nil {
		t.Fatal(err)
	}
	ms, _ := c.connect()
	if d := dataOn(ms, "/left"); len(d) != 1 || d[0] != "kept" {
		t.Fatalf("next connect after the parked one's client left: %v", ms)
	}
}

// A parked connect whose client closes the connection is ended by the
// sweep, long before its poll timeout: the hub holds it no more, and what
// is published after waits for the session's next connect.
func TestParkedConnectSweptWhenClientLeaves(t *testing.T) {
	t.Parallel()
	s := parkStart(t, actors.Options{PollTimeout: time.Minute}, 20*time.Millisecond)
	c := parkHandshake(t, s, "/swept")
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/cometd"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, c.clientID)
	fmt.Fprintf(conn, "POST /cometd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	time.Sleep(200 * time.Millisecond) // parked
	if h := s.hub.Stats().Held; h != 1 {
		t.Fatalf("%d connects held, want 1", h)
	}
	_ = conn.Close()
	deadline := time.Now().Add(parkSweepEvery + 5*time.Second)
	for s.hub.Stats().Held != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the parked connect is still held %v after its client left", parkSweepEvery+5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.hub.Publish("/swept", "kept"); err != nil {
		t.Fatal(err)
	}
	ms, _ := c.connect()
	if d := dataOn(ms, "/swept"); len(d) != 1 || d[0] != "kept" {
		t.Fatalf("next connect after the swept one: %v", ms)
	}
}

// Bytes the client sent after a parked request (a pipelined request) are
// read after the parked answer, in order.
func TestParkedConnectPipelined(t *testing.T) {
	t.Parallel()
	s := parkStart(t, actors.Options{PollTimeout: 300 * time.Millisecond}, 20*time.Millisecond)
	c := parkHandshake(t, s, "/pipe")
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.url, "/cometd"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	connect := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling","id":"c"}]`, c.clientID)
	publish := fmt.Sprintf(`[{"channel":"/pipe","clientId":%q,"data":"second","id":"p"}]`, c.clientID)
	var req strings.Builder
	for _, b := range []string{connect, publish} {
		fmt.Fprintf(&req, "POST /cometd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	for _, id := range []string{"c", "p"} {
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("response %s: %v", id, err)
		}
		var ms []map[string]any
		err = json.NewDecoder(resp.Body).Decode(&ms)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("response %s: status %d, %v", id, resp.StatusCode, err)
		}
		if len(ms) == 0 || ms[len(ms)-1]["id"] != id || ms[len(ms)-1]["successful"] != true {
			t.Fatalf("response %s: %v", id, ms)
		}
	}
}

// Draining the hub answers parked connects; then the server shuts down.
func TestParkedConnectAnsweredOnDrain(t *testing.T) {
	t.Parallel()
	s := parkStart(t, actors.Options{}, 20*time.Millisecond)
	c := parkHandshake(t, s, "/drain")
	got := make(chan []map[string]any, 1)
	go func() { ms, _ := c.connect(); got <- ms }()
	time.Sleep(200 * time.Millisecond)
	if err := s.hub.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-got:
		if len(ms) != 1 || ms[0]["channel"] != "/meta/connect" || ms[0]["successful"] != true {
			t.Fatalf("parked connect's answer on drain: %v", ms)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not answer the parked connect")
	}
}
