package loadgen

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"
)

// This file holds the publishers of the pubsub and replay scenarios.
//
// A closed-loop publisher (LoopClosed) sends a request, waits for its
// acknowledgement, then waits for the next point of its schedule; its
// messages' "ts" is the time they were sent.
//
// An open-loop publisher (LoopOpen) sends request i at its scheduled time
// start + i×interval whatever the acknowledgements do, with "ts" that
// scheduled time. Over WebSocket (and Centrifugo) its requests are
// pipelined on its socket by its own goroutine, at most MaxInflight
// unacknowledged, the acknowledgements accounted on the socket's reader
// goroutine; over long-polling MaxInflight worker goroutines, each with
// its own Client sharing the publisher's session, take the requests from
// the scheduler one at a time, so that up to MaxInflight requests are
// concurrent. Either way there is no goroutine and no timer per publish.
// A request that finds the bound reached is sent as soon as a slot frees
// and counts as late; one still waiting when the measured window ends is
// not sent and counts as unsent.
//
// Concurrent HTTP requests may reach the server in any order, so a
// long-polling open-loop message carries its Window (how many of the
// publisher's earlier messages were still unacknowledged when it was
// sent); the trackers only require a message to arrive after those that
// were acknowledged before it was sent.

// asyncConn is a client that can pipeline publishes (WSClient, the
// Centrifugo client).
type asyncConn interface {
	PublishAsync(ctx context.Context, ps []Payload, size int, done func(acked []bool, err error))
}

// requestInterval returns the time between two publish requests of one
// publisher, 0 for as fast as possible.
func (r *runner) requestInterval() float64 {
	cfg := &r.cfg
	if cfg.Rate <= 0 {
		return 0
	}
	return float64(time.Second) * float64(cfg.Publishers) * float64(cfg.Batch) / cfg.Rate
}

// publisher j publishes until the measured window ends, the budget is
// spent or ctx ends, in the configured loop.
func (r *runner) publisher(ctx context.Context, j int, c conn, s *session, log *PubLog) {
	if r.cfg.Loop != LoopOpen {
		r.closedPublisher(ctx, j, c, s, log)
		return
	}
	if ac, ok := c.(asyncConn); ok {
		r.pipelinePublisher(ctx, j, c, ac, s, log)
		return
	}
	r.poolPublisher(ctx, j, s, log)
}

// take reserves up to want messages of the budget and returns how many.
func (r *runner) take(want int) int {
	n := int64(want)
	if left := r.budget.Add(-n); left < 0 {
		n += left
	}
	return int(max(n, 0))
}

// payloads fills ps with n messages of publisher j from seq on, logging
// them as sent.
func (r *runner) payloads(ps []Payload, j int, seq uint64, n int, ts int64, log *PubLog) []Payload {
	ps = ps[:0]
	for range n {
		ch := (j + int(seq)) % r.cfg.Channels
		if r.pubChans != nil {
			cs := r.pubChans[j]
			ch = cs[seq%uint64(len(cs))]
		}
		log.Sent(seq, ch)
		ps = append(ps, Payload{Channel: r.chNames[ch], TS: ts, Pub: j, Seq: seq, ch: ch})
		seq++
	}
	r.sent.Add(uint64(n))
	return ps
}

// noteLate counts the n messages of a request scheduled at sched and
// sent at now as late if they are and were scheduled in the window.
func (r *runner) noteLate(tl *timeline, sched, now time.Time, n int) {
	if sched.Before(tl.measStart) || !sched.Before(tl.measEnd) {
		return
	}
	d := now.Sub(sched)
	if d <= LateThreshold {
		return
	}
	r.late.Add(uint64(n))
	for {
		m := r.lateMax.Load()
		if int64(d) <= m || r.lateMax.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// settle accounts for the outcome of a publish request sent at sentAt.
func (r *runner) settle(tl *timeline, log *PubLog, ps []Payload, acked []bool, err error, sentAt time.Time) {
	if err == nil && sentAt.After(tl.measStart) && sentAt.Before(tl.measEnd) {
		r.ackHist.Record(time.Since(sentAt))
	}
	sec := tl.secAt(time.Now())
	for k := range ps {
		if k < len(acked) && acked[k] {
			log.Acked(ps[k].Seq)
			r.published.Add(1)
			sec.published.Add(1)
			r.expected.Add(r.subCount[ps[k].ch])
		} else {
			log.Done(ps[k].Seq)
			r.pubErrs.Add(1)
		}
	}
}

// closedPublisher is the closed loop: each request waits for its
// acknowledgement; the schedule restarts from now when it is more than
// a second behind.
func (r *runner) closedPublisher(ctx context.Context, j int, c conn, s *session, log *PubLog) {
	cfg := &r.cfg
	tl := r.tl.Load()
	interval := time.Duration(r.requestInterval())
	next := tl.t0
	if interval > 0 {
		// Spread publishers evenly over the first interval.
		next = next.Add(interval * time.Duration(j) / time.Duration(cfg.Publishers))
	}
	var seq uint64
	ps := make([]Payload, 0, cfg.Batch)
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(tl.measEnd) {
			return
		}
		sched := now
		if interval > 0 {
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(wait)
			} else if -wait > time.Second {
				next = now // too far behind: do not burst to catch up
			}
			sched = next
			next = next.Add(interval)
		}
		n := r.take(cfg.Batch)
		if n == 0 {
			return
		}
		sentAt := time.Now()
		if interval > 0 {
			r.noteLate(tl, sched, sentAt, n)
		}
		ps = r.payloads(ps, j, seq, n, sentAt.UnixNano(), log)
		seq += uint64(n)
		id := s.get()
		s.use(c)
		acked, err := c.Publish(ctx, ps, cfg.Size)
		r.settle(tl, log, ps, acked, err, sentAt)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.errs.add("publish", err)
			if errors.Is(err, ErrRehandshake) && !s.follow {
				r.rehand.Add(1)
				if err := s.rehandshake(ctx, c, id); err == nil {
					r.handshakes.Add(1)
				}
			} else if !errors.Is(err, ErrReconnectNone) {
				sleepCtx(ctx, 50*time.Millisecond)
			}
		}
	}
}

// openSchedule is an open-loop publisher's timetable: request i is due
// at start + i×interval.
type openSchedule struct {
	tl       *timeline
	start    time.Time
	interval float64 // ns
	batch    int
}

func (r *runner) openSchedule(j int) *openSchedule {
	tl := r.tl.Load()
	iv := r.requestInterval()
	// Spread publishers evenly over the first interval.
	start := tl.t0.Add(time.Duration(iv * float64(j) / float64(r.cfg.Publishers)))
	return &openSchedule{tl: tl, start: start, interval: iv, batch: r.cfg.Batch}
}

func (o *openSchedule) at(i int64) time.Time {
	return o.start.Add(time.Duration(float64(i) * o.interval))
}

// unsent returns the messages of requests i and after that are scheduled
// in the measured window.
func (o *openSchedule) unsent(i int64) uint64 {
	idx := func(t time.Time) int64 { // first request due at or after t
		return int64(math.Ceil(float64(t.Sub(o.start)) / o.interval))
	}
	from := max(i, idx(o.tl.measStart))
	to := idx(o.tl.measEnd)
	if to <= from {
		return 0
	}
	return uint64(to-from) * uint64(o.batch)
}

// waitUntil sleeps on tm until t; false when ctx ended first.
func waitUntil(ctx context.Context, tm *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm.Reset(d)
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		tm.Stop()
		return false
	}
}

// inflightWait bounds how long a publisher waits at the end for its
// requests still in flight.
const inflightWait = 30 * time.Second

// acquire takes a slot of sem for the request scheduled at i; false
// when the window (end) or ctx ended first, the request then counted as
// unsent.
func (r *runner) acquire(ctx context.Context, sem chan struct{}, end <-chan time.Time, o *openSchedule, i int64) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	select {
	case sem <- struct{}{}:
		return true
	case <-end:
		r.unsent.Add(o.unsent(i))
	case <-ctx.Done():
	}
	return false
}

// pipelinePublisher is the open loop on a client that pipelines
// publishes on its socket.
func (r *runner) pipelinePublisher(ctx context.Context, j int, c conn, ac asyncConn, s *session, log *PubLog) {
	cfg := &r.cfg
	o := r.openSchedule(j)
	tl := o.tl
	sem := make(chan struct{}, cfg.MaxInflight)
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	end := time.NewTimer(time.Until(tl.measEnd))
	defer end.Stop()
	var seq uint64
	for i := int64(0); ctx.Err() == nil; i++ {
		sched := o.at(i)
		if !sched.Before(tl.measEnd) || !waitUntil(ctx, tm, sched) || !r.acquire(ctx, sem, end.C, o, i) {
			break
		}
		now := time.Now()
		if !now.Before(tl.measEnd) {
			<-sem
			r.unsent.Add(o.unsent(i))
			break
		}
		n := r.take(cfg.Batch)
		if n == 0 {
			<-sem
			break
		}
		r.noteLate(tl, sched, now, n)
		ps := r.payloads(make([]Payload, 0, n), j, seq, n, sched.UnixNano(), log)
		seq += uint64(n)
		s.use(c)
		ac.PublishAsync(ctx, ps, cfg.Size, func(acked []bool, err error) {
			r.settle(tl, log, ps, acked, err, now)
			if err != nil && ctx.Err() == nil {
				r.errs.add("publish", err)
			}
			<-sem
		})
	}
	// Wait for the requests in flight: take every slot.
	tm.Reset(inflightWait)
	for range cap(sem) {
		select {
		case sem <- struct{}{}:
		case <-tm.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// poolPublisher is the open loop over long-polling: MaxInflight workers
// with a Client each take the scheduled times from the scheduler (this
// goroutine) and send a request for each; a time no worker is free to
// take is handed over as soon as one is.
func (r *runner) poolPublisher(ctx context.Context, j int, s *session, log *PubLog) {
	cfg := &r.cfg
	o := r.openSchedule(j)
	tl := o.tl
	jobs := make(chan int64) // request index
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex // orders sequence numbers with the log
		seq uint64
	)
	for range cfg.MaxInflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.newClient()
			var ps []Payload
			for i := range jobs {
				sched, now := o.at(i), time.Now()
				if !now.Before(tl.measEnd) {
					r.unsent.Add(o.unsent(i) - o.unsent(i+1))
					continue
				}
				n := r.take(cfg.Batch)
				if n == 0 {
					continue
				}
				r.noteLate(tl, sched, now, n)
				mu.Lock()
				ps = r.payloads(ps, j, seq, n, sched.UnixNano(), log)
				seq += uint64(n)
				mu.Unlock()
				prefix := log.Prefix()
				for k := range ps {
					ps[k].Window = ps[k].Seq - min(prefix, ps[k].Seq)
				}
				s.use(c)
				acked, err := c.Publish(ctx, ps, cfg.Size)
				r.settle(tl, log, ps, acked, err, now)
				if err != nil && ctx.Err() == nil {
					// The session's connect loop handshakes again when
					// the server lost it.
					r.errs.add("publish", err)
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	end := time.NewTimer(time.Until(tl.measEnd))
	defer end.Stop()
	for i := int64(0); ctx.Err() == nil; i++ {
		sched := o.at(i)
		if !sched.Before(tl.measEnd) || r.budget.Load() <= 0 || !waitUntil(ctx, tm, sched) {
			return
		}
		select {
		case jobs <- i:
			continue
		default:
		}
		select {
		case jobs <- i:
		case <-end.C:
			r.unsent.Add(o.unsent(i))
			return
		case <-ctx.Done():
			return
		}
	}
}
