package loadgen

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the reach scenario (KindReach), for holding many
// connections and timing how long one publish takes to reach them all:
// Subscribers clients (WebSocket, one connection each) subscribe to
// Config.Channel and keep their connect loops going; once all are set up
// OnReady is called (bayeuxhub-bench prints "READY <n>" on stderr); then
// every delivery on the channel is counted until Hold ends or Expect
// messages reached every subscribed client. The messages come from
// elsewhere (a script posting to the hub's backend API) with data
// {"ts": <Unix ns when published>}: a message is identified by its ts,
// and its latency runs from that ts.
//
// Per client the generator keeps its connection, two goroutines (its
// connect loop and its socket's reader), the WebSocket library's 4 KiB
// read and write buffers and two words (the newest ts it got and how
// many distinct messages): about 37 KiB of generator RSS per client in a
// run of 2,000, so ~19,000 connections (the per-process file limit
// here is 20,000) take about 700 MiB.

// ReachStats is what the reach scenario measured.
type ReachStats struct {
	// Clients is the number of clients subscribed (Subscribers less
	// those whose setup failed).
	Clients uint64 `json:"clients"`
	// Received counts deliveries (client × message), Repeated those of a
	// message a client already had (or older than its newest: messages
	// are told apart by ts, which grows).
	Received uint64 `json:"received"`
	Repeated uint64 `json:"repeated"`
	// Messages is the number of distinct messages (ts) delivered to any
	// client; Expect the number asked for (0: none).
	Messages int `json:"messages"`
	Expect   int `json:"expect"`
	// Complete counts the clients that got every expected message (with
	// Expect 0: every message any client got).
	Complete uint64 `json:"clients_complete"`
	// EndedBy is "expect" when every client got Expect messages before
	// Hold ran out, "hold" otherwise; HeldSeconds how long it waited.
	EndedBy     string  `json:"ended_by"`
	HeldSeconds float64 `json:"held_seconds"`
	// FirstMS is the quickest delivery (ts to arrival), LastMS the
	// slowest message's last delivery: for one message, the time it took
	// to reach every client that got it. Latency summarises every
	// delivery.
	FirstMS float64 `json:"first_ms"`
	LastMS  float64 `json:"last_ms"`
	Latency Latency `json:"latency"`
	// PerMessage has each message's deliveries and first and last
	// latency, in ts order (the first 100 messages).
	PerMessage []ReachMessage `json:"per_message,omitempty"`
	// ServerRSS is the summed RSS of the server processes
	// (--server-pid, comma-separated), -1 when unknown; GenRSS this
	// process's.
	ServerRSS int64 `json:"server_rss"`
	GenRSS    int64 `json:"gen_rss"`
}

// ReachMessage is one message of the reach scenario.
type ReachMessage struct {
	TS         int64   `json:"ts"`
	Deliveries uint64  `json:"deliveries"`
	FirstMS    float64 `json:"first_ms"`
	LastMS     float64 `json:"last_ms"`
}

// reachClient is one client's count; written by its delivery path only.
type reachClient struct {
	last int64 // newest ts received
	got  int   // distinct messages
}

// reachMsg is one message's tally.
type reachMsg struct {
	n           uint64
	first, last time.Duration
}

// reachState is the run's reach tally.
type reachState struct {
	clients  []reachClient
	received atomic.Uint64
	repeated atomic.Uint64
	complete atomic.Int64 // clients with Expect messages
	target   atomic.Int64 // clients subscribed, once known; 0 before
	allDone  chan struct{}
	doneOnce sync.Once

	mu   sync.Mutex
	msgs map[int64]*reachMsg
}

// reachDeliver counts a delivery to client i.
func (r *runner) reachDeliver(i int, m *Msg, at time.Time) {
	st := r.reach
	if !m.HasTS || string(m.Channel) != r.cfg.Channel {
		r.stray.Add(1)
		return
	}
	st.received.Add(1)
	r.delivered.Add(1)
	d := time.Duration(at.UnixNano() - m.TS)
	r.hist.Record(d)
	st.mu.Lock()
	rm := st.msgs[m.TS]
	if rm == nil {
		rm = &reachMsg{first: d, last: d}
		st.msgs[m.TS] = rm
	}
	rm.n++
	rm.first, rm.last = min(rm.first, d), max(rm.last, d)
	st.mu.Unlock()
	c := &st.clients[i]
	if m.TS <= c.last {
		st.repeated.Add(1)
		return
	}
	c.last = m.TS
	c.got++
	if exp := r.cfg.Expect; exp > 0 && c.got == exp {
		if n := st.complete.Add(1); n == st.target.Load() {
			st.doneOnce.Do(func() { close(st.allDone) })
		}
	}
}

func (r *runner) runReach(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()
	st := &reachState{clients: make([]reachClient, cfg.Subscribers), allDone: make(chan struct{}), msgs: map[int64]*reachMsg{}}
	r.reach = st
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subsWG := r.startSubscribers(subCtx, r.subscriber, res, nil)
	held := uint64(cfg.Subscribers) - res.SetupFailed
	res.Held = held
	st.target.Store(int64(held))
	if cfg.Expect > 0 && (held == 0 || st.complete.Load() == int64(held)) {
		st.doneOnce.Do(func() { close(st.allDone) })
	}
	if ctx.Err() != nil {
		stopSubs()
		subsWG.Wait()
		return nil, ctx.Err()
	}
	if cfg.OnReady != nil {
		cfg.OnReady(int(held))
	}
	r.setTimes(0)
	stopProgress := make(chan struct{})
	go r.progress(stopProgress, func() string {
		return fmt.Sprintf("clients %d  received %d  complete %d  ", held, st.received.Load(), st.complete.Load())
	})
	s0 := r.snap()
	start := time.Now()
	hold := time.NewTimer(cfg.Hold)
	stats := &ReachStats{Clients: held, Expect: cfg.Expect, EndedBy: "hold"}
	select {
	case <-hold.C:
	case <-st.allDone:
		if cfg.Expect > 0 {
			stats.EndedBy = "expect"
		}
	case <-ctx.Done():
	}
	hold.Stop()
	stats.HeldSeconds = time.Since(start).Seconds()
	s1 := r.snap()
	stats.ServerRSS = cfg.serverRSS()
	stats.GenRSS = ProcRSS(os.Getpid())
	res.ServerRSSAfter, res.GenRSS = stats.ServerRSS, stats.GenRSS
	close(stopProgress)
	stopSubs()
	subsWG.Wait() // the clients' deliveries are over
	r.ids = nil   // closing the sockets ends the sessions
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.fill(res, s0, s1)
	stats.Received, stats.Repeated = st.received.Load(), st.repeated.Load()
	stats.Messages = len(st.msgs)
	want := cfg.Expect
	if want == 0 {
		want = stats.Messages
	}
	for i := range st.clients {
		if want > 0 && st.clients[i].got >= want {
			stats.Complete++
		}
	}
	ts := make([]int64, 0, len(st.msgs))
	for t := range st.msgs {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	for k, t := range ts {
		m := st.msgs[t]
		if k == 0 || ms(m.first) < stats.FirstMS {
			stats.FirstMS = ms(m.first)
		}
		stats.LastMS = max(stats.LastMS, ms(m.last))
		if k < 100 {
			stats.PerMessage = append(stats.PerMessage, ReachMessage{TS: t, Deliveries: m.n, FirstMS: ms(m.first), LastMS: ms(m.last)})
		}
	}
	stats.Latency = res.Latency
	if held > 0 && res.ServerRSSBefore > 0 && res.ServerRSSAfter > 0 {
		res.RSSPerClient = float64(res.ServerRSSAfter-res.ServerRSSBefore) / float64(held)
	}
	res.Reach = stats
	return res, nil
}

// writeReach writes the reach scenario's rows of the summary.
func (r *Result) writeReach(row func(k, v string)) {
	s := r.Reach
	if s == nil {
		return
	}
	row("clients", fmt.Sprintf("%d subscribed to %s (%d failed setup in %.1fs)", s.Clients, r.Config.Channel, r.SetupFailed, r.SetupSeconds))
	row("received", fmt.Sprintf("%d deliveries of %d messages (%d repeated); %d clients got every one of %s",
		s.Received, s.Messages, s.Repeated, s.Complete, expectStr(s)))
	row("latency", fmt.Sprintf("first %s  last %s  p50 %s  p99 %s  max %s  (from each message's ts)",
		FmtMS(s.FirstMS), FmtMS(s.LastMS), FmtMS(s.Latency.P50), FmtMS(s.Latency.P99), FmtMS(s.Latency.Max)))
	row("ended", fmt.Sprintf("by %s after %.1fs", s.EndedBy, s.HeldSeconds))
	row("rss", fmt.Sprintf("server %s (%s per client)  generator %s (%s per client)", fmtBytes(s.ServerRSS), FmtBytes(r.RSSPerClient),
		fmtBytes(s.GenRSS), FmtBytes(float64(s.GenRSS)/float64(max(s.Clients, 1)))))
}

func expectStr(s *ReachStats) string {
	if s.Expect > 0 {
		return fmt.Sprintf("the %d expected", s.Expect)
	}
	return "them"
}
