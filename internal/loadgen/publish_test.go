package loadgen

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPubLogPrefix(t *testing.T) {
	t.Parallel()
	var l PubLog
	for s := range uint64(5) {
		l.Sent(s, 0)
	}
	l.Acked(1)
	if p := l.Prefix(); p != 0 {
		t.Fatalf("prefix %d with 0 outstanding, want 0", p)
	}
	l.Done(0) // refused
	if p := l.Prefix(); p != 2 {
		t.Fatalf("prefix %d, want 2", p)
	}
	l.Acked(3)
	l.Acked(2)
	if p := l.Prefix(); p != 4 {
		t.Fatalf("prefix %d, want 4", p)
	}
	if n := l.AckedCount(); n != 3 {
		t.Fatalf("acked %d, want 3", n)
	}
}

// TestObserveWindow checks the order rule of concurrent publishes: a
// message need only arrive after those whose publish completed before it
// was sent.
func TestObserveWindow(t *testing.T) {
	t.Parallel()
	tr := NewSubTracker([]int{0}, 1)
	tr.ObserveWindow(0, 3, 2, 0) // sent while 1 and 2 were in flight
	tr.ObserveWindow(0, 2, 1, 0) // in flight when 3 was sent: in order
	tr.ObserveWindow(0, 1, 0, 0) // likewise
	if tr.OutOrder != 0 {
		t.Fatalf("out of order %d, want 0", tr.OutOrder)
	}
	tr.ObserveWindow(0, 0, 0, 0) // completed before 3 was sent
	if tr.OutOrder != 1 {
		t.Fatalf("out of order %d, want 1", tr.OutOrder)
	}
	// Window 0 is the strict rule.
	tr = NewSubTracker([]int{0}, 1)
	tr.Observe(0, 5, 0)
	tr.Observe(0, 4, 0)
	if tr.OutOrder != 1 {
		t.Fatalf("strict: out of order %d, want 1", tr.OutOrder)
	}
}

func TestAppendPayloadWindow(t *testing.T) {
	t.Parallel()
	d := AppendPayload(nil, &Payload{TS: 1, Pub: 2, Seq: 9, Window: 3}, 80)
	if len(d) != 80 {
		t.Errorf("%d bytes, want 80: %s", len(d), d)
	}
	msgs, err := ParseMessages([]byte(`[{"channel":"/bench/0","data":`+string(d)+`}]`), nil)
	if err != nil || len(msgs) != 1 || !msgs[0].Bench || msgs[0].Window != 3 || msgs[0].Seq != 9 {
		t.Fatalf("%v %+v", err, msgs)
	}
	if d := AppendPayload(nil, &Payload{TS: 1, Seq: 9}, 0); strings.Contains(string(d), `"w"`) {
		t.Errorf("window 0 written: %s", d)
	}
}

// TestOpenLoopHeldBack publishes over long-polling at 200 msg/s to a
// server that takes 20 ms to acknowledge each publish. With one request
// in flight the schedule cannot be kept: the messages are late and their
// latency, counted from the schedule, includes the wait. With 16 in flight
// the concurrent requests keep every message, in order by the window rule.
func TestOpenLoopHeldBack(t *testing.T) {
	t.Parallel()
	run := func(inflight int) *Result {
		fs := newFakeServer()
		fs.ackDelay = 20 * time.Millisecond
		ts := httptest.NewServer(fs)
		defer ts.Close()
		res, err := Run(context.Background(), Config{
			URL: ts.URL, Kind: KindPubSub, Subscribers: 3, Publishers: 1, Rate: 200,
			Channels: 1, SubsPerClient: 1, Size: 64, Batch: 1, Duration: 60 * time.Second,
			Drain: 5 * time.Second, MaxMessages: 40, MaxInflight: inflight,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Config.Loop != LoopOpen {
			t.Errorf("loop %q, want the open default", res.Config.Loop)
		}
		if res.PublishedTotal != 40 || res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Expected != 120 {
			t.Errorf("in flight %d: published %d, expected %d, lost %d, dup %d, out of order %d; errors %v",
				inflight, res.PublishedTotal, res.Expected, res.Lost, res.Duplicated, res.OutOfOrder, res.FirstErrors)
		}
		return res
	}
	one := run(1)
	// Message k is due at k×5 ms and cannot go before k×20 ms: every one
	// after the first is late, the last by more than 500 ms, and so is
	// its delivery.
	if one.Late < 38 || one.LateMaxMS < 500 || one.Latency.Max < 500 {
		t.Errorf("one in flight: late %d, late max %.1f ms, latency max %.1f ms", one.Late, one.LateMaxMS, one.Latency.Max)
	}
	many := run(16)
	if many.PublishAck.P50 < 20 {
		t.Errorf("16 in flight: ack p50 %.1f ms, below the server's 20 ms", many.PublishAck.P50)
	}
	var sb strings.Builder
	one.WriteSummary(&sb)
	if !strings.Contains(sb.String(), "late ") || !strings.Contains(sb.String(), "open loop") {
		t.Errorf("summary lacks the schedule line:\n%s", sb.String())
	}
}

// TestClosedLoopStampsSendTime: a closed-loop publisher to the same slow
// server keeps every message, in order, each stamped when it was sent.
func TestClosedLoopStampsSendTime(t *testing.T) {
	t.Parallel()
	fs := newFakeServer()
	fs.ackDelay = 20 * time.Millisecond
	ts := httptest.NewServer(fs)
	defer ts.Close()
	res, err := Run(context.Background(), Config{
		URL: ts.URL, Kind: KindPubSub, Subscribers: 2, Publishers: 1, Rate: 200, Loop: LoopClosed,
		Channels: 1, SubsPerClient: 1, Size: 64, Batch: 1, Duration: 60 * time.Second,
		Drain: 5 * time.Second, MaxMessages: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.PublishedTotal != 20 || res.Lost != 0 || res.OutOfOrder != 0 {
		t.Errorf("published %d, lost %d, out of order %d", res.PublishedTotal, res.Lost, res.OutOfOrder)
	}
	if res.Late == 0 {
		t.Error("closed loop against a slow server: nothing late")
	}
}

// TestOpenLoopWebSocket runs the open loop over WebSocket against
// bayeuxhub: publishes pipelined on each publisher's socket, scheduled
// times in the data, every message delivered once and in order.
func TestOpenLoopWebSocket(t *testing.T) {
	t.Parallel()
	url := startHub(t, TransportWebSocket)
	res, err := Run(t.Context(), Config{
		URL: url, Transport: TransportWebSocket, Kind: KindPubSub,
		Subscribers: 10, Publishers: 2, Rate: 400, Channels: 2, SubsPerClient: 2, Size: 50, Batch: 1,
		Duration: 60 * time.Second, Drain: 5 * time.Second, MaxMessages: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.Loop != LoopOpen || res.Config.MaxInflight != DefaultMaxInflightWS {
		t.Errorf("loop %q, max in flight %d", res.Config.Loop, res.Config.MaxInflight)
	}
	if res.PublishedTotal != 200 || res.Expected != 2000 || res.DeliveredTotal != 2000 {
		t.Errorf("published %d, expected %d, delivered %d", res.PublishedTotal, res.Expected, res.DeliveredTotal)
	}
	if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Stray != 0 || res.Errors != 0 {
		t.Errorf("lost %d dup %d ooo %d stray %d errors %d %v", res.Lost, res.Duplicated, res.OutOfOrder, res.Stray, res.Errors, res.FirstErrors)
	}
}

func TestLoopValidate(t *testing.T) {
	t.Parallel()
	c := Config{URL: "http://x", Publishers: 1, Duration: time.Second}
	if err := c.Validate(); err != nil || c.Loop != LoopClosed {
		t.Errorf("rate 0: %v, loop %q", err, c.Loop)
	}
	c = Config{URL: "http://x", Publishers: 1, Duration: time.Second, Rate: 1, Loop: LoopOpen}
	if err := c.Validate(); err != nil || c.MaxInflight != DefaultMaxInflightLP {
		t.Errorf("open: %v, max in flight %d", err, c.MaxInflight)
	}
	c = Config{URL: "http://x", Publishers: 1, Duration: time.Second, Loop: LoopOpen}
	if err := c.Validate(); err == nil {
		t.Error("open loop with rate 0 accepted")
	}
	c = Config{URL: "http://x", Publishers: 1, Duration: time.Second, Loop: "ajar"}
	if err := c.Validate(); err == nil {
		t.Error("unknown loop accepted")
	}
}

func TestChatPreset(t *testing.T) {
	t.Parallel()
	c, err := Preset("chat")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subscribers != 1000 || c.Channels != 100 || c.SubsPerClient != 10 || c.Rate != 1000 || c.Size != 50 || !c.PublishersSubscribe {
		t.Errorf("chat preset %+v", c)
	}
	// 10 publishes per second per room.
	perRoom := make([]float64, c.Channels)
	perPub := c.Rate / float64(c.Publishers)
	for j := range c.Publishers {
		rooms := c.SubscriberChannels(j)
		for _, ch := range rooms {
			perRoom[ch] += perPub / float64(len(rooms))
		}
	}
	for ch, v := range perRoom {
		if v < 9.99 || v > 10.01 {
			t.Errorf("room %d gets %.2f msg/s, want 10", ch, v)
		}
	}
	if d := AppendData(nil, time.Now().UnixNano(), 99, 12345, c.Size); len(d) > c.Size || len(d) < c.Size-8 {
		t.Errorf("chat data is %d bytes, want about %d: %s", len(d), c.Size, d)
	}
	if f, err := Preset("fanout"); err != nil || f.Size != 100 || f.PublishersSubscribe {
		t.Errorf("fanout preset %+v %v", f, err)
	}
}

// TestPublishersSubscribe runs a small chat in which the subscribers
// publish, over both transports against bayeuxhub: every message reaches
// every member of its room, its publisher included, once and in order.
func TestPublishersSubscribe(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{TransportWebSocket, TransportLongPolling} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			url := startHub(t, tr)
			res, err := Run(t.Context(), Config{
				URL: url, Transport: tr, Kind: KindPubSub, PublishersSubscribe: true,
				Subscribers: 20, Publishers: 5, Rate: 250, Channels: 10, SubsPerClient: 3, Size: 50, Batch: 1,
				Duration: 60 * time.Second, Drain: 5 * time.Second, MaxMessages: 150,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.PublishedTotal != 150 || res.Expected == 0 || res.DeliveredTotal != res.Expected {
				t.Errorf("published %d, expected %d, delivered %d", res.PublishedTotal, res.Expected, res.DeliveredTotal)
			}
			if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Stray != 0 || res.Errors != 0 {
				t.Errorf("lost %d dup %d ooo %d stray %d errors %d %v", res.Lost, res.Duplicated, res.OutOfOrder, res.Stray, res.Errors, res.FirstErrors)
			}
			// Only the subscribers handshook: no client of a publisher's own.
			if res.Handshakes != 20 {
				t.Errorf("handshakes %d, want the 20 subscribers'", res.Handshakes)
			}
		})
	}
}
