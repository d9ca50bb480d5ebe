package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errLog counts errors and keeps the first few distinct messages.
type errLog struct {
	n     atomic.Uint64
	mu    sync.Mutex
	first []string
}

func (e *errLog) add(what string, err error) {
	e.n.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.first) >= 8 {
		return
	}
	s := what + ": " + err.Error()
	for _, f := range e.first {
		if f == s {
			return
		}
	}
	e.first = append(e.first, s)
}

// second holds what happened during one second of a run.
type second struct {
	hist      Histogram
	published atomic.Uint64
	delivered atomic.Uint64
}

// session is a Bayeux client id shared by a publisher and its connect
// loop; whoever sees an unknown-client error handshakes again. With
// Config.PublishersSubscribe it is a subscriber's session (follow): the
// subscriber's setup stores its id and its connect loop handshakes again,
// the publisher only follows.
type session struct {
	mu sync.Mutex
	id atomic.Pointer[string]
	// follow: the session belongs to subscriber self, whose client
	// carries its id itself.
	follow bool
	self   conn
}

// use makes c speak for the session.
func (s *session) use(c conn) {
	if s.follow && c == s.self {
		return // the subscriber's own client knows its id
	}
	c.SetClientID(s.get())
}

// set records the session's id.
func (s *session) set(id string) { s.id.Store(&id) }

func (s *session) get() string {
	if p := s.id.Load(); p != nil {
		return *p
	}
	return ""
}

// rehandshake replaces the session id unless someone already did since
// stale was read.
func (s *session) rehandshake(ctx context.Context, c conn, stale string) error {
	if s.follow {
		return errors.New("loadgen: the subscriber's connect loop owns the session")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.get() != stale {
		return nil
	}
	if err := c.Handshake(ctx); err != nil {
		return err
	}
	id := c.ClientID()
	s.id.Store(&id)
	return nil
}

// conn is one simulated Bayeux client as the runner drives it: a
// long-polling *Client or a *WSClient, as Config.Transport says.
type conn interface {
	Handshake(ctx context.Context) error
	Subscribe(ctx context.Context, channels []string) error
	// SubscribeReplay subscribes asking for replay (replay.go).
	SubscribeReplay(ctx context.Context, channels []string, from []int64) error
	// Connect sends one /meta/connect and waits for its reply.
	Connect(ctx context.Context) (int, error)
	Publish(ctx context.Context, ps []Payload, size int) ([]bool, error)
	Disconnect(ctx context.Context) error
	ClientID() string
	SetClientID(id string)
	ConnectInterval() time.Duration
	// Close releases the client's connection, if it has one of its own.
	Close()
}

// runner holds the state of one run.
type runner struct {
	cfg   Config
	hc    *http.Client
	wsURL string // the WebSocket endpoint (websocket transport)

	tl      atomic.Pointer[timeline] // nil until the clock starts
	hist    Histogram                // end-to-end latency (churn: session time)
	ackHist Histogram                // publish request round trips in the window

	published  atomic.Uint64 // acknowledged messages
	sent       atomic.Uint64 // messages sent, acknowledged or not
	delivered  atomic.Uint64
	expected   atomic.Uint64 // deliveries the acknowledged messages call for
	stray      atomic.Uint64 // deliveries without benchmark data
	handshakes atomic.Uint64
	rehand     atomic.Uint64
	connects   atomic.Uint64
	sessions   atomic.Uint64
	pubErrs    atomic.Uint64
	late       atomic.Uint64 // window messages sent after LateThreshold
	lateMax    atomic.Int64  // ns
	unsent     atomic.Uint64
	budget     atomic.Int64
	errs       errLog

	subCount []uint64 // subscribers per channel
	chNames  []string // channel names by index
	pubChans [][]int  // channels each publisher cycles over; nil: all

	startN int64         // when the run started, Unix ns
	clock  chan struct{} // closed when the run's clock starts (setTimes)

	// The replay scenario (replay.go).
	rsubs      []*replaySub // by subscriber index; nil for one not set up
	replayHist Histogram    // re-subscribe to caught up
	down       atomic.Int64 // subscribers away (dropped, not re-subscribed yet)
	drops      atomic.Uint64
	ended      atomic.Uint64
	replays    atomic.Uint64
	fromAll    atomic.Uint64
	refused    atomic.Uint64
	replayed   atomic.Uint64
	caughtUp   atomic.Uint64

	idsMu sync.Mutex
	ids   []string // final client ids, for disconnecting

	reach *reachState // the reach scenario (reach.go)

	// shared[i] is subscriber i's session when publishers are
	// subscribers (Config.PublishersSubscribe), for i < Publishers.
	shared []*session
}

// Run executes one load run described by cfg and returns its result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, startN: time.Now().UnixNano(), clock: make(chan struct{})}
	conns := cfg.Subscribers + 2*cfg.Publishers + 64
	if cfg.Loop == LoopOpen && cfg.Transport == TransportLongPolling {
		conns += cfg.Publishers * cfg.MaxInflight
	}
	local, _ := ParseLocalAddrs(cfg.LocalAddrs) // checked by Validate
	r.hc = newHTTPClient(conns, local)
	defer r.hc.CloseIdleConnections()
	if cfg.MaxMessages > 0 {
		r.budget.Store(cfg.MaxMessages)
	} else {
		r.budget.Store(math.MaxInt64)
	}
	if cfg.Hub != nil {
		return r.runLocal(ctx)
	}
	r.chNames = make([]string, cfg.Channels)
	for i := range r.chNames {
		r.chNames[i] = cfg.ChannelName(i)
	}
	if cfg.Transport == TransportWebSocket {
		if err := r.probeWS(ctx); err != nil {
			return nil, err
		}
	}
	switch cfg.Kind {
	case KindIdle:
		return r.runIdle(ctx)
	case KindChurn:
		return r.runChurn(ctx)
	case KindReach:
		return r.runReach(ctx)
	default:
		return r.runPubSub(ctx)
	}
}

func (r *runner) newClient() *Client {
	return &Client{HC: r.hc, URL: r.cfg.URL, Timeout: 30 * time.Second}
}

// newConn returns a client of the configured transport; deliver, when
// set, receives every delivery with the time its response or frame was
// read.
func (r *runner) newConn(deliver func(m *Msg, at time.Time)) conn {
	if r.cfg.Protocol == ProtocolCentrifugo {
		return NewCentrifugoClient(r.wsURL, r.hc, deliver)
	}
	if r.cfg.Transport == TransportWebSocket {
		return &WSClient{URL: r.wsURL, HC: r.hc, OnDeliver: deliver}
	}
	c := r.newClient()
	if deliver != nil {
		c.OnDeliver = func(m *Msg) { deliver(m, c.RecvAt) }
	}
	return c
}

// probeWS checks with one handshake that the server serves the websocket
// connection type, so that a run against one that does not fails at once
// and says why.
func (r *runner) probeWS(ctx context.Context) error {
	u, err := WSURL(r.cfg.URL)
	if err != nil {
		return err
	}
	r.wsURL = u
	if r.cfg.Protocol == ProtocolCentrifugo {
		c := NewCentrifugoClient(u, r.hc, nil)
		defer c.Close()
		if err := c.Handshake(ctx); err != nil {
			return fmt.Errorf("centrifugo connect to %s: %w", u, err)
		}
		return nil
	}
	c := &WSClient{URL: u, HC: r.hc}
	defer c.Close()
	if err := c.Handshake(ctx); err != nil {
		return fmt.Errorf("websocket handshake with %s: %w", u, err)
	}
	_ = c.Disconnect(ctx) // best effort
	return nil
}

func (r *runner) handshake(ctx context.Context, c conn) error {
	err := c.Handshake(ctx)
	if err == nil {
		r.handshakes.Add(1)
	}
	return err
}

func (r *runner) keepID(id string) {
	if id == "" {
		return
	}
	r.idsMu.Lock()
	r.ids = append(r.ids, id)
	r.idsMu.Unlock()
}

// timeline is the run's clock, fixed when publishing starts and read
// by every goroutine through runner.tl.
type timeline struct {
	t0         time.Time // publishing starts
	measStart  time.Time
	measEnd    time.Time
	measStartN int64
	measEndN   int64
	secs       []*second
}

// setTimes starts the run's clock now, with the measured window
// starting after warmup.
func (r *runner) setTimes(warmup time.Duration) *timeline {
	tl := &timeline{t0: time.Now()}
	tl.measStart = tl.t0.Add(warmup)
	tl.measEnd = tl.measStart.Add(r.cfg.Duration)
	tl.measStartN = tl.measStart.UnixNano()
	tl.measEndN = tl.measEnd.UnixNano()
	n := int((warmup+r.cfg.Duration+r.cfg.Drain)/time.Second) + 8
	tl.secs = make([]*second, n)
	for i := range tl.secs {
		tl.secs[i] = &second{}
	}
	r.tl.Store(tl)
	close(r.clock)
	return tl
}

func (tl *timeline) secAt(t time.Time) *second {
	i := int(t.Sub(tl.t0) / time.Second)
	if i < 0 {
		i = 0
	}
	if i >= len(tl.secs) {
		i = len(tl.secs) - 1
	}
	return tl.secs[i]
}

// subscriber sets up client i, reports on ready, then long-polls until ctx
// ends. Setup is retried a few times; a subscriber that never gets ready
// reports its error and leaves tr nil.
func (r *runner) subscriber(ctx context.Context, i int, sem chan struct{}, ready func(*SubTracker, error)) {
	chans := r.cfg.SubscriberChannels(i)
	names := make([]string, len(chans))
	for k, ch := range chans {
		names[k] = r.chNames[ch]
	}
	tr := NewSubTracker(chans, r.cfg.Publishers)
	deliver := func(m *Msg, at time.Time) { r.deliver(tr, m, at) }
	if r.reach != nil {
		deliver = func(m *Msg, at time.Time) { r.reachDeliver(i, m, at) }
	}
	c := r.newConn(deliver)
	// Close waits for a WebSocket's reader, the tracker's only writer,
	// so tr is complete once the subscriber has returned.
	defer c.Close()
	var sess *session
	if i < len(r.shared) {
		sess = &session{follow: true, self: c}
	}
	setup := func() error {
		if err := r.handshake(ctx, c); err != nil {
			return err
		}
		if sess != nil {
			sess.set(c.ClientID())
		}
		return c.Subscribe(ctx, names)
	}
	var err error
	sem <- struct{}{}
	for attempt := range 3 {
		if err = setup(); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	<-sem
	if err != nil {
		ready(nil, err)
		return
	}
	if sess != nil {
		r.shared[i] = sess
	}
	ready(tr, nil)
	defer func() { r.keepID(c.ClientID()) }()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		_, err := c.Connect(ctx)
		if ctx.Err() != nil {
			return
		}
		r.connects.Add(1)
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
			if d := c.ConnectInterval(); d > 0 {
				sleepCtx(ctx, d)
			}
			continue
		case errors.Is(err, ErrRehandshake):
			r.rehand.Add(1)
			if err = setup(); err == nil {
				continue
			}
		case errors.Is(err, ErrReconnectNone):
			r.errs.add("connect", err)
			return
		}
		r.errs.add("connect", err)
		sleepCtx(ctx, backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *runner) deliver(tr *SubTracker, m *Msg, at time.Time) {
	if !m.Bench {
		r.stray.Add(1)
		return
	}
	r.observe(tr, m, at, true)
}

// observe checks off a benchmark delivery in tr and counts it; its
// latency goes into the histograms when latency is set and it was
// published in the measured window.
func (r *runner) observe(tr *SubTracker, m *Msg, at time.Time, latency bool) {
	tr.ObserveWindow(m.Pub, m.Seq, m.Window, channelIndex(m.Channel))
	r.delivered.Add(1)
	tl := r.tl.Load()
	if tl == nil {
		return
	}
	s := tl.secAt(at)
	s.delivered.Add(1)
	if latency && m.TS >= tl.measStartN && m.TS < tl.measEndN {
		d := time.Duration(at.UnixNano() - m.TS)
		r.hist.Record(d)
		s.hist.Record(d)
	}
}

// publisherConnect keeps a publisher's session alive with a connect loop
// on c as a real client would (servers expire sessions that stop
// connecting). Over long-polling c is a client of its own sharing the
// session; over WebSocket it is the publisher's client, whose socket
// carries both.
func (r *runner) publisherConnect(ctx context.Context, s *session, c conn) {
	for ctx.Err() == nil {
		id := s.get()
		c.SetClientID(id)
		_, err := c.Connect(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			if d := c.ConnectInterval(); d > 0 {
				sleepCtx(ctx, d)
			}
		case errors.Is(err, ErrRehandshake):
			r.rehand.Add(1)
			if err := s.rehandshake(ctx, c, id); err != nil {
				r.errs.add("publisher handshake", err)
				sleepCtx(ctx, 200*time.Millisecond)
			} else {
				r.handshakes.Add(1)
			}
		default:
			r.errs.add("publisher connect", err)
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
}

type snapshot struct {
	at        time.Time
	cpu       time.Duration
	srvCPU    time.Duration
	published uint64
	delivered uint64
	sessions  uint64
	handshake uint64
}

func (r *runner) snap() snapshot {
	return snapshot{
		at:        time.Now(),
		cpu:       SelfCPU(),
		srvCPU:    r.cfg.serverCPU(),
		published: r.published.Load(),
		delivered: r.delivered.Load(),
		sessions:  r.sessions.Load(),
		handshake: r.handshakes.Load(),
	}
}

// progress prints a line to cfg.Progress every second until stop closes.
func (r *runner) progress(stop <-chan struct{}, extra func() string) {
	if r.cfg.Progress == nil {
		return
	}
	tl := r.tl.Load()
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	prev := r.snap()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		cur := r.snap()
		dt := cur.at.Sub(prev.at).Seconds()
		phase := "warmup"
		if cur.at.After(tl.measEnd) {
			phase = "drain"
		} else if cur.at.After(tl.measStart) {
			phase = "measure"
		}
		line := fmt.Sprintf("[%5.1fs %-7s] pub/s %8.0f  del/s %9.0f  ", cur.at.Sub(tl.t0).Seconds(), phase,
			float64(cur.published-prev.published)/dt, float64(cur.delivered-prev.delivered)/dt)
		if i := int(cur.at.Sub(tl.t0)/time.Second) - 1; i >= 0 && i < len(tl.secs) {
			h := &tl.secs[i].hist
			if h.Count() > 0 {
				line += fmt.Sprintf("p50 %s p99 %s  ", fmtDur(h.Quantile(0.5)), fmtDur(h.Quantile(0.99)))
			}
		}
		if extra != nil {
			line += extra()
		}
		line += fmt.Sprintf("errs %d  gen cpu %3.0f%%", r.errs.n.Load(), 100*(cur.cpu-prev.cpu).Seconds()/dt)
		if cur.srvCPU >= 0 && !r.cfg.InProc {
			line += fmt.Sprintf("  srv cpu %3.0f%%", 100*(cur.srvCPU-prev.srvCPU).Seconds()/dt)
		}
		fmt.Fprintln(r.cfg.Progress, line)
		prev = cur
	}
}

func (r *runner) runPubSub(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()

	r.subCount = make([]uint64, cfg.Channels)
	for i := range cfg.Subscribers {
		for _, ch := range cfg.SubscriberChannels(i) {
			r.subCount[ch]++
		}
	}

	if cfg.PublishersSubscribe {
		r.shared = make([]*session, cfg.Publishers)
		r.pubChans = make([][]int, cfg.Publishers)
		for j := range cfg.Publishers {
			r.pubChans[j] = cfg.SubscriberChannels(j)
		}
	}
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	trackers := make([]*SubTracker, cfg.Subscribers)
	subscriber := r.subscriber
	if cfg.Kind == KindReplay {
		r.rsubs = make([]*replaySub, cfg.Subscribers)
		subscriber = r.replaySubscriber
	}
	subsWG := r.startSubscribers(subCtx, subscriber, res, func(i int, tr *SubTracker) { trackers[i] = tr })
	if cfg.Subscribers > 0 && res.SetupFailed == uint64(cfg.Subscribers) {
		stopSubs()
		subsWG.Wait()
		return nil, fmt.Errorf("no subscriber could be set up: %v", r.errs.first)
	}
	if res.SetupFailed > 0 {
		// Failed subscribers expect nothing.
		for i, tr := range trackers {
			if tr == nil {
				for _, ch := range cfg.SubscriberChannels(i) {
					r.subCount[ch]--
				}
			}
		}
	}

	// Publishers handshake before the clock starts.
	pubCtx, stopPubs := context.WithCancel(ctx)
	defer stopPubs()
	logs := make([]*PubLog, cfg.Publishers)
	clients := make([]conn, cfg.Publishers)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	sessions := make([]*session, cfg.Publishers)
	for j := range cfg.Publishers {
		if cfg.PublishersSubscribe {
			// Subscriber j publishes: over WebSocket on its own socket,
			// over long-polling with clients of its own sharing the
			// subscriber's session.
			sessions[j], logs[j] = r.shared[j], &PubLog{}
			if sessions[j] == nil {
				continue // its setup failed: it does not publish
			}
			if cfg.Transport == TransportLongPolling {
				clients[j] = r.newConn(nil)
			}
			continue
		}
		c := r.newConn(nil)
		var err error
		for range 3 {
			if err = r.handshake(ctx, c); err == nil {
				break
			}
		}
		if err != nil {
			c.Close()
			stopSubs()
			subsWG.Wait()
			return nil, fmt.Errorf("publisher handshake: %w", err)
		}
		clients[j], logs[j], sessions[j] = c, &PubLog{}, &session{}
		id := c.ClientID()
		sessions[j].id.Store(&id)
	}
	var connWG sync.WaitGroup
	for j := range cfg.Publishers {
		if cfg.PublishersSubscribe {
			break // the subscribers' connect loops keep the sessions
		}
		connWG.Add(1)
		go func() {
			defer connWG.Done()
			c := clients[j] // one socket per WebSocket client
			if r.cfg.Transport != TransportWebSocket {
				c = r.newConn(nil)
			}
			r.publisherConnect(subCtx, sessions[j], c)
		}()
	}

	tl := r.setTimes(cfg.Warmup)
	stopProgress := make(chan struct{})
	var extra func() string
	if cfg.Kind == KindReplay {
		extra = r.replayProgress
	}
	go r.progress(stopProgress, extra)
	var pubWG sync.WaitGroup
	pubsDone := make(chan struct{})
	for j := range cfg.Publishers {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			s, c := sessions[j], clients[j]
			if s == nil {
				return
			}
			if c == nil {
				c = s.self
			}
			r.publisher(pubCtx, j, c, s, logs[j])
		}()
	}
	go func() { pubWG.Wait(); close(pubsDone) }()

	// Measured window.
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
	if ctx.Err() != nil {
		close(stopProgress)
		stopSubs()
		subsWG.Wait()
		return nil, ctx.Err()
	}

	r.drain(ctx, res, cfg.Drain)
	d1 := s1
	if early {
		// Deliveries of a bounded run are measured until they drained.
		d1 = r.snap()
	}
	res.ServerRSSAfter = cfg.serverRSS()
	close(stopProgress)
	stopSubs()
	subsWG.Wait()
	connWG.Wait()
	for _, s := range sessions {
		if s != nil && !s.follow {
			r.keepID(s.get())
		}
	}
	r.disconnectAll()

	// Accounting.
	for _, tr := range trackers {
		if tr == nil {
			continue
		}
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
	if cfg.Kind == KindReplay {
		res.Replay = r.replayStats(logs)
	}
	r.fill(res, s0, s1)
	r.fillDelivery(res, s0, d1)
	return res, nil
}

// drain waits, up to limit or until ctx ends, for the deliveries still
// outstanding after publishing stopped (and, in the replay scenario, for
// the subscribers still away to be back); it gives up early when nothing
// has arrived for 2 s with every subscriber there. It records how long it
// took and whether it ran out.
func (r *runner) drain(ctx context.Context, res *Result, limit time.Duration) {
	start := time.Now()
	last, lastChange := r.delivered.Load(), time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		d, away := r.delivered.Load(), r.down.Load() > 0
		if d >= r.expected.Load() && !away {
			break
		}
		if d != last || away {
			last, lastChange = d, time.Now()
		} else if time.Since(lastChange) > 2*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.DrainSeconds = time.Since(start).Seconds()
	res.DrainTimedOut = r.delivered.Load() < r.expected.Load() && time.Since(start) >= limit
}

// fill completes the common fields of res from the window snapshots.
func (r *runner) fill(res *Result, s0, s1 snapshot) {
	w := s1.at.Sub(s0.at).Seconds()
	res.WindowSeconds = w
	res.Published = s1.published - s0.published
	res.Delivered = s1.delivered - s0.delivered
	res.PublishedTotal = r.published.Load()
	res.DeliveredTotal = r.delivered.Load()
	res.PublishErrors = r.pubErrs.Load()
	res.Late = r.late.Load()
	res.LateMaxMS = ms(time.Duration(r.lateMax.Load()))
	res.Unsent = r.unsent.Load()
	res.Handshakes = r.handshakes.Load()
	res.Rehandshakes = r.rehand.Load()
	res.Connects = r.connects.Load()
	res.Errors = r.errs.n.Load()
	res.FirstErrors = r.errs.first
	if w > 0 {
		res.PublishRate = float64(res.Published) / w
		res.DeliverRate = float64(res.Delivered) / w
		res.Sessions = s1.sessions - s0.sessions
		res.SessionRate = float64(res.Sessions) / w
		res.HandshakeRate = float64(s1.handshake-s0.handshake) / w
		res.GenCPU = 100 * (s1.cpu - s0.cpu).Seconds() / w
		if s0.srvCPU >= 0 && s1.srvCPU >= 0 && !r.cfg.InProc {
			res.ServerCPU = 100 * (s1.srvCPU - s0.srvCPU).Seconds() / w
		} else {
			res.ServerCPU = -1
		}
	}
	res.Latency = summarize(&r.hist)
	res.PublishAck = summarize(&r.ackHist)
	res.Hist = r.hist.Buckets()
	if tl := r.tl.Load(); tl != nil {
		end := int(time.Since(tl.t0) / time.Second) // whole seconds only
		for i := 0; i < end && i < len(tl.secs); i++ {
			s := tl.secs[i]
			p := Point{T: i, Published: s.published.Load(), Delivered: s.delivered.Load()}
			if s.hist.Count() > 0 {
				p.P50 = ms(s.hist.Quantile(0.5))
				p.P99 = ms(s.hist.Quantile(0.99))
			}
			res.Series = append(res.Series, p)
		}
	}
}

// fillDelivery sets the delivery figures from the window s0..d1, which
// extends past the publishing window when publishing stopped early.
func (r *runner) fillDelivery(res *Result, s0, d1 snapshot) {
	res.Delivered = d1.delivered - s0.delivered
	if w := d1.at.Sub(s0.at).Seconds(); w > 0 {
		res.DeliverRate = float64(res.Delivered) / w
	}
}

// disconnectAll sends /meta/disconnect for every kept client id, 64 at a
// time, for at most 15 seconds.
func (r *runner) disconnectAll() {
	if r.cfg.Protocol == ProtocolCentrifugo {
		r.ids = nil // closing a socket ends its client
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.newConn(nil)
			defer c.Close()
			for id := range ids {
				c.SetClientID(id)
				_ = c.Disconnect(ctx) // best effort: the session may be gone already
			}
		}()
	}
	for _, id := range r.ids {
		if ctx.Err() != nil {
			break
		}
		ids <- id
	}
	close(ids)
	wg.Wait()
	r.ids = nil
}

// startSubscribers starts cfg.Subscribers subscribers with subscriber, at
// most cfg.SetupConcurrency setting up at once, and returns once each is
// set up or has failed, with their goroutines' WaitGroup: it records the
// setup time and failures in res, and calls ready (when not nil) with each
// one's tracker.
func (r *runner) startSubscribers(ctx context.Context, subscriber func(context.Context, int, chan struct{}, func(*SubTracker, error)), res *Result, ready func(i int, tr *SubTracker)) *sync.WaitGroup {
	var subsWG, readyWG sync.WaitGroup
	sem := make(chan struct{}, r.cfg.SetupConcurrency)
	var setupFailed atomic.Uint64
	setupStart := time.Now()
	for i := range r.cfg.Subscribers {
		subsWG.Add(1)
		readyWG.Add(1)
		go func() {
			defer subsWG.Done()
			subscriber(ctx, i, sem, func(tr *SubTracker, err error) {
				if ready != nil {
					ready(i, tr)
				}
				if err != nil {
					setupFailed.Add(1)
					r.errs.add("subscriber setup", err)
				}
				readyWG.Done()
			})
		}()
	}
	readyWG.Wait()
	res.SetupSeconds = time.Since(setupStart).Seconds()
	res.SetupFailed = setupFailed.Load()
	return &subsWG
}

// runIdle holds Subscribers long-polls open with no traffic and reports
// the server's memory per client.
func (r *runner) runIdle(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	cfg.Warmup, cfg.Publishers, cfg.Rate = 0, 0, 0
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subsWG := r.startSubscribers(subCtx, r.subscriber, res, nil)
	held := uint64(cfg.Subscribers) - res.SetupFailed
	res.Held = held
	// Let the first connects (which some servers answer at once) and the
	// held ones settle.
	sleepCtx(ctx, 2*time.Second)
	r.setTimes(0)
	stopProgress := make(chan struct{})
	go r.progress(stopProgress, func() string {
		return fmt.Sprintf("held %d  srv rss %s  ", held, fmtBytes(cfg.serverRSS()))
	})
	s0 := r.snap()
	c0 := r.connects.Load()
	sleepCtx(ctx, cfg.Duration)
	s1 := r.snap()
	res.ServerRSSAfter = cfg.serverRSS()
	res.IdleConnectReplies = r.connects.Load() - c0
	res.GenRSS = ProcRSS(os.Getpid())
	close(stopProgress)
	stopSubs()
	subsWG.Wait()
	r.disconnectAll()
	r.fill(res, s0, s1)
	if held > 0 && res.ServerRSSBefore > 0 && res.ServerRSSAfter > 0 {
		res.RSSPerClient = float64(res.ServerRSSAfter-res.ServerRSSBefore) / float64(held)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

// runChurn loops handshake, subscribe, disconnect in Subscribers workers.
func (r *runner) runChurn(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	res := newResult(cfg)
	res.ServerRSSBefore = cfg.serverRSS()
	tl := r.setTimes(cfg.Warmup)
	stopProgress := make(chan struct{})
	go r.progress(stopProgress, func() string {
		return fmt.Sprintf("sessions %d  ", r.sessions.Load())
	})
	var wg sync.WaitGroup
	for w := range cfg.Subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Over WebSocket a worker runs its sessions one after the
			// other on one socket, as long-polling workers reuse
			// keep-alive connections.
			c := r.newConn(nil)
			defer c.Close()
			chans := []string{r.chNames[w%cfg.Channels]}
			for ctx.Err() == nil && time.Now().Before(tl.measEnd) {
				if r.budget.Add(-1) < 0 {
					return
				}
				start := time.Now()
				if err := r.handshake(ctx, c); err != nil {
					r.errs.add("handshake", err)
					sleepCtx(ctx, 50*time.Millisecond)
					continue
				}
				if err := c.Subscribe(ctx, chans); err != nil {
					r.errs.add("subscribe", err)
				}
				if err := c.Disconnect(ctx); err != nil {
					r.errs.add("disconnect", err)
					continue
				}
				end := time.Now()
				r.sessions.Add(1)
				if start.After(tl.measStart) {
					r.hist.Record(end.Sub(start))
					tl.secAt(end).hist.Record(end.Sub(start))
				}
			}
		}()
	}
	var s0, s1 snapshot
	sleepCtx(ctx, time.Until(tl.measStart))
	s0 = r.snap()
	sleepCtx(ctx, time.Until(tl.measEnd))
	s1 = r.snap()
	wg.Wait()
	close(stopProgress)
	res.ServerRSSAfter = cfg.serverRSS()
	r.fill(res, s0, s1)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}
