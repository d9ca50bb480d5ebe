package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// These tests hold the hub to its bounds in bytes, per session, per
// address and in total, and to its limits per address (issue 15).

// fromAddress makes c's requests come from another loopback address, as
// another machine would.
func fromAddress(c *client, ip string) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	return c
}

// payload returns a JSON string value of about n bytes.
func payload(n int) string { return strings.Repeat("x", n) }

// connectBytes makes one /meta/connect that is answered at once and
// returns the size of its response body and its deliveries.
func connectBytes(t *testing.T, c *client) (int, []msg) {
	t.Helper()
	body := fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling","advice":{"timeout":0}}]`, c.id)
	resp, err := c.http.Post(c.url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []msg
	if err := json.Unmarshal(data, &msgs); err != nil {
		t.Fatalf("connect reply: %v: %.200s", err, data)
	}
	var got []msg
	for _, m := range msgs {
		if m["channel"] != "/meta/connect" {
			got = append(got, m)
		}
	}
	return len(data), got
}

// A client that never reads is kept at most MaxSessionBytes, counted in
// bytes whatever the message count: 200 messages of 60 KB (12 MB) leave it
// 256 KiB with drop-oldest, and its next connect reply is that size.
func TestSessionBytesBound(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSessionBytes: limit, QueuePolicy: actors.QueueDropOldest}})
	reader := newClient(t, srv).start()
	reader.subscribe("/big")
	pub := newClient(t, srv).start()
	big := payload(60_000)
	maxSeen := int64(0)
	for range 200 {
		if r := pub.publish("/big", big); r["successful"] != true {
			t.Fatalf("publish: %v", r)
		}
		maxSeen = max(maxSeen, srv.Hub().Stats().QueuedBytes)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Dropped == 0 {
			return fmt.Errorf("nothing dropped yet: %+v", st)
		}
		return nil
	})
	if maxSeen > limit {
		t.Errorf("the session kept %d bytes, over its limit of %d", maxSeen, limit)
	}
	n, got := connectBytes(t, reader)
	if n > limit+4096 || len(got) == 0 || len(got) > limit/60_000 {
		t.Errorf("connect reply of %d bytes with %d messages; the limit is %d bytes", n, len(got), limit)
	}
	t.Logf("kept at most %d bytes; reply %d bytes, %d messages; dropped %d", maxSeen, n, len(got), srv.Hub().Stats().Dropped)
}

// With the default policy the session that goes over its bytes is ended
// and its client told to handshake again.
func TestSessionBytesDisconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSessionBytes: 200 << 10}})
	reader := newClient(t, srv).start()
	reader.subscribe("/big")
	pub := newClient(t, srv).start()
	for range 10 {
		pub.publish("/big", payload(60_000))
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Overflows != 1 || st.QueuedBytes != 0 {
			return fmt.Errorf("overflows %d, queued bytes %d", st.Overflows, st.QueuedBytes)
		}
		return nil
	})
	r := find(reader.connect(), "/meta/connect")
	if r["successful"] != false || !strings.HasPrefix(errorCode(r), "402") {
		t.Fatalf("client past its bytes: %v", r)
	}
}

// The ack extension's unacknowledged messages count too: a client that
// never acknowledges is sent at most MaxSessionBytes in a reply.
func TestAckUnacknowledgedBytesBound(t *testing.T) {
	t.Parallel()
	const limit = 256 << 10
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSessionBytes: limit, QueuePolicy: actors.QueueDropOldest}})
	c := newClient(t, srv)
	_, replies := c.post(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"},
		"ext": msg{"ack": true}})
	c.id = only(t, replies, "/meta/handshake")["clientId"].(string)
	c.subscribe("/acked")
	pub := newClient(t, srv).start()
	for round := range 5 {
		for range 20 {
			pub.publish("/acked", payload(60_000))
		}
		// The client connects without acknowledging: everything sent so
		// far stays unacknowledged and is sent again, within the bound.
		n, got := connectBytes(t, c)
		if n > limit+4096 {
			t.Fatalf("round %d: reply of %d bytes (%d messages), over the limit of %d", round, n, len(got), limit)
		}
	}
	if st := srv.Hub().Stats(); st.QueuedBytes > limit {
		t.Errorf("kept %d bytes", st.QueuedBytes)
	}
}

// The sessions of one address together keep at most MaxBytesPerIP; a
// client from another address is not affected.
func TestAddressBytesBound(t *testing.T) {
	t.Parallel()
	const perSession, perAddress = 256 << 10, 512 << 10
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSessionBytes: perSession, MaxBytesPerIP: perAddress,
		QueuePolicy: actors.QueueDropOldest}})
	for range 8 {
		newClient(t, srv).start().subscribe("/ip")
	}
	other := fromAddress(newClient(t, srv), "127.0.0.2").start()
	other.subscribe("/ip")
	pub := newClient(t, srv).start()
	for range 20 {
		pub.publish("/ip", payload(60_000))
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Dropped == 0 {
			return fmt.Errorf("nothing dropped yet")
		}
		return nil
	})
	st := srv.Hub().Stats()
	if st.QueuedBytes > perAddress+perSession {
		t.Errorf("kept %d bytes: 127.0.0.1 may keep %d, 127.0.0.2 %d", st.QueuedBytes, perAddress, perSession)
	}
	// The other address's client still gets the latest messages, up to its own bound.
	_, got := connectBytes(t, other)
	if len(got) < 3 {
		t.Errorf("the client from another address got %d messages", len(got))
	}
}

// Past MaxTotalBytes new publishes and handshakes are refused with a 503
// until clients fetch what is kept for them.
func TestTotalBytesRefusesNewWork(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxTotalBytes: 300 << 10}})
	reader := newClient(t, srv).start()
	reader.subscribe("/full")
	pub := newClient(t, srv).start()
	var refused msg
	for range 20 {
		if r := pub.publish("/full", payload(60_000)); r["successful"] != true {
			refused = r
			break
		}
	}
	if refused == nil || !strings.HasPrefix(errorCode(refused), "503") || !strings.Contains(refused["error"].(string), "memory limit") {
		t.Fatalf("publish past the hub's total: %v", refused)
	}
	_, replies := newClient(t, srv).post(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if r := only(t, replies, "/meta/handshake"); r["successful"] != false || !strings.HasPrefix(errorCode(r), "503") {
		t.Errorf("handshake past the hub's total: %v", r)
	}
	if n, got := connectBytes(t, reader); len(got) == 0 {
		t.Fatalf("reader fetched %d bytes, no message", n)
	}
	if r := pub.publish("/full", "small"); r["successful"] != true {
		t.Errorf("publish after the reader fetched: %v", r)
	}
}

// A session that handshakes and never connects is removed after
// MaxInterval, not ConnectTimeout.
func TestMaxIntervalSweepsSessionsThatNeverConnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxInterval: 300 * time.Millisecond}})
	c := newClient(t, srv)
	c.handshake()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := srv.Hub().Stats().Clients; n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	r := find(c.connect(), "/meta/connect")
	if r["successful"] != false || !strings.HasPrefix(errorCode(r), "402") {
		t.Errorf("connect after the sweep: %v", r)
	}
}

// A flood of handshakes from one address (a proxy) never locks its other
// users out: sessions that have not connected are bounded per address,
// the oldest ended first, and only connected sessions count against
// MaxSessionsPerIP.
func TestHandshakeFloodDoesNotLockOutAnAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxPendingSessionsPerIP: 20, MaxSessionsPerIP: 5}})
	for range 200 {
		newClient(t, srv).handshake()
	}
	// Evicted sessions end just after the handshake that evicted them.
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if st := srv.Hub().Stats(); st.Clients != 20 || st.Evicted != 180 {
			return fmt.Errorf("after 200 handshakes: %d sessions, %d evicted; want 20 and 180", st.Clients, st.Evicted)
		}
		return nil
	})
	// Users behind the same address still get in, up to MaxSessionsPerIP
	// connected sessions.
	var users []*client
	for range 5 {
		users = append(users, newClient(t, srv).start())
	}
	_, replies := newClient(t, srv).post(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if r := only(t, replies, "/meta/handshake"); r["successful"] != false || !strings.Contains(fmt.Sprint(r["error"]), "Too many sessions") {
		t.Errorf("handshake past MaxSessionsPerIP connected sessions: %v", r)
	}
	if r := users[0].subscribe("/still/here"); r["successful"] != true {
		t.Errorf("a connected user: %v", r)
	}
}

// One address cannot fill the hub's channel table: its sessions together
// hold at most MaxSubscriptionsPerIP subscriptions, and another address
// still subscribes.
func TestSubscriptionsPerAddress(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{Hub: actors.Options{MaxSubscriptionsPerIP: 50, MaxSubscriptions: 40}})
	a, b := newClient(t, srv).start(), newClient(t, srv).start()
	for i := range 30 {
		if r := a.subscribe(fmt.Sprintf("/a/%d", i)); r["successful"] != true {
			t.Fatalf("subscribe %d: %v", i, r)
		}
	}
	var refused msg
	for i := range 30 {
		if r := b.subscribe(fmt.Sprintf("/b/%d", i)); r["successful"] != true {
			refused = r
			if i != 20 {
				t.Errorf("refused at subscription %d of the second session, want 20 (50 per address)", i)
			}
			break
		}
	}
	if refused == nil || refused["error"] != "403:/b/20:Too many subscriptions from this address" {
		t.Fatalf("past the address's subscriptions: %v", refused)
	}
	other := fromAddress(newClient(t, srv), "127.0.0.2").start()
	if r := other.subscribe("/other"); r["successful"] != true {
		t.Errorf("another address: %v", r)
	}
	found := false
	for _, r := range srv.Hub().Stats().Refusals {
		found = found || (r.Action == "subscribe" && r.Reason == "limit" && r.Count == 1)
	}
	if !found {
		t.Errorf("refusal not counted: %+v", srv.Hub().Stats().Refusals)
	}
	// Leaving gives the address its room back.
	a.unsubscribe("/a/0")
	if r := b.subscribe("/b/20"); r["successful"] != true {
		t.Errorf("after an unsubscribe: %v", r)
	}
}

// A request of many tiny messages cannot make the hub build a huge reply
// (or decode a huge batch): past MaxBatch (1,000) messages it is refused
// whole before it is decoded. Four concurrent 1 MiB floods of {} used to
// get 21.6 MiB replies each.
func TestRequestAmplification(t *testing.T) {
	t.Parallel()
	srv := startServer(t, server.Config{})
	flood := "[" + strings.TrimSuffix(strings.Repeat("{},", 340_000), ",") + "]"
	type answer struct {
		status, size int
		body         string
		err          error
	}
	answers := make(chan answer, 4)
	for range 4 {
		go func() {
			resp, err := http.Post(srv.URL()+"/cometd", "application/json", strings.NewReader(flood))
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, len(data), string(data), err}
		}()
	}
	for range 4 {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.status != http.StatusBadRequest || a.size > 1024 || !strings.Contains(a.body, "Too many messages in one request (at most 1000)") {
			t.Errorf("a 1 MiB flood of {}: HTTP %d, %d bytes: %.200s", a.status, a.size, a.body)
		}
	}
	// At the limit, the reply stays small in absolute terms.
	c := newClient(t, srv)
	body := "[" + strings.TrimSuffix(strings.Repeat("{},", 1000), ",") + "]"
	resp, err := c.http.Post(c.url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(data) > 200<<10 {
		t.Errorf("1,000 empty messages got a reply of %d bytes", len(data))
	}
	t.Logf("1,000 empty messages (%d bytes): reply %d bytes", len(body), len(data))
}
