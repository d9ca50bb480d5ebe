package loadgen

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the --local mode: the same scenarios driven through a hub's
// in-process client API instead of HTTP, which measures the core without
// the transport. cmd/bayeuxhub-bench adapts bayeuxhub's
// actors.Hub.NewLocalClient to LocalHub, which keeps this package free of
// any server's packages. Publishing is fire-and-forget there (Publish
// returns once the message is routed), so every publish counts as
// acknowledged.

// LocalHub is an in-process hub the --local mode can drive.
type LocalHub interface {
	// NewClient creates a client session; it needs no handshake.
	NewClient() (LocalClient, error)
}

// LocalClient is one in-process client session.
type LocalClient interface {
	// Subscribe subscribes to channel and returns once the subscription
	// is in effect; deliver is called for each message, one at a time.
	Subscribe(channel string, deliver func(channel string, data []byte)) error
	// Publish publishes data (JSON; the hub may keep it) on channel.
	Publish(channel string, data []byte, id string) error
	// Disconnect ends the session after its pending deliveries.
	Disconnect()
}

// parseData reads the benchmark fields of a data object into m.
func parseData(b []byte, m *Msg) error {
	p := parser{b: b}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		m.Bench = false
		return nil
	}
	return p.data(m)
}

// localDeliver is a local subscriber's callback: it runs on the session
// actor, one message at a time, so the tracker needs no lock.
func (r *runner) localDeliver(tr *SubTracker, channel string, data []byte) {
	var m Msg
	if err := parseData(data, &m); err != nil {
		r.stray.Add(1)
		return
	}
	m.Channel = []byte(channel)
	r.deliver(tr, &m, time.Now())
}

func (r *runner) runLocal(ctx context.Context) (*Result, error) {
	switch r.cfg.Kind {
	case KindChurn:
		return r.runLocalChurn(ctx)
	case KindIdle:
		return nil, fmt.Errorf("--local: the idle scenario measures held HTTP long-polls; run it over HTTP")
	}
	cfg := &r.cfg
	hub := cfg.Hub
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()
	r.subCount = make([]uint64, cfg.Channels)
	trackers := make([]*SubTracker, cfg.Subscribers)
	subs := make([]LocalClient, cfg.Subscribers)
	setupStart := time.Now()
	var wg sync.WaitGroup
	var setupErr atomic.Pointer[error]
	sem := make(chan struct{}, cfg.SetupConcurrency)
	for i := range cfg.Subscribers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			chans := cfg.SubscriberChannels(i)
			tr := NewSubTracker(chans, cfg.Publishers)
			c, err := hub.NewClient()
			if err == nil {
				r.handshakes.Add(1)
				for _, ch := range chans {
					if err = c.Subscribe(ChannelName(ch), func(channel string, data []byte) { r.localDeliver(tr, channel, data) }); err != nil {
						break
					}
				}
			}
			if err != nil {
				setupErr.Store(&err)
				return
			}
			trackers[i], subs[i] = tr, c
		}()
	}
	wg.Wait()
	res.SetupSeconds = time.Since(setupStart).Seconds()
	disconnect := func() {
		for _, c := range subs {
			if c != nil {
				c.Disconnect()
			}
		}
	}
	if p := setupErr.Load(); p != nil {
		disconnect()
		return nil, fmt.Errorf("--local subscriber setup: %w", *p)
	}
	for i := range cfg.Subscribers {
		for _, ch := range cfg.SubscriberChannels(i) {
			r.subCount[ch]++
		}
	}
	logs := make([]*PubLog, cfg.Publishers)
	pubs := make([]LocalClient, cfg.Publishers)
	for j := range cfg.Publishers {
		logs[j] = &PubLog{}
		if cfg.PublishersSubscribe {
			continue // subscriber j publishes
		}
		c, err := hub.NewClient()
		if err != nil {
			disconnect()
			return nil, fmt.Errorf("--local publisher: %w", err)
		}
		r.handshakes.Add(1)
		pubs[j] = c
	}
	if cfg.PublishersSubscribe {
		r.pubChans = make([][]int, cfg.Publishers)
		for j := range cfg.Publishers {
			r.pubChans[j] = cfg.SubscriberChannels(j)
		}
	}

	tl := r.setTimes(cfg.Warmup)
	stopProgress := make(chan struct{})
	go r.progress(stopProgress, nil)
	pubsDone := make(chan struct{})
	var pwg sync.WaitGroup
	for j := range cfg.Publishers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			c := pubs[j]
			if c == nil {
				c = subs[j]
			}
			r.localPublisher(ctx, tl, j, c, logs[j])
		}()
	}
	go func() { pwg.Wait(); close(pubsDone) }()
	var s0, s1 snapshot
	early := false // publishers ran out of --max-messages before the window ended
	select {
	case <-time.After(time.Until(tl.measStart)):
		s0 = r.snap()
		select {
		case <-time.After(time.Until(tl.measEnd)):
		case <-pubsDone:
			early = true
		case <-ctx.Done():
		}
		s1 = r.snap()
	case <-pubsDone:
		s0 = snapshot{at: tl.t0}
		s1 = r.snap()
		early = true
	case <-ctx.Done():
	}
	<-pubsDone
	r.drain(ctx, res, cfg.Drain)
	d1 := s1
	if early {
		// Deliveries of a bounded run are measured until they drained.
		d1 = r.snap()
	}
	res.ServerRSSAfter = cfg.serverRSS()
	close(stopProgress)
	// Disconnect waits for each session actor to stop, which orders its
	// last deliveries before the accounting below.
	disconnect()
	for _, c := range pubs {
		if c != nil {
			c.Disconnect()
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, tr := range trackers {
		exp, lost, unacked := tr.Loss(logs, cfg.Channels)
		res.Expected += exp
		res.Lost += lost
		res.Unacked += unacked
		res.Duplicated += tr.Dup
		res.OutOfOrder += tr.OutOrder
		res.Stray += tr.Stray
	}
	res.Stray += r.stray.Load()
	for _, l := range logs {
		res.SentTotal += uint64(l.Count())
	}
	r.fill(res, s0, s1)
	r.fillDelivery(res, s0, d1)
	return res, nil
}

func (r *runner) localPublisher(ctx context.Context, tl *timeline, j int, c LocalClient, log *PubLog) {
	cfg := &r.cfg
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Publishers) / cfg.Rate)
	}
	next := tl.t0.Add(interval * time.Duration(j) / time.Duration(max(cfg.Publishers, 1)))
	open := cfg.Loop == LoopOpen
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		now := time.Now()
		if !now.Before(tl.measEnd) || r.budget.Add(-1) < 0 {
			return
		}
		sched := now
		if interval > 0 {
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(wait)
			} else if -wait > time.Second && !open {
				next = now
			}
			sched = next
			next = next.Add(interval)
		}
		ch := (j + int(seq)) % cfg.Channels
		if r.pubChans != nil {
			ch = r.pubChans[j][seq%uint64(len(r.pubChans[j]))]
		}
		log.Sent(seq, ch)
		// Publishing here is fire and forget: the open loop only stamps
		// the messages with their scheduled time and does not skip ahead
		// when behind.
		sent := time.Now()
		ts := sent.UnixNano()
		if interval > 0 {
			r.noteLate(tl, sched, sent, 1)
			if open {
				ts = sched.UnixNano()
			}
		}
		// A fresh buffer each time: the hub keeps the data after Publish
		// returns.
		data := AppendData(make([]byte, 0, cfg.Size+16), ts, j, seq, cfg.Size)
		err := c.Publish(ChannelName(ch), data, strconv.FormatUint(seq, 10))
		r.sent.Add(1)
		if err != nil {
			log.Done(seq)
			r.pubErrs.Add(1)
			r.errs.add("local publish", err)
			continue
		}
		log.Acked(seq)
		r.published.Add(1)
		tl.secAt(time.Now()).published.Add(1)
		r.expected.Add(r.subCount[ch])
	}
}

func (r *runner) runLocalChurn(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()
	tl := r.setTimes(cfg.Warmup)
	stopProgress := make(chan struct{})
	go r.progress(stopProgress, func() string { return fmt.Sprintf("sessions %d  ", r.sessions.Load()) })
	var wg sync.WaitGroup
	for w := range cfg.Subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := ChannelName(w % cfg.Channels)
			for ctx.Err() == nil && time.Now().Before(tl.measEnd) && r.budget.Add(-1) >= 0 {
				start := time.Now()
				c, err := cfg.Hub.NewClient()
				if err != nil {
					r.errs.add("local client", err)
					continue
				}
				r.handshakes.Add(1)
				if err := c.Subscribe(ch, func(string, []byte) {}); err != nil {
					r.errs.add("local subscribe", err)
				}
				c.Disconnect()
				end := time.Now()
				r.sessions.Add(1)
				if start.After(tl.measStart) {
					r.hist.Record(end.Sub(start))
					tl.secAt(end).hist.Record(end.Sub(start))
				}
			}
		}()
	}
	sleepCtx(ctx, time.Until(tl.measStart))
	s0 := r.snap()
	sleepCtx(ctx, time.Until(tl.measEnd))
	s1 := r.snap()
	wg.Wait()
	close(stopProgress)
	res.ServerRSSAfter = ProcRSS(os.Getpid())
	r.fill(res, s0, s1)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}
