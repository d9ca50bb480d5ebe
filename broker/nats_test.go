package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// inbox records what a broker hands to its hub.
type inbox struct {
	release chan struct{} // closed to let "block" queries answer

	mu     sync.Mutex
	msgs   []*actors.Message
	pushes []*actors.Push
}

func (in *inbox) Deliver(m *actors.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

func (in *inbox) Push(p *actors.Push) {
	in.mu.Lock()
	in.pushes = append(in.pushes, p)
	in.mu.Unlock()
}

// Answer answers a query with its op and body echoed, "fail" with an
// error.
func (in *inbox) Answer(op string, body []byte) ([]byte, error) {
	switch op {
	case "fail":
		return nil, errors.New("cannot answer")
	case "block":
		<-in.release
	}
	return []byte(op + ":" + string(body)), nil
}

func (in *inbox) messages() []*actors.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*actors.Message(nil), in.msgs...)
}

func (in *inbox) pushList() []*actors.Push {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*actors.Push(nil), in.pushes...)
}

// startNode starts a broker as node on the given servers.
func startNode(t *testing.T, node string, opts NATSOptions) (*NATS, *inbox) {
	t.Helper()
	b, err := NewNATS(opts)
	if err != nil {
		t.Fatal(err)
	}
	in := &inbox{release: make(chan struct{})}
	if err := b.Start(node, in); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Logf("close %s: %v", node, err)
		}
	})
	return b, in
}

func flush(t *testing.T, bs ...*NATS) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, b := range bs {
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func publish(t *testing.T, b *NATS, channel string, data any) {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(&actors.Message{Channel: channel, Data: raw, ClientID: "pub"}); err != nil {
		t.Fatal(err)
	}
}

func TestSubjects(t *testing.T) {
	for _, c := range []struct {
		channel string
		pattern bool
		want    string
	}{
		{"/a/b/c", false, "bayeux.msg.a.b.c"},
		{"/a/*", true, "bayeux.msg.a.*"},
		{"/a/**", true, "bayeux.msg.a.>"},
		{"/**", true, "bayeux.msg.>"},
		{"/*", true, "bayeux.msg.*"},
		{"/chat/demo", true, "bayeux.msg.chat.demo"},
		{"/x-y_z/!~()$@", false, "bayeux.msg.x-y_z.!~()$@"},
		{"/a.b/c d", false, "bayeux.msg.a%2Eb.c%20d"},
		{"/a/>/%", false, "bayeux.msg.a.%3E.%25"},
		{"/a/x*", false, "bayeux.msg.a.x%2A"},
		{"/é", false, "bayeux.msg.%C3%A9"},
	} {
		got, err := appendSubject([]byte("bayeux.msg"), c.channel, c.pattern)
		if err != nil || string(got) != c.want {
			t.Errorf("subject(%q, %v) = %q, %v; want %q", c.channel, c.pattern, got, err, c.want)
		}
	}
	for _, c := range []struct {
		channel string
		pattern bool
	}{
		{"", false}, {"a/b", false}, {"/", false}, {"/a//b", false}, {"/a/", false},
		{"/a/*", false}, {"/a/**", false}, {"/*/a", true}, {"/**/a", true},
	} {
		if got, err := appendSubject([]byte("p"), c.channel, c.pattern); err == nil {
			t.Errorf("subject(%q, %v) = %q, want an error", c.channel, c.pattern, got)
		}
	}
}

func TestNodeNameFromHostname(t *testing.T) {
	for in, want := range map[string]string{
		"web-1":                                "web-1",
		"Web_1.example.com":                    "Web-1",
		"":                                     "node",
		"---":                                  "node",
		"_x_":                                  "x",
		"ip-10-0-0-1.ec2":                      "ip-10-0-0-1",
		"abcdefghijklmnopqrstuvwxyz0123456789": "abcdefghijklmnopqrstuvwxyz012345",
		"a b":                                  "a-b",
	} {
		got := NodeNameFromHostname(in)
		if got != want || !nodeName.MatchString(got) {
			t.Errorf("NodeNameFromHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	m := &actors.Message{Channel: "/a/\"b\"", Data: json.RawMessage(`{"x":[1,2]}`), ID: json.RawMessage(`"7"`),
		Ext: json.RawMessage(`{"k":true}`), ClientID: "n1_abc"}
	buf := appendEnvelopeTail(appendEnvelopeHead(nil, "n1/0a0b", 42), m)
	e, err := decodeEnvelope(buf)
	if err != nil {
		t.Fatalf("%v: %s", err, buf)
	}
	if e.Origin != "n1/0a0b" || e.Seq != 42 || e.Channel != m.Channel || e.ClientID != m.ClientID ||
		string(e.Data) != string(m.Data) || string(e.ID) != string(m.ID) || string(e.Ext) != string(m.Ext) {
		t.Fatalf("round trip: got %+v from %s", e, buf)
	}
	bare := appendEnvelopeTail(appendEnvelopeHead(nil, "n1/0a0b", 1), &actors.Message{Channel: "/c"})
	if e, err := decodeEnvelope(bare); err != nil || string(e.Data) != "null" || e.ID != nil || e.Ext != nil {
		t.Fatalf("bare envelope %s: %+v, %v", bare, e, err)
	}
	for _, bad := range []string{`{`, `{"s":1,"c":"/a"}`, `{"o":"x","c":"/a"}`, `{"o":"x","s":1}`} {
		if _, err := decodeEnvelope([]byte(bad)); err == nil {
			t.Errorf("decodeEnvelope(%s): want an error", bad)
		}
	}
	p, err := encodePush(&actors.Push{ClientID: "n2_x", Channel: "/p", Data: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePush(p)
	if err != nil || got.ClientID != "n2_x" || got.Channel != "/p" || string(got.Data.(json.RawMessage)) != `{"n":1}` {
		t.Fatalf("push round trip: %+v, %v", got, err)
	}
	if _, err := encodePush(&actors.Push{ClientID: "x", Channel: "/p", Data: json.RawMessage(`{`)}); err == nil {
		t.Fatal("encodePush of invalid raw JSON: want an error")
	}
}

func TestNewNATSOptions(t *testing.T) {
	for _, o := range []NATSOptions{
		{},
		{URLs: []string{""}},
		{URLs: []string{"nats://a:1,nats://b:2"}},
		{URLs: []string{"nats://a:1"}, SubjectPrefix: "a..b"},
		{URLs: []string{"nats://a:1"}, SubjectPrefix: "a.*"},
		{URLs: []string{"nats://a:1"}, SubjectPrefix: "a b"},
	} {
		if _, err := NewNATS(o); err == nil {
			t.Errorf("NewNATS(%+v): want an error", o)
		}
	}
	b, err := NewNATS(NATSOptions{URLs: []string{"nats://127.0.0.1:1"}, SubjectPrefix: "app.bayeux"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(&actors.Message{Channel: "/a"}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Publish before Start: %v, want ErrNotStarted", err)
	}
	if err := b.Subscribe("/a"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Subscribe before Start: %v, want ErrNotStarted", err)
	}
	if err := b.Start("bad name", &inbox{}); err == nil {
		t.Error("Start with a bad node name: want an error")
	}
	// Nothing listens on port 1: Start succeeds all the same (the hub
	// serves its own clients meanwhile, and the broker joins once NATS is
	// there), not connected, and Close leaves nothing running.
	if err := b.Start("n1", &inbox{}); err != nil {
		t.Fatalf("Start without a reachable server: %v", err)
	}
	if b.Connected() || b.Stats().Connected {
		t.Error("connected without a server")
	}
	if err := b.Start("n1", &inbox{}); err == nil {
		t.Error("a second Start: want an error")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close without a server: %v", err)
	}
	unstarted, err := NewNATS(NATSOptions{URLs: []string{"nats://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstarted.Close(); err != nil {
		t.Errorf("Close of an unstarted broker: %v", err)
	}
}

// TestOverlappingSubscriptionsOnceInOrder: a node subscribed to /a/b,
// /a/* and /a/** gets three NATS copies of every publish to /a/b and hands
// the hub each message once, in order.
func TestOverlappingSubscriptionsOnceInOrder(t *testing.T) {
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}}
	a, _ := startNode(t, "a", opts)
	b, inB := startNode(t, "b", opts)
	for _, p := range []string{"/a/b", "/a/*", "/a/**"} {
		if err := b.Subscribe(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Subscribe("/a/**"); err != nil { // twice: a no-op
		t.Fatal(err)
	}
	flush(t, b)
	if got := b.Stats().Subscriptions; got != 3 {
		t.Fatalf("subscriptions = %d, want 3", got)
	}
	const n = 1000
	for i := range n {
		publish(t, a, "/a/b", i)
	}
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := b.Stats().Received; got != 3*n {
			return fmt.Errorf("b received %d, want %d", got, 3*n)
		}
		return nil
	})
	msgs := inB.messages()
	if len(msgs) != n {
		t.Fatalf("delivered %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprint(i) || m.Channel != "/a/b" || m.ClientID != "pub" {
			t.Fatalf("message %d: %s on %s from %s", i, m.Data, m.Channel, m.ClientID)
		}
	}
	st := b.Stats()
	if st.Duplicates != 2*n || st.Delivered != n {
		t.Fatalf("stats %+v: want %d duplicates, %d delivered", st, 2*n, n)
	}
	if st := a.Stats(); st.Published != n || st.PublishErrors != 0 {
		t.Fatalf("publisher stats %+v", st)
	}
}

// TestConcurrentPublishersOfOneNode: many goroutines of one node publish
// at once; the shared sequence must reach NATS in order, or the receiver
// would drop messages as duplicates.
func TestConcurrentPublishersOfOneNode(t *testing.T) {
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}}
	a, _ := startNode(t, "a", opts)
	a2, _ := startNode(t, "a2", opts)
	b, inB := startNode(t, "b", opts)
	for _, p := range []string{"/x/**", "/x/y"} {
		if err := b.Subscribe(p); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, b)
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := a
			if w%2 == 1 {
				pub = a2
			}
			for i := range each {
				raw, _ := json.Marshal([2]int{w, i})
				if err := pub.Publish(&actors.Message{Channel: "/x/y", Data: raw}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := b.Stats().Received; got != 2*writers*each {
			return fmt.Errorf("b received %d, want %d", got, 2*writers*each)
		}
		return nil
	})
	next := make([]int, writers)
	for _, m := range inB.messages() {
		var v [2]int
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v[1] != next[v[0]] {
			t.Fatalf("writer %d: got message %d, want %d", v[0], v[1], next[v[0]])
		}
		next[v[0]]++
	}
	for w, got := range next {
		if got != each {
			t.Fatalf("writer %d: %d messages delivered, want %d", w, got, each)
		}
	}
}

// TestNoInterestNoTraffic: a node without a subscription for a channel
// gets none of its messages; subscriptions come and go with Subscribe and
// Unsubscribe.
func TestNoInterestNoTraffic(t *testing.T) {
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}}
	a, _ := startNode(t, "a", opts)
	b, inB := startNode(t, "b", opts)
	c, inC := startNode(t, "c", opts)
	base := srv.NumSubscriptions()
	if err := b.Subscribe("/busy"); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("/quiet"); err != nil {
		t.Fatal(err)
	}
	flush(t, b, c)
	if got := srv.NumSubscriptions(); got != base+2 {
		t.Fatalf("server subscriptions %d, want %d", got, base+2)
	}
	for i := range 100 {
		publish(t, a, "/busy", i)
	}
	publish(t, a, "/quiet", "marker") // after the /busy messages on a's connection
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inC.messages()); n != 1 {
			return fmt.Errorf("%d messages on c, want the marker", n)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 100 {
			return fmt.Errorf("%d messages on b, want 100", n)
		}
		return nil
	})
	if st := c.Stats(); st.Received != 1 {
		t.Fatalf("c received %d messages, want only the marker", st.Received)
	}

	if err := c.Unsubscribe("/quiet"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe("/never"); err != nil {
		t.Fatal(err)
	}
	flush(t, c)
	if got := srv.NumSubscriptions(); got != base+1 {
		t.Fatalf("server subscriptions after unsubscribe %d, want %d", got, base+1)
	}
	publish(t, a, "/quiet", "gone")
	publish(t, a, "/busy", "marker")
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 101 {
			return fmt.Errorf("%d messages on b, want 101 with the marker", n)
		}
		return nil
	})
	if st := c.Stats(); st.Received != 1 || st.Subscriptions != 0 {
		t.Fatalf("c after unsubscribe: %+v", st)
	}
}

// TestPushToNode: a push goes to the named node's control subject only.
func TestPushToNode(t *testing.T) {
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}}
	a, _ := startNode(t, "a", opts)
	_, inB := startNode(t, "b", opts)
	_, inC := startNode(t, "c", opts)
	if err := a.Push("b", &actors.Push{ClientID: "b_123", Channel: "/private", Data: map[string]string{"hi": "b"}}); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.pushList()); n != 1 {
			return fmt.Errorf("%d pushes on b, want 1", n)
		}
		return nil
	})
	p := inB.pushList()[0]
	if p.ClientID != "b_123" || p.Channel != "/private" || string(p.Data.(json.RawMessage)) != `{"hi":"b"}` {
		t.Fatalf("push %+v", p)
	}
	if err := a.Push("no such", &actors.Push{ClientID: "x", Channel: "/p"}); err == nil {
		t.Fatal("push to an invalid node name: want an error")
	}
	if len(inC.pushList()) != 0 {
		t.Fatal("c got b's push")
	}
}

// TestMalformedInput: junk on the broker's subjects is counted and
// dropped.
func TestMalformedInput(t *testing.T) {
	srv := natstest.Run(t, 0)
	b, inB := startNode(t, "b", NATSOptions{URLs: []string{srv.URL()}})
	if err := b.Subscribe("/a"); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, s := range []string{"bayeux.msg.a", "bayeux.ctl.b"} {
		if err := nc.Publish(s, []byte("not json")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("bayeux.msg.a", []byte(`{"o":"z/1","s":1,"c":"/a","d":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 1 {
			return fmt.Errorf("%d messages on b, want the valid one", n)
		}
		return nil
	})
	if st := b.Stats(); st.Malformed != 2 {
		t.Fatalf("malformed = %d, want 2", st.Malformed)
	}
}

// TestRestartedNodeStartsAfresh: a node that comes back under the same
// name publishes from sequence 1 again and is not taken for duplicates.
func TestRestartedNodeStartsAfresh(t *testing.T) {
	srv := natstest.Run(t, 0)
	opts := NATSOptions{URLs: []string{srv.URL()}}
	b, inB := startNode(t, "b", opts)
	if err := b.Subscribe("/r"); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	for round := range 2 {
		a, err := NewNATS(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start("a", &inbox{}); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			publish(t, a, "/r", round*10+i)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := a.Publish(&actors.Message{Channel: "/r"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Publish after Close: %v, want ErrClosed", err)
		}
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 20 {
			return fmt.Errorf("%d messages on b, want 20", n)
		}
		return nil
	})
}

// TestNATSRestart: the NATS server goes away in the middle of traffic.
// Publishes while it is down fail (no reconnect buffer here), nothing
// crashes, and after it is back both nodes have re-subscribed by
// themselves and traffic resumes.
func TestNATSRestart(t *testing.T) {
	srv := natstest.Run(t, 0)
	var downs, ups sync.WaitGroup
	downs.Add(2)
	ups.Add(2)
	opts := func() NATSOptions {
		var downOnce, upOnce sync.Once
		return NATSOptions{URLs: []string{srv.URL()}, ReconnectWait: 20 * time.Millisecond, ReconnectBufSize: -1,
			OnDisconnect: func(error) { downOnce.Do(downs.Done) },
			OnReconnect:  func(string) { upOnce.Do(ups.Done) }}
	}
	a, _ := startNode(t, "a", opts())
	b, inB := startNode(t, "b", opts())
	if err := b.Subscribe("/t/**"); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	for i := range 50 {
		publish(t, a, "/t/x", i)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 50 {
			return fmt.Errorf("%d messages on b, want the first 50", n)
		}
		return nil
	})

	srv.Stop()
	downs.Wait()
	failed := 0
	for i := range 20 {
		raw, _ := json.Marshal(1000 + i)
		if err := a.Publish(&actors.Message{Channel: "/t/x", Data: raw}); err != nil {
			failed++
		}
	}
	if failed != 20 || a.Stats().PublishErrors != 20 || a.Stats().Connected {
		t.Fatalf("%d of 20 publishes failed while NATS was down; stats %+v", failed, a.Stats())
	}
	if err := b.Subscribe("/t/later"); err != nil { // kept and sent on reconnect
		t.Fatal(err)
	}

	srv.Restart()
	ups.Wait()
	flush(t, a, b)
	for i := range 50 {
		publish(t, a, "/t/later", 2000+i)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(inB.messages()); n != 100 {
			return fmt.Errorf("%d messages on b, want 100", n)
		}
		return nil
	})
	msgs := inB.messages()
	for i, m := range msgs {
		want := i
		if i >= 50 {
			want = 2000 + i - 50
		}
		if string(m.Data) != fmt.Sprint(want) {
			t.Fatalf("message %d: %s, want %d", i, m.Data, want)
		}
	}
	if st := b.Stats(); st.Disconnects != 1 || st.Reconnects != 1 || !st.Connected || st.Duplicates != 50 {
		t.Fatalf("b stats %+v", st)
	}
}
