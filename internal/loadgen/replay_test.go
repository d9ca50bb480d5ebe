package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// TestReplayAccountingAcrossSessions drives a replay subscriber's
// accounting by hand through two sessions: what the replay resumes from,
// what counts as replayed, when it has caught up, and that a message
// delivered twice across the cut and one never delivered are counted
// exactly.
func TestReplayAccountingAcrossSessions(t *testing.T) {
	t.Parallel()
	r := &runner{cfg: Config{Publishers: 2, Channels: 2, Subscribers: 1}, startN: 1000}
	rs := newReplaySub(0, []int{0, 1}, 2)
	logs := []*PubLog{{}, {}}
	for s := range uint64(12) {
		for p := range logs {
			logs[p].Sent(s, int(s%2))
			logs[p].Acked(s)
		}
	}
	deliver := func(pub, seq, ts, replayID int64) {
		ch := ChannelName(int(seq % 2))
		r.replayDeliver(rs, &Msg{Channel: []byte(ch), HasData: true, Bench: true, Pub: pub, Seq: seq, TS: ts, ReplayID: replayID}, time.Unix(0, ts+5))
	}
	// Session 1: seqs 0..5 of both publishers, replay ids per channel.
	id := [2]int64{100, 200}
	for s := range int64(6) {
		for p := range int64(2) {
			id[s%2]++
			deliver(p, s, 2000+s, id[s%2])
		}
	}
	deliver(0, 99, 500, 7) // published before the run: stray
	if rs.last[0] != 106 || rs.last[1] != 206 {
		t.Fatalf("last replay ids %v, want [106 206]", rs.last)
	}
	// Cut; the new session re-subscribes at ts 3000.
	rs.resub, rs.resubN = time.Unix(0, 3000), 3000
	rs.waiting = 2
	// Replayed: seq 5 of publisher 1 again (a duplicate), seqs 6..8.
	deliver(1, 5, 2005, 206)
	for s := int64(6); s <= 8; s++ {
		for p := range int64(2) {
			id[s%2]++
			deliver(p, s, 2500+s, id[s%2])
		}
	}
	if r.caughtUp.Load() != 0 {
		t.Fatal("caught up before any live message")
	}
	// Live: seq 9 on channel 1 (one channel caught up), then 10 on
	// channel 0 (both: caught up). Seq 11 is never delivered: lost, twice.
	deliver(0, 9, 3009, 210)
	deliver(1, 9, 3009, 211)
	if r.caughtUp.Load() != 0 {
		t.Fatal("caught up with channel 0 still replaying")
	}
	deliver(0, 10, 3010, 111)
	deliver(1, 10, 3010, 112)
	if r.caughtUp.Load() != 1 || r.replayHist.Count() != 1 || r.replayHist.Max() != 15*time.Nanosecond {
		t.Errorf("caught up %d, replay latencies %d (max %v)", r.caughtUp.Load(), r.replayHist.Count(), r.replayHist.Max())
	}
	if rs.acc.Replayed != 7 || r.replayed.Load() != 7 {
		t.Errorf("replayed %d (%d), want 7", rs.acc.Replayed, r.replayed.Load())
	}
	if rs.last[0] != 112 || rs.last[1] != 211 {
		t.Errorf("last replay ids %v, want [112 211]", rs.last)
	}
	exp, lost, unacked := rs.tr.Loss(logs, 2)
	if exp != 24 || lost != 2 || unacked != 0 || rs.tr.Dup != 1 || rs.tr.OutOrder != 0 || rs.tr.Stray != 1 {
		t.Errorf("expected %d lost %d unacked %d dup %d out-of-order %d stray %d; want 24 2 0 1 0 1",
			exp, lost, unacked, rs.tr.Dup, rs.tr.OutOrder, rs.tr.Stray)
	}
	r.rsubs = []*replaySub{rs}
	st := r.replayStats(logs)
	if len(st.Subscribers) != 1 || st.Subscribers[0].Lost != 2 || st.Subscribers[0].Duplicated != 1 {
		t.Errorf("per subscriber: %+v", st.Subscribers)
	}
	if l := st.Lossy(); len(l) != 1 || l[0].Index != 0 {
		t.Errorf("lossy: %+v", l)
	}
}

func TestNextDrop(t *testing.T) {
	t.Parallel()
	r := &runner{cfg: Config{Subscribers: 4, ReplayEvery: time.Second, ReplayDown: 200 * time.Millisecond}}
	if _, ok := r.nextDrop(0, time.Now()); ok {
		t.Fatal("a drop before the clock started")
	}
	t0 := time.Unix(100, 0)
	r.tl.Store(&timeline{t0: t0, measEnd: t0.Add(5 * time.Second)})
	for _, c := range []struct {
		i     int
		after time.Duration
		want  time.Duration // from t0; 0: none
	}{
		{0, 0, 250 * time.Millisecond},
		{3, 0, time.Second},
		{1, 500 * time.Millisecond, 1500 * time.Millisecond},
		{1, 1499 * time.Millisecond, 1500 * time.Millisecond},
		{1, 1500 * time.Millisecond, 2500 * time.Millisecond},
		{3, 3 * time.Second, 4 * time.Second},
		{0, 4 * time.Second, 4250 * time.Millisecond}, // back at 4.45 s, 550 ms before the end
		{1, 4 * time.Second, 0},                       // 4.5 s: would be back 300 ms before the end
	} {
		at, ok := r.nextDrop(c.i, t0.Add(c.after))
		if got := at.Sub(t0); ok != (c.want != 0) || (ok && got != c.want) {
			t.Errorf("nextDrop(%d, t0+%v) = t0+%v %v, want t0+%v", c.i, c.after, got, ok, c.want)
		}
	}
}

// startHistoryHub starts a bayeuxhub whose /bench/** channels keep
// historySize messages each (none for 0) and returns its endpoint.
func startHistoryHub(t *testing.T, historySize int) string {
	t.Helper()
	list := acl.Default()
	if historySize > 0 {
		list = append([]acl.Rule{{Pattern: "/bench/**", Subscribe: acl.Anyone, Publish: acl.Anyone,
			History: acl.History{Size: historySize}}}, list...)
	}
	rules, err := acl.New(list)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-",
		Hub: actors.Options{Rules: rules, PollTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return strings.TrimSuffix(srv.URL(), "/") + "/cometd"
}

// replayRun is a short replay scenario: 6 subscribers dropping every
// 700 ms for 200 ms while 2 publishers send 200 msg/s for 2.5 s.
func replayRun(t *testing.T, url, transport, drop string, historySize int) *Result {
	t.Helper()
	cfg, err := Preset("replay")
	if err != nil {
		t.Fatal(err)
	}
	cfg.URL, cfg.Transport, cfg.ReplayDrop, cfg.HistorySize = url, transport, drop, historySize
	cfg.Subscribers, cfg.Publishers, cfg.Rate = 6, 2, 200
	cfg.Duration, cfg.Warmup, cfg.Drain = 2500*time.Millisecond, 0, 10*time.Second
	cfg.ReplayEvery, cfg.ReplayDown = 700*time.Millisecond, 200*time.Millisecond
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replay == nil || len(res.Replay.Subscribers) != 6 {
		t.Fatalf("replay figures: %+v", res.Replay)
	}
	// A loaded machine publishes less than asked (each publisher waits for
	// its acknowledgements), but never nothing.
	if res.PublishedTotal < 50 || res.Expected != 6*res.PublishedTotal {
		t.Fatalf("published %d, expected %d (errors %v)", res.PublishedTotal, res.Expected, res.FirstErrors)
	}
	// The per-subscriber accounting adds up to the run's.
	var lost, dup, replays uint64
	for _, a := range res.Replay.Subscribers {
		lost, dup, replays = lost+a.Lost, dup+a.Duplicated, replays+a.Replays
	}
	if lost != res.Lost || dup != res.Duplicated || replays != res.Replay.Replays {
		t.Errorf("per subscriber: lost %d dup %d replays %d; run: %d %d %d", lost, dup, replays, res.Lost, res.Duplicated, res.Replay.Replays)
	}
	if res.Replay.Drops < 6 || res.Replay.Replays < res.Replay.Drops {
		t.Errorf("%d drops, %d replays: want every subscriber to have dropped and come back", res.Replay.Drops, res.Replay.Replays)
	}
	return res
}

func summary(r *Result) string {
	var b strings.Builder
	r.WriteSummary(&b)
	return b.String()
}

// TestReplayScenario runs the replay scenario against a bayeuxhub whose
// channel keeps history: across every cut, nothing may be lost or
// delivered twice, over either transport and either way of dropping.
func TestReplayScenario(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ transport, drop string }{
		{TransportLongPolling, DropDisconnect},
		{TransportWebSocket, DropDisconnect},
		{TransportLongPolling, DropAbandon},
		{TransportWebSocket, DropAbandon},
	} {
		t.Run(c.transport+"/"+c.drop, func(t *testing.T) {
			t.Parallel()
			res := replayRun(t, startHistoryHub(t, 10000), c.transport, c.drop, 10000)
			rp := res.Replay
			if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Stray != 0 || rp.Refused != 0 {
				t.Errorf("lost %d dup %d out of order %d stray %d refused %d, want none\n%s",
					res.Lost, res.Duplicated, res.OutOfOrder, res.Stray, rp.Refused, summary(res))
			}
			if rp.Replayed == 0 || rp.CaughtUp == 0 || rp.Latency.Count != rp.CaughtUp {
				t.Errorf("replayed %d, caught up %d, latencies %d\n%s", rp.Replayed, rp.CaughtUp, rp.Latency.Count, summary(res))
			}
			if len(rp.Lossy()) != 0 || !strings.Contains(summary(res), "0 of 6 subscribers lost") {
				t.Errorf("summary:\n%s", summary(res))
			}
		})
	}
}

// TestReplayScenarioReportsLoss checks that the tool reports what a cut
// lost when the server cannot replay it: without history (the
// re-subscribes replay nothing), and with a history too short for the
// time away (the server refuses the replay id; the subscriber asks for
// everything retained and the rest shows as lost).
func TestReplayScenarioReportsLoss(t *testing.T) {
	t.Parallel()
	t.Run("no history", func(t *testing.T) {
		t.Parallel()
		res := replayRun(t, startHistoryHub(t, 0), TransportLongPolling, DropDisconnect, 0)
		rp := res.Replay
		if res.Lost == 0 || rp.FromAll != rp.Replays || rp.Refused != 0 {
			t.Errorf("lost %d, from -2 %d of %d replays, refused %d\n%s", res.Lost, rp.FromAll, rp.Replays, rp.Refused, summary(res))
		}
		if n := len(rp.Lossy()); n == 0 || !strings.Contains(summary(res), "subscribers lost or got twice a message: #") {
			t.Errorf("%d lossy subscribers\n%s", n, summary(res))
		}
	})
	t.Run("history too short", func(t *testing.T) {
		t.Parallel()
		res := replayRun(t, startHistoryHub(t, 2), TransportWebSocket, DropDisconnect, 2)
		rp := res.Replay
		if res.Lost == 0 || rp.Refused == 0 || res.Duplicated != 0 {
			t.Errorf("lost %d, refused %d, dup %d\n%s", res.Lost, rp.Refused, res.Duplicated, summary(res))
		}
	})
}
