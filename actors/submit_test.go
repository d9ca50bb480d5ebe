package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// submitFunc runs SubmitFunc and returns a channel that gets its one
// answer; a second answer fails the test.
func submitFunc(t *testing.T, h *Hub, ctx context.Context, msgs ...*protocol.Message) <-chan [][]byte {
	t.Helper()
	out := make(chan [][]byte, 2)
	h.SubmitFunc(ctx, RemoteRequest{Messages: msgs, RemoteAddr: "127.0.0.1:1"}, func(parts [][]byte) { out <- parts })
	return out
}

func awaitAnswer(t *testing.T, ch <-chan [][]byte) [][]byte {
	t.Helper()
	select {
	case parts := <-ch:
		select {
		case again := <-ch:
			t.Fatalf("answered twice: %q then %q", parts, again)
		case <-time.After(50 * time.Millisecond):
		}
		return parts
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
		return nil
	}
}

func channels(parts [][]byte) string {
	var out []string
	for _, p := range parts {
		var m struct{ Channel string }
		_ = json.Unmarshal(p, &m)
		out = append(out, m.Channel)
	}
	return strings.Join(out, " ")
}

// TestSubmitFuncAnswersLikeSubmit: the callback gets what Pending would
// return, for a held connect answered by a delivery, for a request
// answered at once, and for one of two clients.
func TestSubmitFuncAnswersLikeSubmit(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{PollTimeout: time.Hour})
	a := remoteClient(t, h, "/sf")
	b := remoteClient(t, h)
	held1 := submitFunc(t, h, context.Background(), connectMsg(a))
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if !held(h, a) {
			return fmt.Errorf("connect not held")
		}
		return nil
	})
	if err := h.Publish("/sf", 1); err != nil {
		t.Fatal(err)
	}
	if got := channels(awaitAnswer(t, held1)); got != "/sf /meta/connect" {
		t.Fatalf("held connect answered with %s", got)
	}
	if got := channels(awaitAnswer(t, submitFunc(t, h, context.Background(), publishMsg(b, "/sf", "2")))); got != "/sf" {
		t.Fatalf("publish answered with %s", got)
	}
	// Two clients in one request: answered in order, as Submit does.
	both := awaitAnswer(t, submitFunc(t, h, context.Background(), publishMsg(b, "/x", "3"), publishMsg(a, "/y", "4")))
	if got := channels(both); got != "/x /y" {
		t.Fatalf("two clients' replies: %s", got)
	}
	// Unknown client, handshake: at once.
	if got := string(awaitAnswer(t, submitFunc(t, h, context.Background(), connectMsg("nobody")))[0]); !strings.Contains(got, "402") {
		t.Fatalf("unknown client: %s", got)
	}
}

// TestSubmitFuncRequestGoesAway: a held connect whose request ends is
// answered nil, and what comes for the client meanwhile stays queued for
// its next connect; a session that ends answers its held connect.
func TestSubmitFuncRequestGoesAway(t *testing.T) {
	t.Parallel()
	h := startHub(t, Options{PollTimeout: time.Hour})
	a := remoteClient(t, h, "/gone")
	ctx, cancel := context.WithCancel(context.Background())
	ans := submitFunc(t, h, ctx, connectMsg(a))
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if !held(h, a) {
			return fmt.Errorf("connect not held")
		}
		return nil
	})
	cancel()
	if parts := awaitAnswer(t, ans); parts != nil {
		t.Fatalf("a request gone answered %q", parts)
	}
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if held(h, a) {
			return fmt.Errorf("connect still held")
		}
		return nil
	})
	if err := h.Publish("/gone", 7); err != nil {
		t.Fatal(err)
	}
	if got := deliveries(t, h, a, 1); len(got) != 1 {
		t.Fatalf("kept for the next connect: %v", got)
	}
	// The session ends (disconnected by the server) with a connect held.
	ans = submitFunc(t, h, context.Background(), connectMsg(a))
	testutil.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if !held(h, a) {
			return fmt.Errorf("connect not held")
		}
		return nil
	})
	if err := h.Disconnect(a); err != nil {
		t.Fatal(err)
	}
	if got := channels(awaitAnswer(t, ans)); got != "/meta/connect" {
		t.Fatalf("held connect of an ended session answered with %s", got)
	}
}
