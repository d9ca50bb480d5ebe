package test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

func TestHandshake(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv)
	r := c.handshake()
	id := r["clientId"].(string)
	if len(id) < 26 { // 128 bits in base32 need 26 characters
		t.Errorf("clientId %q carries fewer than 128 bits", id)
	}
	if r["version"] != "1.0" || r["id"] != "1" {
		t.Errorf("handshake reply: %v", r)
	}
	if types := fmt.Sprint(r["supportedConnectionTypes"]); types != "[websocket long-polling callback-polling]" {
		t.Errorf("supportedConnectionTypes = %v", types)
	}
	adv, _ := r["advice"].(msg)
	if adv["reconnect"] != "retry" || adv["interval"] != 0.0 || adv["timeout"] != 30000.0 {
		t.Errorf("advice = %v", adv)
	}
	if c2 := newClient(t, srv).handshake()["clientId"]; c2 == id {
		t.Error("two handshakes got the same clientId")
	}
}

func TestHandshakeFailures(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv)
	for _, tc := range []struct {
		name string
		hs   msg
		code string
	}{
		{"no common type", msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"iframe", "flash"}}, "406"},
		{"no types", msg{"channel": "/meta/handshake", "version": "1.0"}, "406"},
		{"bad version", msg{"channel": "/meta/handshake", "version": "2.0", "supportedConnectionTypes": []string{"long-polling"}}, "406"},
		{"no version", msg{"channel": "/meta/handshake", "supportedConnectionTypes": []string{"long-polling"}}, "406"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, replies := c.post(tc.hs)
			r := only(t, replies, "/meta/handshake")
			if r["successful"] != false || errorCode(r) != tc.code {
				t.Fatalf("want failure %s, got %v", tc.code, r)
			}
			if adv, _ := r["advice"].(msg); adv["reconnect"] != "none" {
				t.Errorf("want advice reconnect none, got %v", r["advice"])
			}
			if r["clientId"] != nil {
				t.Errorf("failed handshake carries a clientId: %v", r)
			}
		})
	}
}

func TestHandshakeIgnoresOtherMessagesInRequest(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{AnonPublish: true}})
	watcher := newClient(t, srv).start()
	watcher.subscribe("/x")
	c := newClient(t, srv)
	_, replies := c.post(
		msg{"channel": "/x", "data": "before"},
		msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}},
		msg{"channel": "/x", "data": "after"},
	)
	only(t, replies, "/meta/handshake")
	watcher.publish("/x", "marker")
	got := watcher.deliveries(1, 5*time.Second)
	if len(got) != 1 || got[0]["data"] != "marker" {
		t.Fatalf("messages beside a handshake were not ignored: %v", got)
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv)
	_, r := c.post(msg{"channel": "/meta/connect", "connectionType": "long-polling"})
	if got := only(t, r, "/meta/connect"); errorCode(got) != "401" {
		t.Errorf("connect without clientId: %v", got)
	}
	_, r = c.post(msg{"channel": "/meta/connect", "clientId": "nosuchclient", "connectionType": "long-polling"})
	got := only(t, r, "/meta/connect")
	if errorCode(got) != "402" || got["error"] != "402:nosuchclient:Unknown client" {
		t.Errorf("connect with unknown clientId: %v", got)
	}
	if adv, _ := got["advice"].(msg); adv["reconnect"] != "handshake" || adv["interval"] != 0.0 {
		t.Errorf("unknown client advice: %v", got["advice"])
	}
	c.handshake()
	_, r = c.post(msg{"channel": "/meta/connect", "clientId": c.id})
	if got := only(t, r, "/meta/connect"); errorCode(got) != "400" {
		t.Errorf("connect without connectionType: %v", got)
	}
	_, r = c.post(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "carrier-pigeon"})
	if got := only(t, r, "/meta/connect"); errorCode(got) != "406" {
		t.Errorf("connect with unknown connectionType: %v", got)
	}
}

func TestConnectHeldUntilMessage(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	sub := newClient(t, srv).start()
	sub.subscribe("/chat/room")
	pub := newClient(t, srv).start()

	held := make(chan []msg, 1)
	go func() { held <- sub.connect() }()
	// The connect is held: nothing has been published.
	waitHeld(t, srv, 1)
	select {
	case r := <-held:
		t.Fatalf("connect returned with nothing to deliver: %v", r)
	default:
	}
	pub.publish("/chat/room", msg{"n": 1})
	select {
	case r := <-held:
		if len(r) != 2 || r[0]["channel"] != "/chat/room" || r[1]["channel"] != "/meta/connect" || r[1]["successful"] != true {
			t.Fatalf("held connect response: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held connect not released by a publish")
	}
}

func TestConnectReturnsAllQueuedMessages(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	sub := newClient(t, srv).start()
	sub.subscribe("/q")
	pub := newClient(t, srv).start()
	for i := range 5 {
		pub.publish("/q", i)
	}
	// Every message queued while no connect was outstanding comes in one response.
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d := srv.Hub().Stats().Delivered; d < 5 {
			return fmt.Errorf("%d of 5 messages queued", d)
		}
		return nil
	})
	r := sub.connect()
	if len(r) != 6 {
		t.Fatalf("want 5 deliveries and the connect reply in one response, got %d: %v", len(r), r)
	}
	for i := range 5 {
		if r[i]["data"] != float64(i) {
			t.Fatalf("delivery %d = %v", i, r[i])
		}
	}
}

func TestPollTimeout(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{PollTimeout: 300 * time.Millisecond}})
	c := newClient(t, srv).start()
	start := time.Now()
	r := c.connect()
	if got := only(t, r, "/meta/connect"); got["successful"] != true {
		t.Fatalf("connect at poll timeout: %v", got)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("connect returned after %v, before the poll timeout", time.Since(start))
	}
}

func TestClientAdviceTimeoutZeroReturnsAtOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	done := make(chan []msg, 1)
	go func() {
		_, r := c.post(msg{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling", "advice": msg{"timeout": 0}})
		done <- r
	}()
	select {
	case r := <-done:
		only(t, r, "/meta/connect")
	case <-time.After(10 * time.Second):
		t.Fatal("connect with advice timeout 0 was held")
	}
}

func TestNewConnectAnswersOlderOne(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	first := make(chan []msg, 1)
	go func() { first <- c.connect() }()
	waitHeld(t, srv, 1)
	second := make(chan []msg, 1)
	go func() { second <- c.connect() }()
	select {
	case r := <-first:
		if got := only(t, r, "/meta/connect"); got["successful"] != true {
			t.Fatalf("older connect: %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second connect did not answer the held one")
	}
	// The new connect is the one held now.
	checkFor(t, 10*time.Second, 2*time.Millisecond, func() error {
		select {
		case r := <-second:
			t.Fatalf("the new connect returned at once: %v", r)
		default:
		}
		if h := srv.Hub().Stats().Held; h != 1 {
			return fmt.Errorf("%d connects held, want the new one", h)
		}
		return nil
	})
}

func TestSubscribeForms(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	r := c.subscribe("/a")
	if r["successful"] != true || r["subscription"] != "/a" || r["clientId"] != c.id {
		t.Errorf("subscribe string: %v", r)
	}
	r = c.subscribe("/b", "/c/*")
	if subs, _ := r["subscription"].([]any); r["successful"] != true || len(subs) != 2 {
		t.Errorf("subscribe array: %v", r)
	}
	for _, tc := range []struct{ sub, code string }{
		{"/meta/connect", "403"},
		{"/meta/*", "403"},
		{"/meta/**", "403"},
		{"no-slash", "405"},
		{"/a//b", "405"},
		{"/a/*/b", "405"},
		{"/a/b/", "405"},
		{"/a b", "405"},
	} {
		if r := c.subscribe(tc.sub); r["successful"] != false || errorCode(r) != tc.code {
			t.Errorf("subscribe %q: want %s, got %v", tc.sub, tc.code, r)
		}
	}
	_, replies := c.post(msg{"channel": "/meta/subscribe", "clientId": c.id})
	if r := only(t, replies, "/meta/subscribe"); errorCode(r) != "400" {
		t.Errorf("subscribe without subscription: %v", r)
	}
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	if r := c.unsubscribe("/never"); r["successful"] != false {
		t.Errorf("unsubscribe from a channel never subscribed: %v", r)
	}
	c.subscribe("/u", "/v")
	if r := c.unsubscribe("/u"); r["successful"] != true {
		t.Fatalf("unsubscribe: %v", r)
	}
	pub := newClient(t, srv).start()
	pub.publish("/u", "gone")
	pub.publish("/v", "marker")
	got := c.deliveries(1, 5*time.Second)
	if len(got) != 1 || got[0]["channel"] != "/v" {
		t.Fatalf("after unsubscribe want only the marker, got %v", got)
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	sub := newClient(t, srv).start()
	sub.subscribe("/news")
	pub := newClient(t, srv).start()

	_, replies := pub.post(msg{"channel": "/news", "clientId": pub.id, "data": msg{"k": "v"}, "id": "p1", "ext": msg{"e": 1}})
	ack := only(t, replies, "/news")
	if ack["successful"] != true || ack["id"] != "p1" {
		t.Errorf("publish ack: %v", ack)
	}
	if _, ok := ack["data"]; ok {
		t.Errorf("publish ack carries data (CometD would take it for a delivery): %v", ack)
	}
	got := sub.deliveries(1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("deliveries: %v", got)
	}
	d := got[0]
	if d["channel"] != "/news" || d["id"] != "p1" || fmt.Sprint(d["data"]) != "map[k:v]" || fmt.Sprint(d["ext"]) != "map[e:1]" {
		t.Errorf("delivery: %v", d)
	}
	if _, ok := d["clientId"]; ok {
		t.Errorf("delivery carries the publisher's clientId: %v", d)
	}
}

func TestPublishRefusals(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	for _, tc := range []struct {
		name string
		m    msg
		code string
	}{
		{"no data", msg{"channel": "/x", "clientId": c.id}, "400"},
		{"no clientId", msg{"channel": "/x", "data": 1}, "401"},
		{"meta", msg{"channel": "/meta/foo", "clientId": c.id, "data": 1}, "403"},
		{"meta connect look-alike", msg{"channel": "/meta/subscribe/x", "clientId": c.id, "data": 1}, "403"},
		{"wildcard", msg{"channel": "/x/*", "clientId": c.id, "data": 1}, "405"},
		{"deep wildcard", msg{"channel": "/x/**", "clientId": c.id, "data": 1}, "405"},
		{"double slash", msg{"channel": "//meta/connect", "clientId": c.id, "data": 1}, "405"},
		{"bad char", msg{"channel": "/x?y", "clientId": c.id, "data": 1}, "405"},
		{"unknown service", msg{"channel": "/service/nope", "clientId": c.id, "data": 1}, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := c.post(tc.m)
			got := only(t, r, tc.m["channel"].(string))
			if got["successful"] != false || errorCode(got) != tc.code {
				t.Fatalf("want error %s, got %v", tc.code, got)
			}
		})
	}
}

func TestAnonPublish(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{AnonPublish: true}})
	sub := newClient(t, srv).start()
	sub.subscribe("/anon")
	anon := newClient(t, srv)
	_, r := anon.post(msg{"channel": "/anon", "data": "hello"})
	if got := only(t, r, "/anon"); got["successful"] != true {
		t.Fatalf("anonymous publish: %v", got)
	}
	if got := sub.deliveries(1, 5*time.Second); len(got) != 1 || got[0]["data"] != "hello" {
		t.Fatalf("anonymous message not delivered: %v", got)
	}
	_, r = anon.post(msg{"channel": "/meta/subscribe", "subscription": "/anon"})
	if got := only(t, r, "/meta/subscribe"); errorCode(got) != "401" {
		t.Fatalf("meta message without clientId under AnonPublish: %v", got)
	}
}

func TestServiceChannelsAreNotBroadcast(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{Services: map[string]actors.ServiceFunc{
		"echo": func(c *actors.Client, m *protocolMessage) ([]actors.ServiceReply, error) {
			return []actors.ServiceReply{{Data: m.Data}}, nil
		},
	}}})
	a := newClient(t, srv).start()
	if r := a.subscribe("/service/echo"); r["successful"] != true {
		t.Fatalf("subscribe to a service channel: %v", r)
	}
	b := newClient(t, srv).start()
	b.subscribe("/service/**", "/marker")
	_, replies := a.post(msg{"channel": "/service/echo", "clientId": a.id, "data": "ping", "id": "s1"})
	if len(replies) != 2 || replies[0]["successful"] != true || replies[1]["data"] != "ping" || replies[1]["id"] != "s1" {
		t.Fatalf("service publish response: %v", replies)
	}
	a.publish("/marker", "m")
	got := b.deliveries(1, 5*time.Second)
	if len(got) != 1 || got[0]["channel"] != "/marker" {
		t.Fatalf("a service message was broadcast: %v", got)
	}
}

func TestWildcardRoutingDeliversOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	all := newClient(t, srv).start()
	all.subscribe("/a/b/c", "/a/b/*", "/a/b/**", "/a/**", "/**")
	one := newClient(t, srv).start()
	one.subscribe("/a/*")
	deep := newClient(t, srv).start()
	deep.subscribe("/a/**")
	pub := newClient(t, srv).start()
	pub.publish("/a/b/c", "abc")
	pub.publish("/a/b", "ab")
	pub.publish("/z", "z")

	got := all.deliveries(3, 5*time.Second)
	if len(got) != 3 || got[0]["data"] != "abc" || got[1]["data"] != "ab" || got[2]["data"] != "z" {
		t.Fatalf("client on five overlapping patterns: want abc, ab, z once each, got %v", got)
	}
	pub.publish("/a/b/c", "end")
	if got := one.deliveries(1, 5*time.Second); len(got) != 1 || got[0]["data"] != "ab" {
		t.Fatalf("/a/* subscriber: %v", got)
	}
	if got := deep.deliveries(3, 5*time.Second); len(got) != 3 || got[0]["data"] != "abc" || got[1]["data"] != "ab" || got[2]["data"] != "end" {
		t.Fatalf("/a/** subscriber: %v", got)
	}
	// Nothing more arrives for the five-pattern client.
	pub.publish("/a/x", "last")
	if got := all.deliveries(2, 5*time.Second); len(got) != 2 || got[0]["data"] != "end" || got[1]["data"] != "last" {
		t.Fatalf("duplicates after the first round: %v", got)
	}
}

func TestPerPublisherOrder(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	const n = 300
	subs := make([]*client, 3)
	for i := range subs {
		subs[i] = newClient(t, srv).start()
	}
	subs[0].subscribe("/order/x")
	subs[1].subscribe("/order/*", "/order/x")
	subs[2].subscribe("/**")
	pubs := make([]*client, 2)
	for i := range pubs {
		pubs[i] = newClient(t, srv).start()
	}
	var wg sync.WaitGroup
	for p, pc := range pubs {
		wg.Go(func() {
			for i := range n {
				pc.post(msg{"channel": "/order/x", "clientId": pc.id, "data": msg{"p": p, "i": i}})
			}
		})
	}
	for s, sc := range subs {
		got := sc.deliveries(2*n, 20*time.Second)
		if len(got) != 2*n {
			t.Fatalf("subscriber %d: got %d of %d messages", s, len(got), 2*n)
		}
		next := map[float64]float64{}
		for _, d := range got {
			data := d["data"].(msg)
			p, i := data["p"].(float64), data["i"].(float64)
			if i != next[p] {
				t.Fatalf("subscriber %d: publisher %v message %v arrived when %v was due", s, p, i, next[p])
			}
			next[p]++
		}
	}
	wg.Wait()
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	c := newClient(t, srv).start()
	c.subscribe("/d")
	held := make(chan []msg, 1)
	go func() { held <- c.connect() }()
	waitHeld(t, srv, 1)
	_, r := c.post(msg{"channel": "/meta/disconnect", "clientId": c.id, "id": "bye"})
	if got := only(t, r, "/meta/disconnect"); got["successful"] != true || got["id"] != "bye" {
		t.Fatalf("disconnect: %v", got)
	}
	select {
	case r := <-held:
		only(t, r, "/meta/connect")
	case <-time.After(10 * time.Second):
		t.Fatal("held connect not answered on disconnect")
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, r := c.post(msg{"channel": "/d", "clientId": c.id, "data": 1})
		if code := errorCode(r[0]); code != "402" {
			return fmt.Errorf("publish after disconnect: %v", r)
		}
		return nil
	})
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Clients != 0 || st.Channels != 0 {
			return fmt.Errorf("after disconnect: %d clients, %d channels", st.Clients, st.Channels)
		}
		return nil
	})
}

func TestConnectTimeoutRemovesSession(t *testing.T) {
	t.Parallel()
	// The polling client is 900 ms from expiring between two connects:
	// ample, even on a loaded machine.
	srv := startServer(t, server.Config{Hub: actors.Options{ConnectTimeout: time.Second, PollTimeout: 100 * time.Millisecond}})
	idle := newClient(t, srv)
	idle.handshake()
	idle.subscribe("/t")
	busy := newClient(t, srv).start() // keeps polling: must survive
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		body := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, busy.id)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Post(busy.url, "application/json", strings.NewReader(body))
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	// Publishing does not count as having a connect outstanding, so the
	// idle client expires while it keeps publishing.
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, r := idle.post(msg{"channel": "/t", "clientId": idle.id, "data": 1})
		if errorCode(r[0]) != "402" {
			return fmt.Errorf("idle client still alive: %v", r)
		}
		return nil
	})
	close(stop)
	<-done
	if st := srv.Hub().Stats(); st.Clients != 1 || st.Channels != 0 {
		t.Fatalf("after expiry: %d clients, %d channels (want 1, 0)", st.Clients, st.Channels)
	}
	if r := busy.publish("/alive", 1); r["successful"] != true {
		t.Fatalf("polling client lost its session: %v", r)
	}
}

func TestFormAndGetEncodings(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	sub := newClient(t, srv).start()
	sub.subscribe("/form")
	c := newClient(t, srv).start()

	form := url.Values{"message": {fmt.Sprintf(`{"channel":"/form","clientId":%q,"data":"posted"}`, c.id)}}
	status, r := c.raw("application/x-www-form-urlencoded", []byte(form.Encode()))
	if status != 200 || only(t, r, "/form")["successful"] != true {
		t.Fatalf("form POST: %d %v", status, r)
	}
	// Several message values, one of them an array.
	form = url.Values{"message": {
		fmt.Sprintf(`{"channel":"/form","clientId":%q,"data":"m1"}`, c.id),
		fmt.Sprintf(`[{"channel":"/form","clientId":%q,"data":"m2"}]`, c.id),
	}}
	if status, r = c.raw("application/x-www-form-urlencoded", []byte(form.Encode())); status != 200 || len(r) != 2 {
		t.Fatalf("multi-valued form POST: %d %v", status, r)
	}
	resp, err := http.Get(c.url + "?" + url.Values{"message": {fmt.Sprintf(`[{"channel":"/form","clientId":%q,"data":"got"}]`, c.id)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if status, r = decodeResponse(t, resp); status != 200 || only(t, r, "/form")["successful"] != true {
		t.Fatalf("GET: %d %v", status, r)
	}
	got := sub.deliveries(4, 5*time.Second)
	if len(got) != 4 || got[0]["data"] != "posted" || got[1]["data"] != "m1" || got[2]["data"] != "m2" || got[3]["data"] != "got" {
		t.Fatalf("deliveries: %v", got)
	}
}

func TestCallbackPolling(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	base := srv.URL() + "/cometd"
	get := func(q url.Values) (int, string, string) {
		resp, err := http.Get(base + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type"), readAll(t, resp)
	}
	hs := `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["callback-polling"]}]`
	status, ct, body := get(url.Values{"message": {hs}, "jsonp": {"cb_1.done"}})
	if status != 200 || !strings.HasPrefix(ct, "text/javascript") || !strings.HasPrefix(body, "cb_1.done([{") || !strings.HasSuffix(body, "]);") {
		t.Fatalf("JSONP handshake: %d %q %q", status, ct, body)
	}
	if status, _, body = get(url.Values{"message": {hs}}); !strings.HasPrefix(body, "jsonpcallback(") {
		t.Fatalf("default callback name: %d %q", status, body)
	}
	for _, bad := range []string{"alert(1)", "x;y", "1abc", "a b", "<script>", strings.Repeat("a", 300)} {
		if status, _, body = get(url.Values{"message": {hs}, "jsonp": {bad}}); status != 400 || strings.Contains(body, bad) {
			t.Errorf("callback %q: want 400 without echo, got %d %q", bad, status, body)
		}
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
