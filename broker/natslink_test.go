package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

// The tests of this file are about the link to NATS: what the broker
// refuses to send, starting without NATS, and connections nats.go gives
// up.

// waitUntil polls cond every few milliseconds until it returns nil, and
// fails the test with its last error once within (a generous deadline,
// not a speed check) has passed.
func waitUntil(t *testing.T, within time.Duration, cond func() error) {
	t.Helper()
	testutil.CheckFor(t, within, 5*time.Millisecond, cond)
}

// received waits until in holds n messages.
func received(t *testing.T, in *inbox, n int) {
	t.Helper()
	waitUntil(t, 10*time.Second, func() error {
		if got := len(in.messages()); got != n {
			return fmt.Errorf("%d messages delivered, want %d", got, n)
		}
		return nil
	})
}

// logBuffer is a zerolog destination tests can read while the broker
// writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *zerolog.Logger {
	log := zerolog.New(l)
	return &log
}

// TestSubjectAndPayloadBounds: operations whose subject a NATS server
// would refuse (closing the connection over it) or whose message is over
// its max_payload are errors, counted, and never reach NATS; a subject at
// the bound does, both ways; both nodes stay connected throughout.
func TestSubjectAndPayloadBounds(t *testing.T) {
	t.Parallel()
	const maxPayload = 64 << 10
	srv := natstest.RunWith(t, 0, func(o *server.Options) { o.MaxPayload = maxPayload })
	opts := NATSOptions{URLs: []string{srv.URL()}, HeartbeatInterval: 50 * time.Millisecond}
	a, _ := startNode(t, "a", opts)
	b, inB := startNode(t, "b", opts)

	limit := DefaultMaxControlLine - controlLineReserve // longest subject
	atLimit := "/" + strings.Repeat("x", limit-len("bayeux.msg."))
	overLimit := atLimit + "y"
	long := "/" + strings.Repeat("z", 5000)
	for _, ch := range []string{long, overLimit} {
		if err := a.Publish(&actors.Message{Channel: ch, Data: []byte("1")}); !errors.Is(err, ErrSubjectTooLong) {
			t.Fatalf("publish to %d bytes: %v, want ErrSubjectTooLong", len(ch), err)
		}
		if err := b.Subscribe(ch); !errors.Is(err, ErrSubjectTooLong) {
			t.Fatalf("subscribe to %d bytes: %v, want ErrSubjectTooLong", len(ch), err)
		}
		if err := b.Unsubscribe(ch); err != nil { // nothing to end
			t.Fatalf("unsubscribe from a refused pattern: %v", err)
		}
	}
	if err := b.Subscribe(atLimit + "/**"); !errors.Is(err, ErrSubjectTooLong) {
		t.Fatalf("subscribe to a pattern over the bound: %v", err)
	}
	if err := b.Subscribe(atLimit); err != nil {
		t.Fatalf("subscribe at the bound: %v", err)
	}
	big := []byte(`"` + strings.Repeat("d", maxPayload) + `"`)
	if err := a.Publish(&actors.Message{Channel: atLimit, Data: big}); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("publish over max_payload: %v, want ErrPayloadTooLarge", err)
	}
	if err := a.Push("b", &actors.Push{ClientID: "b_1", Channel: "/p", Data: big}); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("push over max_payload: %v, want ErrPayloadTooLarge", err)
	}
	waitUntil(t, 10*time.Second, func() error {
		if n := a.Nodes(); len(n) != 1 {
			return fmt.Errorf("a knows %v, want b", n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := a.Query(ctx, "echo", big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("query over max_payload: %v, want ErrPayloadTooLarge", err)
	}

	// The subject at the bound travels, and so does the rest.
	flush(t, b)
	publish(t, a, atLimit, "at the bound")
	received(t, inB, 1)
	if err := b.Subscribe("/ok"); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	publish(t, a, "/ok", "fine")
	received(t, inB, 2)

	sa, sb := a.Stats(), b.Stats()
	if sa.Refused != 5 || sa.PublishErrors != 3 || sb.Refused != 3 {
		t.Fatalf("refusals: a %+v, b %+v", sa, sb)
	}
	for _, st := range []NATSStats{sa, sb} {
		if !st.Connected || st.Disconnects != 0 || st.Redials != 0 {
			t.Fatalf("the refusals disturbed a connection: %+v", st)
		}
	}
	if sb.Subscriptions != 2 {
		t.Fatalf("b holds %d subscriptions, want 2", sb.Subscriptions)
	}
}

// TestStartWithoutNATS: with no server at its URL, Start succeeds; the
// broker is not connected, keeps the subscriptions asked for meanwhile and
// joins once a server comes up on that port, calling OnReconnect; the
// subscription made before then works.
func TestStartWithoutNATS(t *testing.T) {
	t.Parallel()
	port := natstest.FreePort(t)
	joined := make(chan string, 1)
	logs := &logBuffer{}
	a, inA := startNode(t, "a", NATSOptions{
		URLs:          []string{fmt.Sprintf("nats://user:pass-word@127.0.0.1:%d", port)},
		ReconnectWait: 20 * time.Millisecond,
		Logger:        logs.logger(),
		OnReconnect:   func(url string) { joined <- url },
	})
	if a.Connected() {
		t.Fatal("connected without a server")
	}
	if err := a.Subscribe("/early"); err != nil {
		t.Fatalf("subscribe without a server: %v", err)
	}
	if st := a.Stats(); st.Subscriptions != 1 || st.Connected {
		t.Fatalf("stats without a server: %+v", st)
	}

	srv := natstest.Run(t, port)
	select {
	case url := <-joined:
		if want := fmt.Sprintf("nats://127.0.0.1:%d", port); url != want {
			t.Fatalf("OnReconnect got %q, want %q", url, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the broker did not join the server")
	}
	b, _ := startNode(t, "b", NATSOptions{URLs: []string{srv.URL()}})
	flush(t, a)
	publish(t, b, "/early", "hello")
	received(t, inA, 1)
	if st := a.Stats(); !st.Connected || st.Disconnects != 0 || st.Redials != 0 {
		t.Fatalf("stats after joining: %+v", st)
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, "not reachable") || !strings.Contains(out, "joined NATS") {
		t.Fatalf("want a warning at start and a line on joining:\n%s", out)
	}
	if strings.Contains(out, "pass-word") {
		t.Fatalf("the logs show the password:\n%s", out)
	}
}

// TestRedialWhenTheServerClosesTheConnection: a server whose
// max_control_line is below the broker's MaxControlLine refuses a long
// subscription and closes the connection, after which nats.go gives the
// connection up. The broker makes a fresh one, without that subscription
// (and with its subject bound below it) but with the others, and traffic
// flows again.
func TestRedialWhenTheServerClosesTheConnection(t *testing.T) {
	t.Parallel()
	srv := natstest.RunWith(t, 0, func(o *server.Options) { o.MaxControlLine = 1024 })
	back := make(chan string, 4)
	logs := &logBuffer{}
	b, inB := startNode(t, "b", NATSOptions{URLs: []string{srv.URL()}, ReconnectWait: 20 * time.Millisecond,
		Logger: logs.logger(), OnReconnect: func(url string) { back <- url }})
	a, _ := startNode(t, "a", NATSOptions{URLs: []string{srv.URL()}})
	if err := b.Subscribe("/t"); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	publish(t, a, "/t", 1)
	received(t, inB, 1)

	long := "/" + strings.Repeat("y", 2000) // under the broker's bound, over the server's
	if err := b.Subscribe(long); err != nil {
		t.Fatalf("subscribe within MaxControlLine: %v", err)
	}
	select {
	case <-back:
	case <-time.After(30 * time.Second):
		t.Fatalf("no fresh connection after the server closed one; stats %+v\n%s", b.Stats(), logs)
	}
	waitUntil(t, 10*time.Second, func() error {
		if st := b.Stats(); !st.Connected || st.Redials != 1 {
			return fmt.Errorf("b not joined again: %+v", st)
		}
		return nil
	})
	if st := b.Stats(); st.Subscriptions != 1 || st.Refused != 1 {
		t.Fatalf("after the fresh connection: %+v, want /t kept and the long one dropped", st)
	}
	flush(t, b)
	publish(t, a, "/t", 2)
	received(t, inB, 2)
	if err := b.Subscribe(long); !errors.Is(err, ErrSubjectTooLong) {
		t.Fatalf("the long subscription again: %v, want ErrSubjectTooLong now", err)
	}
	if out := logs.String(); !strings.Contains(out, "refused a subject as too long") {
		t.Fatalf("no log line on the refused subject:\n%s", out)
	}
}

// TestRedialAfterReconnectsRunOut: with MaxReconnects set, nats.go gives a
// connection up when its attempts are used up during an outage; the broker
// keeps making fresh ones (with a growing pause) and rejoins once the
// server is back, with its subscriptions.
func TestRedialAfterReconnectsRunOut(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t, 0)
	b, inB := startNode(t, "b", NATSOptions{URLs: []string{srv.URL()}, ReconnectWait: 20 * time.Millisecond, MaxReconnects: 1})
	a, _ := startNode(t, "a", NATSOptions{URLs: []string{srv.URL()}, ReconnectWait: 20 * time.Millisecond})
	if err := b.Subscribe("/r"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	waitUntil(t, 30*time.Second, func() error {
		if st := b.Stats(); st.Redials == 0 {
			return fmt.Errorf("no fresh connection yet: %+v", st)
		}
		return nil
	})
	srv.Restart()
	waitUntil(t, 60*time.Second, func() error {
		if !a.Connected() || !b.Connected() {
			return fmt.Errorf("not joined again: a %v, b %v", a.Connected(), b.Connected())
		}
		return nil
	})
	flush(t, a, b)
	publish(t, a, "/r", "again")
	received(t, inB, 1)
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":            "nats://127.0.0.1:4222",
		"nats://user:secret@10.0.0.5:4222": "nats://10.0.0.5:4222",
		"tls://s3cr3t-token@nats.example":  "tls://nats.example",
		"token@127.0.0.1:4222":             "127.0.0.1:4222",
		"nats://a b@%zz":                   "…@%zz",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := NewNATS(NATSOptions{URLs: []string{"nats://u:secret@a:1,nats://b:2"}}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("NewNATS error %v: want one without the password", err)
	}
	if _, err := NewNATS(NATSOptions{URLs: []string{"nats://a:1"}, MaxControlLine: 100}); err == nil {
		t.Error("MaxControlLine 100: want an error")
	}
	if _, err := NewNATS(NATSOptions{URLs: []string{"nats://a:1"}, SubjectPrefix: strings.Repeat("p", maxPrefixLength+1)}); err == nil {
		t.Error("a subject prefix over the bound: want an error")
	}
}
