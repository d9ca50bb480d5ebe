package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// These tests hold the embedding API to its promises: the method and the
// actor message of one action answer alike, user code may call back into
// the hub, and Drain keeps to its context.

// poll waits for fn with testutil.CheckFor, with a generous deadline (so
// that a broken promise fails instead of hanging, not a speed check).
func poll(t testing.TB, what string, fn func() bool) {
	t.Helper()
	testutil.CheckFor(t, 30*time.Second, 2*time.Millisecond, func() error {
		if !fn() {
			return errors.New("waiting for " + what)
		}
		return nil
	})
}

// request sends msg to pid with a sender and returns the *Result.
func request(t *testing.T, h *Hub, pid *actor.PID, msg any) *Result {
	t.Helper()
	res, err := h.root.RequestFuture(pid, msg, 30*time.Second).Result()
	if err != nil {
		t.Fatalf("no answer to %T: %v", msg, err)
	}
	r, ok := res.(*Result)
	if !ok {
		t.Fatalf("answer to %T is %T, want *Result", msg, res)
	}
	return r
}

func codeOf(err error) int {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}

// Issue 12, items 1-3: Hub.Push, the *Push message to the hub and the
// *Push message straight to the session validate alike, fail alike, emit
// the same events and answer a sender every time.
func TestPushSameByMethodAndMessage(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pushes []string
	h := startHub(t, Options{Callback: func(e Event) {
		if e.Type == EventClientPush {
			mu.Lock()
			pushes = append(pushes, string(e.Data))
			mu.Unlock()
		}
	}})
	id := remoteClient(t, h)
	pid, ok := h.SessionPID(id)
	if !ok {
		t.Fatal("no session PID")
	}
	bad := []struct {
		name    string
		channel string
		data    any
		code    int // the *protocol.Error code, 0 for an encoding error
	}{
		{"not a channel", "not a channel", 1, protocol.CodeInvalidChannel},
		{"wildcard", "/a/*", 1, protocol.CodeInvalidChannel},
		{"meta", "/meta/connect", 1, protocol.CodeDenied},
		{"unencodable", "/a", func() {}, 0},
	}
	for _, c := range bad {
		errs := map[string]error{
			"Hub.Push":            h.Push(id, c.channel, c.data),
			"*Push to the hub":    request(t, h, h.PID(), &Push{ClientID: id, Channel: c.channel, Data: c.data}).Err,
			"*Push to SessionPID": request(t, h, pid, &Push{Channel: c.channel, Data: c.data}).Err,
		}
		for way, err := range errs {
			if err == nil {
				t.Errorf("%s: %s accepted", c.name, way)
				continue
			}
			if got := codeOf(err); got != c.code {
				t.Errorf("%s: %s: error %v (code %d), want code %d", c.name, way, err, got, c.code)
			}
		}
	}
	// Three good pushes, one each way: each is answered, delivered and
	// reported; none of the bad ones was.
	if err := h.Push(id, "/p", "method"); err != nil {
		t.Fatal(err)
	}
	if r := request(t, h, h.PID(), &Push{ClientID: id, Channel: "/p", Data: "hub"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := request(t, h, pid, &Push{Channel: "/p", Data: "session"}); r.Err != nil || r.ClientID != id {
		t.Fatalf("push to SessionPID answered %+v", r)
	}
	got := deliveries(t, h, id, 3)
	if len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	for i, want := range []string{"method", "hub", "session"} {
		if got[i]["channel"] != "/p" || got[i]["data"] != want {
			t.Errorf("delivery %d = %v, want %q on /p", i, got[i], want)
		}
	}
	poll(t, "three client_push events", func() bool { mu.Lock(); defer mu.Unlock(); return len(pushes) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(pushes, ",") != `"method","hub","session"` {
		t.Errorf("client_push events %v, want the three good pushes only", pushes)
	}
}

// Issue 12, item 4: a local client may unsubscribe (and subscribe) from
// inside its own callback; no message arrives through a subscription
// after Unsubscribe returns.
func TestLocalClientUnsubscribeInOwnCallback(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{})
	c, err := h.NewLocalClient("")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	done := make(chan error, 1)
	err = c.Subscribe("/self", func(m *Message) {
		if calls.Add(1) != 1 {
			return
		}
		err := c.Unsubscribe("/self")
		if err == nil {
			err = c.Subscribe("/other", func(*Message) {})
		}
		done <- err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := h.Publish("/self", i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Unsubscribe/Subscribe inside the callback: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Unsubscribe inside the client's own callback did not return")
	}
	if err := c.Unsubscribe("/self"); !errors.Is(err, ErrNotSubscribed) {
		t.Errorf("second Unsubscribe: %v, want ErrNotSubscribed", err)
	}
	// Everything published after is not delivered through /self.
	_ = h.Publish("/self", "late")
	other := make(chan *Message, 1)
	if err := c.Subscribe("/other", func(m *Message) { other <- m }); err != nil {
		t.Fatal(err)
	}
	_ = h.Publish("/other", "marker")
	<-other
	if n := calls.Load(); n != 1 {
		t.Errorf("callback ran %d times; after the Unsubscribe inside it, it must not run again", n)
	}
}

// Issue 12, item 5: a Callback that publishes while Drain runs does not
// deadlock it (it used to: the callback ran inside the publish gate and
// took it again while Drain waited for it).
func TestDrainWithPublishingCallback(t *testing.T) {
	t.Parallel()
	var h *Hub
	inside := make(chan struct{})
	draining := make(chan struct{})
	published := make(chan error, 1)
	var once sync.Once
	h = startHub(t, Options{Callback: func(e Event) {
		if e.Type != EventPublish || e.Channel != "/in" {
			return
		}
		once.Do(func() {
			close(inside)
			<-draining
			// Give Drain time to start waiting for the gate: this is the
			// interleaving that deadlocked, not a synchronisation.
			time.Sleep(20 * time.Millisecond)
			published <- h.Publish("/out", "echo")
		})
	}})
	go func() { _ = h.Publish("/in", 1) }()
	<-inside
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		close(draining)
		drained <- h.Drain(ctx)
	}()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-published; err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("publish from the callback during Drain: %v, want nil or ErrClosed", err)
	}
	if err := h.Publish("/in", "after"); !errors.Is(err, ErrClosed) {
		t.Errorf("publish after Drain: %v, want ErrClosed", err)
	}
}

// A Drain that cannot finish (a session is stuck in a service handler)
// returns with its context's error when the context ends.
func TestDrainKeepsToItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := startHub(t, Options{Services: map[string]ServiceFunc{
		"stuck": func(*Client, *protocol.Message) ([]ServiceReply, error) {
			entered <- struct{}{}
			<-release
			return nil, nil
		},
	}})
	t.Cleanup(func() { close(release) }) // before the hub's own cleanup shuts it down
	id := remoteClient(t, h)
	go h.HandleRemote(context.Background(), RemoteRequest{Messages: []*protocol.Message{publishMsg(id, "/service/stuck", `1`)}})
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain with a stuck session: %v, want the context's deadline", err)
	}
}

// A panicking broker cannot leave the publish gate held: the publish fails
// for the caller, is counted, and Drain still completes.
func TestBrokerPanicDoesNotBlockDrain(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{Broker: &panickyBroker{}})
	func() {
		defer func() { _ = recover() }()
		_ = h.Publish("/x", 1)
	}()
	if n := h.Stats().BrokerErrors; n != 1 {
		t.Errorf("broker errors %d, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Drain(ctx); err != nil {
		t.Fatalf("Drain after a broker panic: %v", err)
	}
}

// panickyBroker is an application's broker whose Publish panics.
type panickyBroker struct{}

func (*panickyBroker) Start(string, BrokerInbox) error { return nil }
func (*panickyBroker) Publish(*Message) error          { panic("broker exploded") }
func (*panickyBroker) Subscribe(string) error          { return nil }
func (*panickyBroker) Unsubscribe(string) error        { return nil }
func (*panickyBroker) Push(string, *Push) error        { return nil }
func (*panickyBroker) Close() error                    { return nil }
func (*panickyBroker) Query(context.Context, string, []byte) ([]NodeAnswer, []string, error) {
	return nil, nil, nil
}

// Issue 12, item 6: after Drain, connects are answered with advice to come
// back after DrainRetryInterval, not at once.
func TestDrainingConnectAdvice(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{})
	id := remoteClient(t, h)
	heldReply := make(chan []map[string]any, 1)
	go func() { heldReply <- call(t, h, connectMsg(id)) }()
	poll(t, "connect held", func() bool { return held(h, id) })
	if err := h.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	check := func(what string, r []map[string]any) {
		t.Helper()
		if len(r) != 1 || r[0]["successful"] != true {
			t.Fatalf("%s: %v", what, r)
		}
		adv, _ := r[0]["advice"].(map[string]any)
		iv, _ := adv["interval"].(float64)
		if adv["reconnect"] != "retry" || time.Duration(iv)*time.Millisecond < DrainRetryInterval {
			t.Errorf("%s: advice %v, want retry after at least %v", what, adv, DrainRetryInterval)
		}
	}
	check("held connect answered by Drain", <-heldReply)
	for i := range 3 {
		check(fmt.Sprintf("connect %d after Drain", i), call(t, h, connectMsg(id)))
	}
}

// Issue 12, item 7: an error from user code that wraps a *protocol.Error
// keeps its code, from the MessageACL and from a service alike.
func TestWrappedUserErrorsKeepTheirCode(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("checked by the application: %w",
		&protocol.Error{Code: protocol.CodeUnknownService, Args: []string{"x"}, Message: "Gone fishing"})
	h := startHub(t, Options{
		MessageACL: func(_ *Client, m *protocol.Message) error {
			if m.Channel == "/acl/refused" {
				return wrapped
			}
			return nil
		},
		Services: map[string]ServiceFunc{
			"refuse": func(*Client, *protocol.Message) ([]ServiceReply, error) { return nil, wrapped },
		},
	})
	id := remoteClient(t, h)
	for _, ch := range []string{"/acl/refused", "/service/refuse"} {
		r := call(t, h, publishMsg(id, ch, `1`))
		if len(r) != 1 || r[0]["error"] != "404:x:Gone fishing" {
			t.Errorf("%s: %v, want the wrapped 404", ch, r)
		}
	}
}

// reenter calls every public hub method once from wherever it runs. The
// calls may fail (the hub may be draining) but must return.
func reenter(h *Hub, tag string) {
	_ = h.Publish("/reenter/out", tag)
	_ = h.Stats()
	c, err := h.NewLocalClient("")
	if err != nil {
		return
	}
	_ = c.Subscribe("/reenter/x", func(*Message) {})
	_ = c.Publish("/reenter/x", tag)
	_ = h.Push(c.ID(), "/reenter/x", tag)
	_ = c.Unsubscribe("/reenter/x")
	_ = h.Disconnect(c.ID())
	c.Disconnect()
}

// From inside a local client's callback, a service handler, the MessageACL
// and the event Callback, every public hub method returns, while sessions
// come and go and while Drain runs.
func TestReentrantUserCode(t *testing.T) {
	t.Parallel()
	var h *Hub
	var counts [4]atomic.Int32 // callback, service, ACL, event
	ready := make(chan struct{})
	h = startHub(t, Options{
		Services: map[string]ServiceFunc{
			"reenter": func(*Client, *protocol.Message) ([]ServiceReply, error) {
				reenter(h, "service")
				counts[1].Add(1)
				return nil, nil
			},
		},
		MessageACL: func(_ *Client, m *protocol.Message) error {
			if m.Channel == "/reenter/acl" {
				reenter(h, "acl")
				counts[2].Add(1)
			}
			return nil
		},
		Callback: func(e Event) {
			<-ready
			if e.Type == EventPublish && e.Channel == "/reenter/event" {
				reenter(h, "event")
				counts[3].Add(1)
			}
		},
	})
	close(ready)
	bot, err := h.NewLocalClient("bot")
	if err != nil {
		t.Fatal(err)
	}
	err = bot.Subscribe("/reenter/local", func(m *Message) {
		reenter(h, "callback")
		// The bot's own subscriptions, from inside its own callback.
		_ = bot.Subscribe("/reenter/bot", func(*Message) {})
		_ = bot.Unsubscribe("/reenter/bot")
		counts[0].Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}

	// Sessions come and go meanwhile.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := call(t, h, &protocol.Message{Channel: protocol.MetaHandshake, Version: "1.0", SupportedConnectionTypes: []string{"long-polling"}})
			if id, _ := r[0]["clientId"].(string); id != "" {
				call(t, h, &protocol.Message{Channel: protocol.MetaDisconnect, ClientID: id})
			}
		}
	}()

	const rounds = 5
	id := remoteClient(t, h)
	for i := range rounds {
		call(t, h, publishMsg(id, "/service/reenter", `1`), publishMsg(id, "/reenter/acl", `1`))
		_ = h.Publish("/reenter/local", i)
		_ = h.Publish("/reenter/event", i)
	}
	poll(t, "every re-entrant call returned", func() bool {
		for i := range counts {
			if counts[i].Load() < rounds {
				return false
			}
		}
		return true
	})
	// Once more, with Drain running at the same time.
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- h.Drain(ctx)
	}()
	for i := range rounds {
		call(t, h, publishMsg(id, "/service/reenter", `1`), publishMsg(id, "/reenter/acl", `1`))
		_ = h.Publish("/reenter/local", i)
		_ = h.Publish("/reenter/event", i)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain while user code calls back: %v", err)
	}
	poll(t, "service and ACL calls during Drain returned", func() bool {
		return counts[1].Load() == 2*rounds && counts[2].Load() == 2*rounds
	})
	close(stop)
	wg.Wait()
	raw, _ := json.Marshal(h.Stats())
	t.Logf("stats after: %s", raw)
}
