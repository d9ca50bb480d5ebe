package test

// Fault tests: clients that vanish mid-poll, a server restart under polling
// clients, a handshake burst, many concurrent long-polls and a connect
// response lost with its connection. They run real servers on 127.0.0.1.
//
// TestFaultManyLongPolls holds FAULT_CLIENTS connects (default 10000, 2000
// under -race) for FAULT_HOLD (default 5s). It needs 3*FAULT_CLIENTS file
// descriptors: it raises RLIMIT_NOFILE to the hard limit (or beyond, with
// CAP_SYS_RESOURCE) and skips if that is not enough. For a minute:
//
//	FAULT_HOLD=60s go test -count=1 -run FaultManyLongPolls ./test/

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

// faultServer is a server whose /cometd requests are counted while they
// are in the handler, by the value of their X-Fault-Tag header, so that a
// test can wait until a long-poll is really held instead of sleeping.
type faultServer struct {
	*server.Server
	mu       sync.Mutex
	inflight map[string]int
	stopOnce sync.Once
	stopErr  error
}

// faultStart starts a server on addr ("127.0.0.1:0" for any port) and stops
// it when the test ends, unless the test stopped it first.
func faultStart(t testing.TB, cfg server.Config, addr string) *faultServer {
	t.Helper()
	if cfg.StatsChannel == "" {
		cfg.StatsChannel = "-"
	}
	if cfg.ParkAfter == 0 {
		// held counts requests in the handler, and a parked poll has left
		// it: these tests watch held connects there, so nothing parks
		// unless a test asks for it.
		cfg.ParkAfter = -1
	}
	cfg.Addr = addr
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	fs := &faultServer{Server: s, inflight: map[string]int{}}
	s.Router().Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tag := r.Header.Get("X-Fault-Tag")
			if tag == "" {
				next.ServeHTTP(w, r)
				return
			}
			fs.add(tag, 1)
			defer fs.add(tag, -1)
			next.ServeHTTP(w, r)
		})
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = s.Shutdown(context.Background())
		t.Fatalf("listen on %s: %v", addr, err)
	}
	s.Serve(ln)
	t.Cleanup(func() {
		if err := fs.stop(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return fs
}

func (s *faultServer) add(tag string, n int) {
	s.mu.Lock()
	s.inflight[tag] += n
	s.mu.Unlock()
}

// held returns how many requests tagged tag are in the handler.
func (s *faultServer) held(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight[tag]
}

// stop shuts the server down once.
func (s *faultServer) stop() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.stopErr = s.Shutdown(ctx)
	})
	return s.stopErr
}

// faultClient is a Bayeux client that reports errors instead of failing
// the test, so that it can run on any goroutine.
type faultClient struct {
	url  string
	http *http.Client
	tag  string // X-Fault-Tag of its requests
	id   string
	seq  int
}

func (c *faultClient) post(ctx context.Context, msgs ...msg) (int, []msg, error) {
	body, err := json.Marshal(msgs)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.tag != "" {
		req.Header.Set("X-Fault-Tag", c.tag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var out []msg
	if err := json.Unmarshal(data, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, data, err)
	}
	return resp.StatusCode, out, nil
}

func (c *faultClient) nextID() string {
	c.seq++
	return strconv.Itoa(c.seq)
}

// call sends one message and returns its reply (on channel) and every
// other message of the response.
func (c *faultClient) call(ctx context.Context, m msg) (reply msg, others []msg, err error) {
	m["id"] = c.nextID()
	if c.id != "" && m["channel"] != "/meta/handshake" {
		m["clientId"] = c.id
	}
	_, replies, err := c.post(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range replies {
		if reply == nil && r["channel"] == m["channel"] && (r["id"] == m["id"] || r["id"] == nil) {
			reply = r
		} else {
			others = append(others, r)
		}
	}
	if reply == nil {
		return nil, others, fmt.Errorf("no reply on %v in %v", m["channel"], replies)
	}
	return reply, others, nil
}

// mustCall is call that fails unless the reply is successful.
func (c *faultClient) mustCall(ctx context.Context, m msg) ([]msg, error) {
	r, others, err := c.call(ctx, m)
	if err != nil {
		return others, err
	}
	if r["successful"] != true {
		return others, fmt.Errorf("%v failed: %v", m["channel"], r)
	}
	if m["channel"] == "/meta/handshake" {
		c.id, _ = r["clientId"].(string)
	}
	return others, nil
}

func faultHandshake() msg {
	return msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}}
}

func faultConnect() msg {
	return msg{"channel": "/meta/connect", "connectionType": "long-polling"}
}

// faultShortConnect is a connect held at most 2 s, for loops that wait for
// deliveries that may never come.
func faultShortConnect() msg {
	return msg{"channel": "/meta/connect", "connectionType": "long-polling", "advice": msg{"timeout": 2000}}
}

// start handshakes, subscribes to subs and makes the first
// (immediate) connect.
func (c *faultClient) start(ctx context.Context, subs ...string) error {
	if _, err := c.mustCall(ctx, faultHandshake()); err != nil {
		return err
	}
	for _, s := range subs {
		if _, err := c.mustCall(ctx, msg{"channel": "/meta/subscribe", "subscription": s}); err != nil {
			return err
		}
	}
	_, err := c.mustCall(ctx, faultConnect())
	return err
}

// faultData returns m's data field "n" as an int, or -1.
func faultData(m msg, key string) int {
	d, _ := m["data"].(map[string]any)
	f, ok := d[key].(float64)
	if !ok {
		return -1
	}
	return int(f)
}

// TestFaultClientVanishesMidPoll: a client's held /meta/connect goes away
// (the request is cancelled, or its TCP connection closed) while held;
// messages published meanwhile wait in its session and arrive, in order and
// once, on its next connect; another client sees nothing of it.
func TestFaultClientVanishesMidPoll(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			srv := faultStart(t, server.Config{}, "127.0.0.1:0")
			ctx := context.Background()
			url := srv.URL() + "/cometd"
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			a := &faultClient{url: url, http: hc}
			b := &faultClient{url: url, http: hc}
			other := &faultClient{url: url, http: hc, tag: "other"}
			for _, c := range []*faultClient{a, other} {
				if err := c.start(ctx, "/fault/room"); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.start(ctx); err != nil {
				t.Fatal(err)
			}

			// The other client holds a connect through the whole episode.
			otherDone := make(chan []msg, 1)
			otherErr := make(chan error, 1)
			go func() {
				others, err := other.mustCall(ctx, faultShortConnect())
				otherErr <- err
				otherDone <- others
			}()

			checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if n := srv.held("other"); n != 1 {
					return fmt.Errorf("%d connects of the other client held", n)
				}
				return nil
			})

			// A's connect is held, then vanishes.
			body, _ := json.Marshal([]msg{{"channel": "/meta/connect", "clientId": a.id,
				"connectionType": "long-polling", "id": "held"}})
			switch how {
			case "cancel":
				reqCtx, cancel := context.WithCancel(ctx)
				held := &faultClient{url: url, http: &http.Client{Transport: &http.Transport{}}, tag: "a"}
				errc := make(chan error, 1)
				go func() {
					_, _, err := held.post(reqCtx, msg{"channel": "/meta/connect", "clientId": a.id,
						"connectionType": "long-polling", "id": "held"})
					errc <- err
				}()
				checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
					if n := srv.held("a"); n != 1 {
						return fmt.Errorf("%d connects of A held", n)
					}
					return nil
				})
				cancel()
				if err := <-errc; !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled connect: %v", err)
				}
				held.http.CloseIdleConnections()
			case "close":
				conn, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(conn, "POST /cometd HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
					"X-Fault-Tag: a\r\nContent-Length: %d\r\n\r\n%s", srv.Addr(), len(body), body)
				checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
					if n := srv.held("a"); n != 1 {
						return fmt.Errorf("%d connects of A held", n)
					}
					return nil
				})
				_ = conn.Close()
			}
			// The server has noticed once the handler has returned.
			checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if n := srv.held("a"); n != 0 {
					return fmt.Errorf("%d connects of A still in the handler", n)
				}
				return nil
			})
			if n := srv.held("other"); n != 1 {
				t.Fatalf("the other client's held connect was answered when A went away")
			}

			for n := 1; n <= 3; n++ {
				if _, err := b.mustCall(ctx, msg{"channel": "/fault/room", "data": msg{"n": n}}); err != nil {
					t.Fatal(err)
				}
			}

			// A comes back with a new connect and gets the three, in order.
			var got []msg
			deadline := time.Now().Add(10 * time.Second)
			for len(got) < 3 && time.Now().Before(deadline) {
				others, err := a.mustCall(ctx, faultShortConnect())
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, others...)
			}
			// Exactly once: nothing more is queued.
			others, err := a.mustCall(ctx, msg{"channel": "/meta/connect", "connectionType": "long-polling",
				"advice": msg{"timeout": 0}})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, others...)
			if len(got) != 3 {
				t.Fatalf("A got %d messages, want 3: %v", len(got), got)
			}
			for i, m := range got {
				if m["channel"] != "/fault/room" || faultData(m, "n") != i+1 {
					t.Errorf("A's message %d: %v", i, m)
				}
			}

			// The other client's held connect was released by the first
			// publish; it has the rest on its next connects.
			if err := <-otherErr; err != nil {
				t.Fatalf("other client: %v", err)
			}
			seen := <-otherDone
			deadline = time.Now().Add(10 * time.Second)
			for len(seen) < 3 && time.Now().Before(deadline) {
				others, err := other.mustCall(ctx, faultShortConnect())
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, others...)
			}
			if len(seen) != 3 {
				t.Fatalf("other client got %d messages, want 3: %v", len(seen), seen)
			}
			for i, m := range seen {
				if faultData(m, "n") != i+1 {
					t.Errorf("other client's message %d: %v", i, m)
				}
			}
		})
	}
}

// faultFollower is a client that does what the server's advice tells it:
// reconnect "retry" connects again, "handshake" handshakes (and then
// subscribes again, as CometD clients do in their handshake listener),
// "none" stops; a connection error retries the same step with a growing
// backoff. It is driven only by replies and advice, not by the test.
type faultFollower struct {
	c       *faultClient
	channel string
	got     chan msg

	handshakes      atomic.Int32 // successful handshakes
	adviceHandshake atomic.Int32 // replies advising a new handshake
	connErrors      atomic.Int32 // requests that failed below Bayeux
	connects        atomic.Int32 // connects sent since the last handshake
	err             atomic.Value // error: why it stopped, other than ctx
}

// failure returns why the follower stopped, or nil.
func (f *faultFollower) failure() error {
	err, _ := f.err.Load().(error)
	return err
}

// run follows the advice until ctx ends or the server says "none".
func (f *faultFollower) run(ctx context.Context) {
	step := "handshake"
	var wait, backoff time.Duration
	for {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		var m msg
		switch step {
		case "handshake":
			m = faultHandshake()
		case "subscribe":
			m = msg{"channel": "/meta/subscribe", "subscription": f.channel}
		case "connect":
			m = faultConnect()
			f.connects.Add(1)
		}
		reply, others, err := f.c.call(ctx, m)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.connErrors.Add(1)
			backoff = min(2*backoff+20*time.Millisecond, 500*time.Millisecond)
			wait = backoff
			continue
		}
		backoff = 0
		for _, d := range others {
			if d["channel"] == f.channel {
				select {
				case f.got <- d:
				case <-ctx.Done():
					return
				}
			}
		}
		reconnect, interval := "", 0.0
		if a, ok := reply["advice"].(map[string]any); ok {
			reconnect, _ = a["reconnect"].(string)
			interval, _ = a["interval"].(float64)
		}
		wait = min(time.Duration(interval)*time.Millisecond, 2*time.Second)
		if reply["successful"] == true {
			switch step {
			case "handshake":
				f.c.id, _ = reply["clientId"].(string)
				f.handshakes.Add(1)
				f.connects.Store(0)
				step = "subscribe"
			case "subscribe":
				step = "connect"
			}
		}
		switch reconnect {
		case "handshake":
			f.adviceHandshake.Add(1)
			f.c.id = ""
			step = "handshake"
		case "none":
			f.err.Store(fmt.Errorf("server advised reconnect none: %v", reply))
			return
		case "retry", "":
			if reply["successful"] != true && reconnect == "" {
				// A failure without advice: try the step again later.
				wait = max(wait, 100*time.Millisecond)
			}
		}
	}
}

// TestFaultServerRestart: clients hold connects; the server shuts down and
// a new one starts on the same port; following the advice they get (and
// retrying connection errors) every client handshakes again, subscribes
// again and receives a message published after the restart.
func TestFaultServerRestart(t *testing.T) {
	// Not parallel: the new server must get the old one's port.
	const n = 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	const channel = "/fault/restart"
	srv1 := faultStart(t, server.Config{}, addr)
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	followers := make([]*faultFollower, n)
	var wg sync.WaitGroup
	for i := range followers {
		f := &faultFollower{c: &faultClient{url: "http://" + addr + "/cometd", http: hc}, channel: channel,
			got: make(chan msg, 16)}
		followers[i] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.run(ctx)
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Each follower has handshaken, subscribed and sent its second connect,
	// the one that is held.
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		for i, f := range followers {
			if f.connects.Load() < 2 {
				return fmt.Errorf("follower %d: %d connects", i, f.connects.Load())
			}
		}
		if st := srv1.Hub().Stats(); st.Clients != n || st.Channels != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	pub := func(srv *faultServer, phase int) {
		t.Helper()
		lc, err := srv.Hub().NewLocalClient(fmt.Sprint("publisher-", phase))
		if err != nil {
			t.Fatal(err)
		}
		defer lc.Disconnect()
		if err := lc.Publish(channel, msg{"phase": phase}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(phase int) {
		t.Helper()
		for i, f := range followers {
			select {
			case m := <-f.got:
				if faultData(m, "phase") != phase {
					t.Fatalf("follower %d got %v, want phase %d", i, m, phase)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("follower %d: no phase %d message (handshakes %d, errors %d, err %v)",
					i, phase, f.handshakes.Load(), f.connErrors.Load(), f.failure())
			}
		}
	}
	pub(srv1, 1)
	expect(1)

	start := time.Now()
	if err := srv1.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	var subscribes atomic.Int32
	var srv2 *faultServer
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ln, err := net.Listen("tcp", addr) // the port is free again
		if err != nil {
			return err
		}
		return ln.Close()
	})
	srv2 = faultStart(t, server.Config{Hub: actors.Options{Callback: func(e actors.Event) {
		if e.Type == actors.EventSubscribe && e.Channel == channel {
			subscribes.Add(1)
		}
	}}}, addr)
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := subscribes.Load(); got != n {
			return fmt.Errorf("%d of %d followers subscribed again", got, n)
		}
		return nil
	})
	t.Logf("all %d followers back %v after the shutdown began", n, time.Since(start).Round(time.Millisecond))
	pub(srv2, 2)
	expect(2)
	for i, f := range followers {
		if err := f.failure(); err != nil {
			t.Errorf("follower %d: %v", i, err)
		}
		if h := f.handshakes.Load(); h != 2 {
			t.Errorf("follower %d handshook %d times, want 2", i, h)
		}
		if f.adviceHandshake.Load() == 0 {
			t.Errorf("follower %d was never advised to handshake", i)
		}
	}
	if st := srv2.Hub().Stats(); st.Clients != n || st.Handshakes != n {
		t.Errorf("new server stats %+v, want %d clients and handshakes", st, n)
	}
}

// TestFaultHandshakeBurst: 2,000 handshakes released at once all succeed
// with distinct client ids; after they all disconnect the hub has no
// clients and no channels left.
func TestFaultHandshakeBurst(t *testing.T) {
	// Not parallel: a load burst that would starve the tests beside it.
	const n = 2000
	// The burst of handshakes may take longer than MaxInterval under -race.
	srv := faultStart(t, server.Config{Hub: actors.Options{MaxInterval: time.Minute}}, "127.0.0.1:0")
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	ctx := context.Background()

	clients := make([]*faultClient, n)
	errs := make([]error, n)
	burst := func(fn func(i int, c *faultClient) error) time.Duration {
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				errs[i] = fn(i, clients[i])
			}()
		}
		start := time.Now()
		close(gate)
		wg.Wait()
		d := time.Since(start)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		return d
	}
	for i := range clients {
		clients[i] = &faultClient{url: srv.URL() + "/cometd", http: hc}
	}
	d := burst(func(_ int, c *faultClient) error {
		_, err := c.mustCall(ctx, faultHandshake())
		return err
	})
	t.Logf("%d handshakes at once: %v", n, d.Round(time.Millisecond))
	ids := make(map[string]bool, n)
	for _, c := range clients {
		if c.id == "" || ids[c.id] {
			t.Fatalf("client id %q empty or repeated", c.id)
		}
		ids[c.id] = true
	}
	if st := srv.Hub().Stats(); st.Clients != n || st.Handshakes != n {
		t.Fatalf("stats after the burst: %+v", st)
	}
	burst(func(i int, c *faultClient) error {
		if _, err := c.mustCall(ctx, msg{"channel": "/meta/subscribe", "subscription": fmt.Sprint("/burst/", i%10)}); err != nil {
			return err
		}
		_, err := c.mustCall(ctx, faultConnect())
		return err
	})
	if st := srv.Hub().Stats(); st.Channels != 10 {
		t.Fatalf("stats after subscribing: %+v", st)
	}
	d = burst(func(_ int, c *faultClient) error {
		_, err := c.mustCall(ctx, msg{"channel": "/meta/disconnect"})
		return err
	})
	t.Logf("%d disconnects at once: %v", n, d.Round(time.Millisecond))
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Clients != 0 || st.Channels != 0 {
			return fmt.Errorf("stats after disconnecting: %+v", st)
		}
		return nil
	})
}

// faultEnvInt and faultEnvDuration read a positive setting.
func faultEnvInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func faultEnvDuration(t testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// faultRaiseNofile raises RLIMIT_NOFILE to at least need (the hard limit
// too, if the process may) and restores it when the test ends. It reports
// the soft limit reached.
func faultRaiseNofile(t testing.TB, need uint64) uint64 {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if old.Cur >= need {
		return old.Cur
	}
	lim := syscall.Rlimit{Cur: old.Max, Max: old.Max}
	if lim.Max < need {
		lim = syscall.Rlimit{Cur: need, Max: need} // needs CAP_SYS_RESOURCE
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			lim = syscall.Rlimit{Cur: old.Max, Max: old.Max}
		}
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("setrlimit: %v", err)
		return old.Cur
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return lim.Cur
}

// faultRSS returns the process's resident set from /proc/self/status.
func faultRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// TestFaultManyLongPolls holds FAULT_CLIENTS long-polls at once for
// FAULT_HOLD, then publishes one message to each of 100 channels: every
// client gets exactly its channel's message on its held connect.
func TestFaultManyLongPolls(t *testing.T) {
	// Not parallel: it counts the process's goroutines and raises its RLIMIT_NOFILE.
	def := 10000
	if faultRace {
		def = 2000
	}
	clients := faultEnvInt(t, "FAULT_CLIENTS", def)
	hold := faultEnvDuration(t, "FAULT_HOLD", 5*time.Second)
	const channels = 100
	if got := faultRaiseNofile(t, uint64(3*clients)); got < uint64(3*clients) {
		t.Skipf("RLIMIT_NOFILE is %d; %d clients need %d", got, clients, 3*clients)
	}

	// Connects are held from the moment each client is set up: the poll
	// timeout covers setting up every client (up to faultSetup) and the
	// hold, so that none returns before the publishes.
	const faultSetup = 5 * time.Minute
	// Every client comes from 127.0.0.1: no per-address bound.
	// Polls park as they do by default: held connects are counted by the
	// hub and by the clients still waiting for an answer.
	srv := faultStart(t, server.Config{Hub: actors.Options{PollTimeout: faultSetup + hold + 10*time.Second,
		MaxSessionsPerIP: -1}, ParkAfter: transport.DefaultParkAfter}, "127.0.0.1:0")
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConns: 0, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: faultSetup + hold + 60*time.Second}
	ctx := context.Background()
	url := srv.URL() + "/cometd"
	baseline := runtime.NumGoroutine()
	t.Logf("%d clients, hold %v, baseline %d goroutines, RSS %s", clients, hold, baseline, faultRSS())

	// Handshake, subscribe and first connect, 200 at a time; then each
	// client's second connect is held.
	var failures atomic.Int64
	var firstErr atomic.Value
	var waiting, answered atomic.Int64 // clients in and past their held connect
	fail := func(i int, err error) {
		if failures.Add(1) == 1 {
			firstErr.Store(fmt.Errorf("client %d: %w", i, err))
		}
	}
	results := make([][]msg, clients)
	cs := make([]*faultClient, clients)
	sem := make(chan struct{}, 200)
	var held sync.WaitGroup
	start := time.Now()
	for i := range cs {
		cs[i] = &faultClient{url: url, http: hc}
		sem <- struct{}{}
		held.Add(1)
		go func() {
			defer held.Done()
			c := cs[i]
			err := c.start(ctx, fmt.Sprint("/load/", i%channels))
			<-sem
			if err != nil {
				fail(i, err)
				return
			}
			waiting.Add(1)
			others, err := c.mustCall(ctx, faultConnect())
			waiting.Add(-1)
			answered.Add(1)
			if err != nil {
				fail(i, err)
				return
			}
			results[i] = others
		}()
	}
	checkFor(t, faultSetup, 20*time.Millisecond, func() error {
		if f := failures.Load(); f > 0 {
			t.Fatalf("%d clients failed; first: %v", f, firstErr.Load())
		}
		if h, w := srv.Hub().Stats().Held, waiting.Load(); h < clients || w < int64(clients) {
			return fmt.Errorf("%d of %d connects held, %d clients waiting", h, clients, w)
		}
		return nil
	})
	established := time.Since(start)
	st := srv.Hub().Stats()
	t.Logf("%d connects held after %v; %d goroutines, RSS %s, hub %d clients %d channels",
		clients, established.Round(time.Millisecond), runtime.NumGoroutine(), faultRSS(), st.Clients, st.Channels)
	if st.Clients != clients || st.Channels != channels {
		t.Fatalf("hub stats %+v", st)
	}

	// Hold, checking that nothing returns early.
	deadline := time.Now().Add(hold)
	checkFor(t, hold+5*time.Second, 100*time.Millisecond, func() error {
		if h, a := srv.Hub().Stats().Held, answered.Load(); h != clients || a != 0 {
			t.Fatalf("%d of %d connects still held, %d answered during the hold", h, clients, a)
		}
		if time.Now().Before(deadline) {
			return errors.New("holding")
		}
		return nil
	})

	pub := &faultClient{url: url, http: &http.Client{Timeout: 30 * time.Second}}
	defer pub.http.CloseIdleConnections()
	if _, err := pub.mustCall(ctx, faultHandshake()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for ch := range channels {
		if _, err := pub.mustCall(ctx, msg{"channel": fmt.Sprint("/load/", ch), "data": msg{"ch": ch}}); err != nil {
			t.Fatal(err)
		}
	}
	held.Wait()
	t.Logf("%d messages delivered to %d held connects in %v; RSS %s", channels, clients,
		time.Since(start).Round(time.Millisecond), faultRSS())
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d clients failed; first: %v", f, firstErr.Load())
	}
	bad := 0
	for i, got := range results {
		if len(got) != 1 || got[0]["channel"] != fmt.Sprint("/load/", i%channels) || faultData(got[0], "ch") != i%channels {
			if bad++; bad <= 5 {
				t.Errorf("client %d got %v", i, got)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d clients did not get exactly their message", bad, clients)
	}

	// Everyone leaves; the goroutines go back to where they were.
	start = time.Now()
	var wg sync.WaitGroup
	for i, c := range cs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := c.mustCall(ctx, msg{"channel": "/meta/disconnect"}); err != nil {
				fail(i, err)
			}
		}()
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d disconnects failed; first: %v", f, firstErr.Load())
	}
	tr.CloseIdleConnections()
	_, _, _ = pub.call(ctx, msg{"channel": "/meta/disconnect"})
	pub.http.CloseIdleConnections()
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Clients != 0 || st.Channels != 0 {
			return fmt.Errorf("hub stats %+v", st)
		}
		if n := runtime.NumGoroutine(); n > baseline+10 {
			return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
		}
		return nil
	})
	t.Logf("all disconnected in %v; %d goroutines, RSS %s", time.Since(start).Round(time.Millisecond),
		runtime.NumGoroutine(), faultRSS())
}

// faultProxy is a TCP proxy in front of a server that can drop its client
// connections silently, as a NAT or a proxy that times out does: the
// client's side is closed, the server's side stays open and whatever the
// server writes to it is read and thrown away.
type faultProxy struct {
	ln        net.Listener
	upstream  string
	discarded atomic.Int64 // bytes the server wrote after the drop
	mu        sync.Mutex
	pairs     []*faultPair
	wg        sync.WaitGroup
}

type faultPair struct {
	client, server net.Conn
	dropped        atomic.Bool
}

// faultStartProxy proxies a new loopback port to upstream until the test
// ends.
func faultStartProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, pr := range p.pairs {
			_ = pr.client.Close()
			_ = pr.server.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		pr := &faultPair{client: c, server: s}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client to server; the server's side stays open
			defer p.wg.Done()
			_, _ = io.Copy(s, c)
		}()
		go func() { // server to client, or to nowhere once dropped
			defer p.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if pr.dropped.Load() {
						p.discarded.Add(int64(n))
					} else {
						_, _ = c.Write(buf[:n])
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// drop closes every client connection and keeps the server's side open.
func (p *faultProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.dropped.Store(true)
		_ = pr.client.Close()
	}
}

// faultAck returns the batch number in a connect reply's ext.ack, or -1.
func faultAck(r msg) int {
	ext, _ := r["ext"].(map[string]any)
	n, ok := ext["ack"].(float64)
	if !ok {
		return -1
	}
	return int(n)
}

// TestFaultDroppedConnectResponse: a held connect is answered with a
// message while the client's connection is already gone (dropped by a
// proxy, so the server's write succeeds). A client using the CometD ack
// extension acknowledges only batches it has received, so its next connect
// gets the message again, followed by the ones published since, in order;
// once acknowledged nothing is sent twice.
func TestFaultDroppedConnectResponse(t *testing.T) {
	t.Parallel()
	srv := faultStart(t, server.Config{}, "127.0.0.1:0")
	proxy := faultStartProxy(t, srv.Addr().String())
	ctx := context.Background()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	direct := srv.URL() + "/cometd"
	a := &faultClient{url: direct, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	b := &faultClient{url: direct, http: a.http}

	hs := faultHandshake()
	hs["ext"] = msg{"ack": true}
	r, _, err := a.call(ctx, hs)
	if err != nil {
		t.Fatal(err)
	}
	if r["successful"] != true {
		t.Fatalf("handshake: %v", r)
	}
	a.id, _ = r["clientId"].(string)
	if ext, _ := r["ext"].(map[string]any); ext["ack"] != true {
		t.Fatalf("handshake reply does not enable the ack extension: %v", r)
	}
	if _, err := a.mustCall(ctx, msg{"channel": "/meta/subscribe", "subscription": "/fault/drop"}); err != nil {
		t.Fatal(err)
	}
	if err := b.start(ctx); err != nil {
		t.Fatal(err)
	}
	// connect sends a connect acknowledging batch ack and returns the
	// reply's batch number and the deliveries.
	connect := func(c *faultClient, ack int, extra msg) (int, []msg, error) {
		m := faultConnect()
		m["ext"] = msg{"ack": ack}
		for k, v := range extra {
			m[k] = v
		}
		r, others, err := c.call(ctx, m)
		if err != nil {
			return 0, nil, err
		}
		if r["successful"] != true {
			return 0, nil, fmt.Errorf("connect failed: %v", r)
		}
		return faultAck(r), others, nil
	}
	acked, got, err := connect(a, -1, nil) // the first connect returns at once
	if err != nil || len(got) != 0 {
		t.Fatalf("first connect: %v %v", got, err)
	}

	// A's next connect goes through the proxy and is held.
	ptr := &http.Transport{}
	defer ptr.CloseIdleConnections()
	viaProxy := &faultClient{url: "http://" + proxy.ln.Addr().String() + "/cometd",
		http: &http.Client{Transport: ptr, Timeout: 30 * time.Second}, tag: "a", id: a.id}
	errc := make(chan error, 1)
	go func() {
		_, got, err := connect(viaProxy, acked, nil)
		if err == nil {
			err = fmt.Errorf("connect through the dropped proxy returned %v", got)
		}
		errc <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := srv.held("a"); n != 1 {
			return fmt.Errorf("%d connects of A held", n)
		}
		return nil
	})
	proxy.drop()
	if err := <-errc; err == nil || strings.Contains(err.Error(), "returned") {
		t.Fatalf("connect through the proxy: %v", err)
	}

	// The publish releases the held connect; the server writes its
	// response into the dropped connection, successfully.
	if _, err := b.mustCall(ctx, msg{"channel": "/fault/drop", "data": msg{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n, d := srv.held("a"), proxy.discarded.Load(); n != 0 || d == 0 {
			return fmt.Errorf("%d connects of A held, %d bytes of response thrown away", n, d)
		}
		return nil
	})
	if _, err := b.mustCall(ctx, msg{"channel": "/fault/drop", "data": msg{"n": 2}}); err != nil {
		t.Fatal(err)
	}

	// A never saw that batch: it acknowledges the older one again.
	var all []msg
	deadline := time.Now().Add(10 * time.Second)
	for len(all) < 2 && time.Now().Before(deadline) {
		acked2, got, err := connect(a, acked, msg{"advice": msg{"timeout": 2000}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
		if len(got) > 0 {
			acked = acked2
		}
	}
	if len(all) != 2 || faultData(all[0], "n") != 1 || faultData(all[1], "n") != 2 {
		t.Fatalf("after the dropped response A got %v, want n=1 then n=2", all)
	}
	// Acknowledged: nothing comes again.
	_, got, err = connect(a, acked, msg{"advice": msg{"timeout": 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("after acknowledging, A got %v again", got)
	}
}
