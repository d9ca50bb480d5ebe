package test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

func TestQueueLimitDisconnects(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxQueue: 10}})
	slow := newClient(t, srv).start()
	slow.subscribe("/flood")
	pub := newClient(t, srv).start()
	for i := range 11 {
		pub.publish("/flood", i)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Overflows != 1 {
			return fmt.Errorf("overflows = %d", st.Overflows)
		}
		return nil
	})
	r := find(slow.connectRaw(), "/meta/connect")
	if errorCode(r) != "402" || r["advice"].(msg)["reconnect"] != "handshake" {
		t.Fatalf("client past the queue limit: %v", r)
	}
	if r := pub.publish("/flood", "after"); r["successful"] != true {
		t.Fatalf("publisher affected: %v", r)
	}
}

func TestQueueLimitDropsOldest(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxQueue: 10, QueuePolicy: actors.QueueDropOldest}})
	slow := newClient(t, srv).start()
	slow.subscribe("/flood")
	pub := newClient(t, srv).start()
	for i := range 25 {
		pub.publish("/flood", i)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Dropped != 15 || st.Queued != 10 {
			return fmt.Errorf("dropped %d queued %d", st.Dropped, st.Queued)
		}
		return nil
	})
	got := slow.deliveries(10, 5*time.Second)
	if len(got) != 10 || got[0]["data"] != 15.0 || got[9]["data"] != 24.0 {
		t.Fatalf("want the newest 10 messages, got %v", got)
	}
}

// TestMemoryFlatWhileClientsStopReading has 1,000 clients that subscribe
// and never poll while publishing goes on: the queue limit keeps the heap
// flat.
func TestMemoryFlatWhileClientsStopReading(t *testing.T) {
	// Not parallel: it measures the process's heap.
	srv := startServer(t, server.Config{Hub: actors.Options{MaxQueue: 50, QueuePolicy: actors.QueueDropOldest, ConnectTimeout: time.Hour, MaxInterval: time.Hour}})
	const clients = 1000
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c := newClient(t, srv)
			c.handshake()
			c.subscribe(fmt.Sprintf("/flood/%d", i%10))
		})
	}
	wg.Wait()
	pub, err := srv.Hub().NewLocalClient("")
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", 256)
	publish := func(rounds int) {
		for r := range rounds {
			for ch := range 10 {
				if err := pub.Publish(fmt.Sprintf("/flood/%d", ch), map[string]any{"r": r, "p": payload}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	settle := func(want uint64) {
		checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
			if d := srv.Hub().Stats().Delivered; d < want {
				return fmt.Errorf("%d of %d delivered", d, want)
			}
			return nil
		})
	}
	publish(100) // fills every queue to its limit
	settle(100 * clients)
	before := heap()
	publish(400) // four times as much again: only drops
	settle(500 * clients)
	after := heap()
	st := srv.Hub().Stats()
	t.Logf("heap %d KiB after 100 rounds, %d KiB after 500; queued %d, dropped %d", before>>10, after>>10, st.Queued, st.Dropped)
	if st.Queued > clients*50 {
		t.Fatalf("queued %d messages, over the limit of %d", st.Queued, clients*50)
	}
	if after > before+before/4 {
		t.Fatalf("heap grew from %d to %d KiB while clients were not reading", before>>10, after>>10)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSubscriptions: 3, MaxChannels: 5, MaxMessageSize: 100, MaxSessionsPerIP: 3}})
	a := newClient(t, srv).start()
	if r := a.subscribe("/s1", "/s2", "/s3", "/s4"); errorCode(r) != "403" || !strings.Contains(r["error"].(string), "Too many subscriptions") {
		t.Fatalf("subscription limit: %v", r)
	}
	a.subscribe("/s1", "/s2", "/s3")
	b := newClient(t, srv).start()
	b.subscribe("/c1", "/c2")
	if r := b.subscribe("/c3"); errorCode(r) != "403" || !strings.Contains(r["error"].(string), "Too many channels") {
		t.Fatalf("channel limit: %v", r)
	}
	if r := b.publish("/s1", strings.Repeat("x", 200)); errorCode(r) != "413" {
		t.Fatalf("message size limit: %v", r)
	}
	if r := b.publish("/s1", "small"); r["successful"] != true {
		t.Fatalf("small message: %v", r)
	}
	newClient(t, srv).start() // third session from 127.0.0.1
	_, replies := newClient(t, srv).post(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if r := replies[0]; errorCode(r) != "403" || r["advice"].(msg)["reconnect"] != "handshake" {
		t.Fatalf("sessions per address limit: %v", r)
	}
	// A session that ends frees its slot.
	a.post(msg{"channel": "/meta/disconnect", "clientId": a.id})
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, replies := newClient(t, srv).post(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
		if replies[0]["successful"] != true {
			return fmt.Errorf("handshake after a disconnect: %v", replies[0])
		}
		return nil
	})
}

func TestMultipleClientsOfOneBrowser(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSessionsPerBrowser: 1, MultiSessionInterval: 1500 * time.Millisecond}})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	tab1 := newClient(t, srv)
	tab1.http = browser
	tab1.start()
	cookies := jar.Cookies(mustParseURL(t, tab1.url))
	if len(cookies) != 1 || cookies[0].Name != "BAYEUX_BROWSER" {
		t.Fatalf("handshake did not set BAYEUX_BROWSER: %v", cookies)
	}
	tab2 := newClient(t, srv)
	tab2.http = browser
	tab2.start()
	held := make(chan []msg, 1)
	go func() { held <- tab1.connect() }()
	waitHeld(t, srv, 1)
	// The second tab of the same browser is told to poll, not to hold:
	// its connect returns with the multiple-clients advice.
	done := make(chan []msg, 1)
	go func() { done <- tab2.connect() }()
	select {
	case r := <-done:
		adv, _ := find(r, "/meta/connect")["advice"].(msg)
		if adv["multiple-clients"] != true || adv["interval"] != 1500.0 {
			t.Fatalf("second tab's connect: %v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second tab's connect was held")
	}
	// Another browser is not affected: its connect is held too.
	other := newClient(t, srv).start()
	other.subscribe("/b")
	go func() { done <- other.connect() }()
	checkFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		select {
		case r := <-done:
			t.Fatalf("another browser's connect was not held: %v", r)
		default:
		}
		if h := srv.Hub().Stats().Held; h != 2 {
			return fmt.Errorf("%d connects held, want tab 1's and the other browser's", h)
		}
		return nil
	})
	tab1.publish("/b", "wake")
	<-done
}

// TestChannelNameTricks lists names that try to pass for /meta or to dodge
// the authorization hook, with the answer each gets. The hook must have
// seen every message, and none may be handled as a meta message.
func TestChannelNameTricks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := startServer(t, server.Config{Hub: actors.Options{MessageACL: func(c *actors.Client, m *protocolMessage) error {
		mu.Lock()
		defer mu.Unlock()
		seen[m.Channel] = true
		for _, s := range m.Subscription.Names {
			seen["sub:"+s] = true
		}
		return nil
	}}})
	c := newClient(t, srv).start()
	for _, tc := range []struct {
		name          string
		publish, subs string // expected error code, "" for success
	}{
		{"/meta/connect", "400", "403"}, // the real thing: a connect without connectionType
		{"/meta/subscribe/x", "403", "403"},
		{"/meta/handshake", "406", "403"}, // the real thing: a handshake without version
		{"//meta/connect", "405", "405"},
		{"/Meta/connect", "", ""}, // case matters: a regular channel
		{"/META/subscribe", "", ""},
		{"/meta/connect/", "405", "405"},
		{"/meta//connect", "405", "405"},
		{"/meta/*", "405", "403"},
		{"/meta/**", "405", "403"},
		{"/ｍeta/connect", "405", "405"}, // full-width m
		{"/meta\u200b/connect", "405", "405"},
		{"/meta/connect\x00", "405", "405"},
		{"/a/*/b", "405", "405"},
		{"/a//b", "405", "405"},
		{"/service/../meta/connect", "405", "405"},
		{"/%6Deta/connect", "405", "405"},
		{" /meta/connect", "405", "405"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := c.post(msg{"channel": tc.name, "clientId": c.id, "data": "x"})
			got := r[0]
			if code := errorCode(got); code != tc.publish {
				t.Errorf("publish: want %q, got %v", tc.publish, got)
			}
			if got["channel"] != tc.name {
				t.Errorf("answered on another channel: %v", got)
			}
			if rs := c.subscribe(tc.name); errorCode(rs) != tc.subs {
				t.Errorf("subscribe: want %q, got %v", tc.subs, rs)
			}
			mu.Lock()
			defer mu.Unlock()
			if (!seen[tc.name] && tc.name != "/meta/handshake") || !seen["sub:"+tc.name] {
				t.Errorf("authorization hook skipped (publish %v, subscribe %v)", seen[tc.name], seen["sub:"+tc.name])
			}
		})
	}
}

// TestActorsAndGoroutinesReturnToBaseline: 10,000 clients handshake,
// subscribe and leave (half disconnect, half just stop polling and expire);
// afterwards the actor count and the goroutine count are back where they
// started, and no channel actor is left.
func TestActorsAndGoroutinesReturnToBaseline(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	n := 10000
	if testing.Short() {
		n = 1000
	}
	srv := startServer(t, server.Config{Hub: actors.Options{ConnectTimeout: 300 * time.Millisecond, MaxSessionsPerIP: -1}})
	system := srv.Hub().System()
	baseActors, baseGoroutines := actorCount(system), runtime.NumGoroutine()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				c := newClient(t, srv)
				c.http = hc
				c.handshake()
				c.subscribe(fmt.Sprintf("/churn/%d", i%500), "/churn/**")
				if i%2 == 0 {
					c.post(msg{"channel": "/meta/disconnect", "clientId": c.id})
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%d clients handshook, subscribed and left in %v", n, time.Since(start))
	tr.CloseIdleConnections()
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		st := srv.Hub().Stats()
		if st.Clients != 0 || st.Channels != 0 {
			return fmt.Errorf("%d clients, %d channels left", st.Clients, st.Channels)
		}
		if a := actorCount(system); a > baseActors {
			return fmt.Errorf("%d actors, baseline %d", a, baseActors)
		}
		if g := runtime.NumGoroutine(); g > baseGoroutines+5 {
			return fmt.Errorf("%d goroutines, baseline %d", g, baseGoroutines)
		}
		return nil
	})
}

// actorCount is the number of processes registered in the actor system.
func actorCount(system *actor.ActorSystem) int {
	n := 0
	for _, bucket := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += bucket.Count()
	}
	return n
}

// TestSlowHeadersAreCut: a peer that never finishes its request headers is
// disconnected after the read-header timeout.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{ReadHeaderTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /cometd HTTP/1.1\r\nHost: x\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("server kept a slow client's connection for 10 s")
			}
			break
		}
	}
	t.Logf("slow client cut after %v", time.Since(start))
}
