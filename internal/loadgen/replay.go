package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// This file is the replay scenario (KindReplay). It runs like fanout
// (subscribers set up before publishing starts, so that every
// acknowledged message is expected by every subscriber of its channel),
// except that every subscriber drops its session on a schedule: every
// ReplayEvery, its first drop at a point of the first period of its own
// (subscriber i of N at (i+1)/N of it), it ends its connect loop (cutting
// its held connect short), sends /meta/disconnect (DropDisconnect) or
// just closes its connections (DropAbandon), stays away ReplayDown, then
// handshakes a new session and re-subscribes with the replay extension,
// ext.replay {"<channel>": <the newest ext.replayId it received there>}
// (-2, everything retained, on a channel where it saw none). A session
// the server ends (402, reconnect=handshake) is resumed the same way at
// once. A replay the server refuses (400: the id is no longer retained)
// is asked again from -2, then without replay: what was missed then shows
// as lost.
//
// The subscriber's SubTracker lives across its sessions, so the usual
// accounting (every acknowledged message against every subscriber,
// by publisher and sequence number) counts exactly what the cuts lost or
// delivered twice, per subscriber (ReplayStats.Subscribers). Deliveries
// in a new session of messages published before its re-subscribe are
// counted as replayed and kept out of the latency histogram (their
// latency is the time the subscriber was away); the replay latency is the
// time from sending the re-subscribe until a message published after it
// has arrived on every channel of the subscriber, which the hub delivers
// only after the replay (it holds live messages until the replay is out).

// ReplayStats is what the replay scenario measured.
type ReplayStats struct {
	// Drops counts the sessions subscribers dropped on schedule; Ended
	// those the server ended (a 402 or reconnect=handshake advice), after
	// which they came back the same way at once.
	Drops uint64 `json:"drops"`
	Ended uint64 `json:"ended_by_server"`
	// Replays counts the new sessions that re-subscribed with replay.
	// FromAll counts those that asked for everything retained (-2) on
	// some channel because they had seen no replay id there (on a channel
	// without history, every one). Refused counts replays the server
	// refused with a 400, which were asked again from -2, then without
	// replay.
	Replays uint64 `json:"replays"`
	FromAll uint64 `json:"from_all"`
	Refused uint64 `json:"refused"`
	// Replayed counts the deliveries, in a session after a re-subscribe,
	// of messages published before that re-subscribe was sent.
	Replayed uint64 `json:"replayed"`
	// CaughtUp counts the replays after which a message published after
	// the re-subscribe arrived on every channel of the subscriber;
	// Latency is the time from sending the re-subscribe to that.
	CaughtUp uint64  `json:"caught_up"`
	Latency  Latency `json:"latency"`
	// Subscribers is every subscriber's own accounting, by index.
	Subscribers []SubAccount `json:"subscribers"`
}

// SubAccount is one subscriber's accounting over all its sessions.
type SubAccount struct {
	Index      int    `json:"index"`
	Sessions   uint64 `json:"sessions"`
	Replays    uint64 `json:"replays"`
	Refused    uint64 `json:"refused"`
	Replayed   uint64 `json:"replayed"`
	Expected   uint64 `json:"expected"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	OutOfOrder uint64 `json:"out_of_order"`
}

// replaySub is one replay-scenario subscriber across its sessions. The
// deliveries of a session (on its connect loop's goroutine, or its
// WebSocket's reader) and the subscriber's goroutine between sessions
// share it under mu.
type replaySub struct {
	mu   sync.Mutex
	tr   *SubTracker
	last []int64 // newest replay id received, per channel of tr (its order); 0: none
	// resub is when the current session's re-subscribe was sent; zero in
	// the first session. resubN is the same in Unix ns.
	resub   time.Time
	resubN  int64
	live    []bool // per channel: a message published after resub arrived
	waiting int    // channels without such a message yet
	acc     SubAccount
}

func newReplaySub(i int, chans []int, publishers int) *replaySub {
	return &replaySub{
		tr:   NewSubTracker(chans, publishers),
		last: make([]int64, len(chans)),
		live: make([]bool, len(chans)),
		acc:  SubAccount{Index: i},
	}
}

// replayDeliver checks off one delivery to a replay-scenario subscriber.
func (r *runner) replayDeliver(rs *replaySub, m *Msg, at time.Time) {
	if !m.Bench {
		r.stray.Add(1)
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if m.TS < r.startN {
		// Published before this run started: a server's history of an
		// earlier run, replayed for -2.
		rs.tr.Stray++
		return
	}
	local := rs.tr.local(channelIndex(m.Channel))
	if local >= 0 && m.ReplayID > rs.last[local] {
		rs.last[local] = m.ReplayID
	}
	replayed := rs.resubN != 0 && m.TS < rs.resubN
	switch {
	case replayed:
		rs.acc.Replayed++
		r.replayed.Add(1)
	case rs.resubN != 0 && local >= 0 && !rs.live[local]:
		rs.live[local] = true
		if rs.waiting--; rs.waiting == 0 {
			r.replayHist.Record(at.Sub(rs.resub))
			r.caughtUp.Add(1)
		}
	}
	r.observe(rs.tr, m, at, !replayed)
}

// errDrop is the cause of a session context ended by the drop schedule.
var errDrop = errors.New("loadgen: scheduled drop")

// nextDrop returns subscriber i's first scheduled drop after t, and false
// when there is none: the clock has not started, or a drop then would
// not leave the subscriber back for a while before the measured window
// ends.
func (r *runner) nextDrop(i int, t time.Time) (time.Time, bool) {
	tl := r.tl.Load()
	if tl == nil {
		return time.Time{}, false
	}
	every := r.cfg.ReplayEvery
	at := tl.t0.Add(every * time.Duration(i+1) / time.Duration(max(r.cfg.Subscribers, 1)))
	if t.After(at) || t.Equal(at) {
		k := t.Sub(at)/every + 1
		at = at.Add(k * every)
	}
	margin := min(every, 500*time.Millisecond)
	if at.Add(r.cfg.ReplayDown + margin).After(tl.measEnd) {
		return time.Time{}, false
	}
	return at, true
}

// replaySubscriber sets subscriber i up as subscriber does, reports on
// ready, then runs its sessions until ctx ends: each until its drop or
// until the server ends it, then away for ReplayDown (after a drop), then
// a new one re-subscribed with replay.
func (r *runner) replaySubscriber(ctx context.Context, i int, sem chan struct{}, ready func(*SubTracker, error)) {
	chans := r.cfg.SubscriberChannels(i)
	names := make([]string, len(chans))
	for k, ch := range chans {
		names[k] = ChannelName(ch)
	}
	rs := newReplaySub(i, chans, r.cfg.Publishers)
	deliver := func(m *Msg, at time.Time) { r.replayDeliver(rs, m, at) }
	c := r.newConn(deliver)
	var err error
	sem <- struct{}{}
	for attempt := range 3 {
		if err = r.handshake(ctx, c); err == nil {
			err = c.Subscribe(ctx, names)
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	<-sem
	if err != nil {
		c.Close()
		ready(nil, err)
		return
	}
	rs.mu.Lock()
	rs.acc.Sessions = 1
	rs.mu.Unlock()
	r.rsubs[i] = rs
	ready(rs.tr, nil)
	for {
		planned, err := r.replaySession(ctx, i, c)
		if ctx.Err() != nil {
			r.keepID(c.ClientID())
			c.Close()
			return
		}
		if errors.Is(err, ErrReconnectNone) {
			r.errs.add("connect", err)
			c.Close()
			return
		}
		if planned {
			r.drops.Add(1)
			if r.cfg.ReplayDrop == DropDisconnect {
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := c.Disconnect(dctx); err != nil && ctx.Err() == nil {
					r.errs.add("replay disconnect", err)
				}
				cancel()
			}
		} else {
			r.ended.Add(1)
		}
		// Close waits for a WebSocket's reader: the old session delivers
		// nothing more.
		c.Close()
		r.down.Add(1)
		if planned {
			sleepCtx(ctx, r.cfg.ReplayDown)
		}
		c = r.comeBack(ctx, rs, names, deliver)
		r.down.Add(-1)
		if c == nil {
			return
		}
	}
}

// replaySession runs the connect loop of c's session until the
// subscriber's next drop (planned), until the server ends the session
// (err wraps ErrRehandshake or ErrReconnectNone) or until ctx ends.
func (r *runner) replaySession(ctx context.Context, i int, c conn) (planned bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-r.clock:
		case <-sctx.Done():
			return
		}
		at, ok := r.nextDrop(i, time.Now())
		if !ok {
			return
		}
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
			cancel(errDrop)
		case <-sctx.Done():
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		_, err := c.Connect(sctx)
		if sctx.Err() != nil {
			return ctx.Err() == nil && errors.Is(context.Cause(sctx), errDrop), nil
		}
		r.connects.Add(1)
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
			if d := c.ConnectInterval(); d > 0 {
				sleepCtx(sctx, d)
			}
			continue
		case errors.Is(err, ErrRehandshake):
			r.rehand.Add(1)
			return false, err
		case errors.Is(err, ErrReconnectNone):
			return false, err
		}
		r.errs.add("connect", err)
		sleepCtx(sctx, backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
}

// comeBack handshakes a new session and re-subscribes it with replay
// (resubscribe), retrying until that succeeds; it returns nil when ctx
// ends first.
func (r *runner) comeBack(ctx context.Context, rs *replaySub, names []string, deliver func(*Msg, time.Time)) conn {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c := r.newConn(deliver)
		err := r.handshake(ctx, c)
		if err == nil {
			err = r.resubscribe(ctx, rs, c, names)
		}
		if err == nil {
			return c
		}
		c.Close()
		if ctx.Err() != nil {
			return nil
		}
		r.errs.add("replay re-subscribe", err)
		sleepCtx(ctx, backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
	return nil
}

// resubscribe subscribes c's new session to names with replay from the
// newest replay id rs received on each (ReplayAll where it received
// none); a refused replay is asked again from ReplayAll, then without
// replay, so that the subscriber goes on and its loss shows.
func (r *runner) resubscribe(ctx context.Context, rs *replaySub, c conn, names []string) error {
	from := make([]int64, len(names))
	all := false
	rs.mu.Lock()
	for k, id := range rs.last {
		if id > 0 {
			from[k] = id
		} else {
			from[k], all = ReplayAll, true
		}
	}
	rs.resub = time.Now()
	rs.resubN = rs.resub.UnixNano()
	clear(rs.live)
	rs.waiting = len(names)
	rs.mu.Unlock()
	err := c.SubscribeReplay(ctx, names, from)
	refused := errors.Is(err, ErrReplayRefused)
	if refused {
		for k := range from {
			from[k] = ReplayAll
		}
		if err = c.SubscribeReplay(ctx, names, from); errors.Is(err, ErrReplayRefused) {
			err = c.SubscribeReplay(ctx, names, nil)
		}
	}
	if err != nil {
		return err
	}
	r.replays.Add(1)
	if all {
		r.fromAll.Add(1)
	}
	rs.mu.Lock()
	rs.acc.Sessions++
	rs.acc.Replays++
	if refused {
		r.refused.Add(1)
		rs.acc.Refused++
	}
	rs.mu.Unlock()
	return nil
}

// replayStats completes the replay figures once the subscribers have
// stopped, with each one's accounting against the publishers' logs.
func (r *runner) replayStats(logs []*PubLog) *ReplayStats {
	st := &ReplayStats{
		Drops: r.drops.Load(), Ended: r.ended.Load(), Replays: r.replays.Load(), FromAll: r.fromAll.Load(),
		Refused: r.refused.Load(), Replayed: r.replayed.Load(), CaughtUp: r.caughtUp.Load(),
		Latency: summarize(&r.replayHist),
	}
	for _, rs := range r.rsubs {
		if rs == nil {
			continue
		}
		a := rs.acc
		a.Expected, a.Lost, _ = rs.tr.Loss(logs, r.cfg.Channels)
		a.Duplicated, a.OutOfOrder = rs.tr.Dup, rs.tr.OutOrder
		st.Subscribers = append(st.Subscribers, a)
	}
	return st
}

// replayProgress is the replay scenario's part of the progress line.
func (r *runner) replayProgress() string {
	return fmt.Sprintf("away %d  replays %d  refused %d  ", r.down.Load(), r.replays.Load(), r.refused.Load())
}

// Lossy returns the subscribers that lost or got twice any message,
// most lost first.
func (s *ReplayStats) Lossy() []SubAccount {
	var out []SubAccount
	for _, a := range s.Subscribers {
		if a.Lost > 0 || a.Duplicated > 0 {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Lost+out[i].Duplicated > out[j].Lost+out[j].Duplicated })
	return out
}

// writeReplay adds the replay scenario's rows to the summary.
func (r *Result) writeReplay(row func(k, v string)) {
	rp, c := r.Replay, &r.Config
	hist := "history size unknown"
	if c.HistorySize > 0 {
		hist = fmt.Sprintf("history size %d", c.HistorySize)
	}
	row("replay setup", fmt.Sprintf("drop every %s (%s), away %s, %s", c.ReplayEvery, c.ReplayDrop, c.ReplayDown, hist))
	row("replays", fmt.Sprintf("%d  (%d drops on schedule, %d sessions ended by the server; %d from -2, %d refused)",
		rp.Replays, rp.Drops, rp.Ended, rp.FromAll, rp.Refused))
	row("replayed", fmt.Sprintf("%d messages published before a re-subscribe, delivered after it", rp.Replayed))
	row("replay latency", fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (re-subscribe to the first message published after it; %d of %d caught up)",
		FmtMS(rp.Latency.P50), FmtMS(rp.Latency.P90), FmtMS(rp.Latency.P99), FmtMS(rp.Latency.Max), rp.CaughtUp, rp.Replays))
	lossy := rp.Lossy()
	line := fmt.Sprintf("%d of %d subscribers lost or got twice a message", len(lossy), len(rp.Subscribers))
	for k, a := range lossy {
		sep := ", "
		if k == 0 {
			sep = ": "
		}
		if k == 5 {
			line += ", …"
			break
		}
		line += fmt.Sprintf("%s#%d lost %d dup %d (%d sessions, %d refused)", sep, a.Index, a.Lost, a.Duplicated, a.Sessions, a.Refused)
	}
	row("per subscriber", line)
}
