package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// Hub is a running Bayeux hub inside an actor system. Create one with Start;
// all its methods are safe for concurrent use.
type Hub struct {
	opts   Options
	log    zerolog.Logger
	system *actor.ActorSystem
	root   *actor.RootContext

	pid        *actor.PID // the hub actor, named opts.Alias
	supervisor *actor.PID

	sessions sync.Map  // client id -> *sessionRef
	users    userIndex // user id -> its sessions on this node

	chanMu   sync.RWMutex
	channels map[string]*channelEntry // pattern -> channel; written by the hub actor only

	connTypes atomic.Pointer[[]string] // see SetConnectionTypes

	draining  atomic.Bool
	drainOnce sync.Once
	drained   chan struct{} // closed when every session has drained
	closed    atomic.Bool
	// publishing orders publishes before Drain (see gate.go).
	publishing gate

	history   History        // Options.History, or the hub's own in memory
	memory    *memoryHistory // the hub's own, when it is the history
	historyOn bool           // some channel rule keeps history
	stripes   [64]sync.Mutex // order the stamping and routing per channel (replay.go)

	events     *eventQueue // see events.go
	streamBase int32       // event stream subscribers the actor system made

	ipMu  sync.Mutex
	perIP map[string]*address // remote sessions by remote host (limits.go)

	browserMu   sync.Mutex
	browserHeld map[string]int // held connects by BAYEUX_BROWSER id

	stats    hubStats
	refusals refusals
	presence presence // presence.go
	start    time.Time
}

type hubStats struct {
	clients      atomic.Int64
	channels     atomic.Int64
	published    atomic.Uint64
	delivered    atomic.Uint64
	handshakes   atomic.Uint64
	queued       atomic.Int64
	held         atomic.Int64
	overflows    atomic.Uint64
	dropped      atomic.Uint64
	brokerErrors atomic.Uint64
	expired      atomic.Uint64
	evicted      atomic.Uint64 // pending sessions ended by MaxPendingSessionsPerIP
	bytes        atomic.Int64  // bytes remote sessions keep for their clients
}

// Stats is a snapshot of a hub's counters.
type Stats struct {
	Clients    int    // open sessions, remote and local
	Channels   int    // live channel actors (names and patterns)
	Published  uint64 // messages accepted for publish since start
	Delivered  uint64 // messages handed to subscribers since start
	Handshakes uint64 // successful handshakes since start
	Queued     int    // messages waiting in remote sessions' queues
	Held       int    // /meta/connect requests held open now
	Overflows  uint64 // sessions that reached Options.MaxQueue
	Dropped    uint64 // messages dropped by QueueDropOldest
	// BrokerErrors counts publishes and subscription changes the broker
	// could not pass on (other nodes missed them).
	BrokerErrors uint64
	// Expired counts sessions ended because their token expired.
	Expired uint64
	// QueuedBytes is the bytes remote sessions keep for their clients
	// now (queued and unacknowledged), bounded by MaxTotalBytes.
	QueuedBytes int64
	// HistoryBytes is what the hub's own history (in memory) holds now,
	// bounded by MaxHistoryBytes; HistoryEvicted counts the messages it
	// dropped, by their channel rule's bounds or the total, oldest first.
	HistoryBytes   int64
	HistoryEvicted uint64
	// Evicted counts sessions that never connected, ended to make room
	// under MaxPendingSessionsPerIP.
	Evicted uint64
	// EventsDropped counts events the Callback (and the event stream)
	// missed because they were MaxEventBacklog events behind.
	EventsDropped uint64
	// Refusals counts refused handshakes, subscribes and publishes by
	// action, channel rule and reason.
	Refusals []Refusal
	Presence PresenceStats // presence.go
	Uptime   time.Duration // time since Start
}

// Start spawns a hub in system: the hub actor (named opts.Alias), its
// supervisor and, later, its channel and session actors. Stop it with
// Shutdown; the actor system stays the caller's.
func Start(system *actor.ActorSystem, opts Options) (*Hub, error) {
	opts, err := opts.withDefaults()
	if err == nil {
		err = opts.validate()
	}
	if err != nil {
		return nil, fmt.Errorf("bayeuxhub: %w", err)
	}
	h := &Hub{
		opts:        opts,
		log:         opts.Logger.With().Str("component", "hub").Logger(),
		system:      system,
		root:        system.Root,
		channels:    make(map[string]*channelEntry),
		perIP:       make(map[string]*address),
		browserHeld: make(map[string]int),
		start:       time.Now(),
		streamBase:  system.EventStream.Length(),
		publishing:  newGate(),
	}
	h.startEvents()
	for i := range opts.Rules.Len() {
		h.historyOn = h.historyOn || opts.Rules.Rule(i).History.Enabled()
	}
	h.history = opts.History
	if h.history == nil {
		h.memory = newMemoryHistory(opts.MaxHistoryBytes)
		h.history = h.memory
	}
	types := slices.Clone(opts.ConnectionTypes)
	h.connTypes.Store(&types)
	props := actor.PropsFromProducer(func() actor.Actor { return &hubActor{hub: h} },
		actor.WithSupervisor(actor.NewOneForOneStrategy(10, 10*time.Second, h.decide("child"))))
	pid, err := system.Root.SpawnNamed(props, opts.Alias)
	if err != nil {
		return nil, fmt.Errorf("spawn hub actor %q: %w", opts.Alias, err)
	}
	h.pid = pid
	ready := make(chan *actor.PID, 1)
	system.Root.Send(pid, startSupervisor{ready: ready})
	select {
	case h.supervisor = <-ready:
	case <-time.After(10 * time.Second):
		return nil, errors.New("bayeuxhub: hub actor did not start")
	}
	if err := h.startBroker(); err != nil {
		_ = h.root.PoisonFuture(h.pid).Wait()
		return nil, err
	}
	h.startPresence()
	h.log.Info().Str("alias", opts.Alias).Dur("connect_timeout", opts.ConnectTimeout).
		Dur("poll_timeout", opts.PollTimeout).Bool("anon_publish", opts.AnonPublish).
		Str("node", opts.NodeName).Bool("broker", opts.Broker != nil).Msg("hub started")
	return h, nil
}

// PID returns the hub actor's PID (its name is Options.Alias).
func (h *Hub) PID() *actor.PID { return h.pid }

// System returns the actor system the hub runs in.
func (h *Hub) System() *actor.ActorSystem { return h.system }

// NodeName returns the name of this node (Options.NodeName).
func (h *Hub) NodeName() string { return h.opts.NodeName }

// Draining reports whether Drain or Shutdown has begun: new publishes and
// handshakes are refused.
func (h *Hub) Draining() bool { return h.draining.Load() }

// PollTimeout returns the configured /meta/connect hold time.
func (h *Hub) PollTimeout() time.Duration { return h.opts.PollTimeout }

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	var historyBytes int64
	var historyEvicted uint64
	if h.memory != nil {
		historyBytes, historyEvicted = h.memory.stats()
	}
	return Stats{
		Clients:        int(h.stats.clients.Load()),
		Channels:       int(h.stats.channels.Load()),
		Published:      h.stats.published.Load(),
		Delivered:      h.stats.delivered.Load(),
		Handshakes:     h.stats.handshakes.Load(),
		Queued:         int(h.stats.queued.Load()),
		Held:           int(h.stats.held.Load()),
		Overflows:      h.stats.overflows.Load(),
		Dropped:        h.stats.dropped.Load(),
		BrokerErrors:   h.stats.brokerErrors.Load(),
		Expired:        h.stats.expired.Load(),
		EventsDropped:  h.events.dropped.Load(),
		QueuedBytes:    h.stats.bytes.Load(),
		HistoryBytes:   historyBytes,
		HistoryEvicted: historyEvicted,
		Evicted:        h.stats.evicted.Load(),
		Refusals:       h.refusals.snapshot(),
		Presence:       h.presenceStats(),
		Uptime:         time.Since(h.start),
	}
}

// Drain prepares the hub to stop without losing an accepted publish. New
// publishes and handshakes are refused (503) from now on; every publish
// already accepted is carried through to its subscribers' queues; then
// every held /meta/connect is answered with what is queued, and later
// connects are answered at once with advice to come back after
// DrainRetryInterval. Clients can still fetch what is queued until the
// transport stops. Drain returns when that is done, or with ctx's error
// when ctx ends first. It waits for every session: called from code that
// runs on a session (a service handler, the MessageACL), it can return
// only when ctx ends.
func (h *Hub) Drain(ctx context.Context) error {
	h.draining.Store(true)
	// Wait out the publishes that were accepted before: routing sends
	// from the publisher's goroutine, so once they are done every accepted
	// message is in its subscribers' mailboxes, ahead of the drain below.
	if err := h.publishing.close(ctx); err != nil {
		return fmt.Errorf("bayeuxhub: drain: %w", err)
	}
	h.drainOnce.Do(func() {
		h.drained = make(chan struct{})
		h.root.Send(h.supervisor, drain{done: h.drained})
	})
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bayeuxhub: drain: %w", ctx.Err())
	}
}

// overMemory refuses new work while the sessions keep more than
// MaxTotalBytes for their clients.
func (h *Hub) overMemory() *protocol.Error {
	if max := h.opts.MaxTotalBytes; max > 0 && h.stats.bytes.Load() >= max {
		return &protocol.Error{Code: protocol.CodeServiceUnavailable, Message: "Server over its memory limit",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectRetry, Interval: protocol.Int(1000)}}
	}
	return nil
}

// publish routes m, a checked message, unless the hub is draining or
// over its memory limit.
func (h *Hub) publish(sender actor.SenderContext, m *Message) *protocol.Error {
	if err := h.overMemory(); err != nil {
		return h.refuse(actionPublish, "", refusedByMemory, m.ClientID, err)
	}
	if !h.publishing.enter() {
		return protocol.ErrShuttingDown(protocol.ReconnectRetry)
	}
	defer h.publishing.leave()
	return h.routeStamped(m, func(m *Message) { h.route(sender, m) })
}

// Shutdown drains the hub, stops every session, channel and the hub actor,
// and waits for them, or for ctx. Queued publishes already accepted are
// delivered to sessions before they stop only as far as the sessions have
// received them; held connects are answered.
func (h *Hub) Shutdown(ctx context.Context) error {
	if h.closed.Swap(true) {
		return nil
	}
	if err := h.Drain(ctx); err != nil {
		h.closed.Store(false) // a later Shutdown may finish the job
		return err
	}
	done := make(chan struct{})
	go func() {
		// Poison is queued behind messages already sent, so everything
		// accepted before Shutdown is processed first.
		_ = h.root.PoisonFuture(h.pid).Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("bayeuxhub: shutdown: %w", ctx.Err())
	}
	h.stopPresence() // after the sessions: the other hubs hear of their leaving
	if b := h.opts.Broker; b != nil {
		if err := b.Close(); err != nil {
			return fmt.Errorf("bayeuxhub: close broker: %w", err)
		}
	}
	if err := h.stopEvents(ctx); err != nil {
		return err
	}
	h.log.Info().Msg("hub stopped")
	return nil
}

// decide is the supervision decider: a failing session or channel actor is
// logged and stopped, never restarted with lost state.
func (h *Hub) decide(kind string) actor.DeciderFunc {
	return func(reason any) actor.Directive {
		h.log.Error().Str("actor", kind).Interface("panic", reason).Msg("actor failed; stopping it")
		return actor.StopDirective
	}
}

// channelEntry is a channel in the registry: its actor, and the
// subscriber list the actor publishes for routing. The actor replaces the
// list whole on every change (copy on write), so a publisher reads it
// without locks or messages.
type channelEntry struct {
	pid  *actor.PID
	subs atomic.Pointer[subList]
	live atomic.Int64 // subscribers, for listings
}

// route delivers m to every session subscribed to its channel through a
// name or a pattern: a publish to /a/b/c consults only the channels
// /a/b/c, /a/b/*, /a/b/**, /a/** and /**, never a list of all clients. It
// runs on the publisher's own goroutine (its session actor, or the caller
// of LocalClient.Publish) and sends each subscriber's copy from there, so
// every subscriber gets one publisher's messages in the order they were
// published, whatever channels they went to; a session subscribed through
// several matching patterns is sent one copy.
func (h *Hub) route(sender actor.SenderContext, m *Message) {
	h.stats.published.Add(1)
	// The other hubs first: a local fan-out readies a goroutine per
	// subscriber session, and the broker's own goroutine (nats.go's
	// flusher) would otherwise run only after all of them; with 16,667
	// local subscribers the other hubs heard of a publish 0.86 s late.
	h.brokerPublish(m)
	h.routeLocal(sender, m)
	h.emit(Event{Type: EventPublish, ClientID: m.ClientID, Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext})
}

// routeLocal delivers m to this node's subscribers.
func (h *Hub) routeLocal(sender actor.SenderContext, m *Message) {
	var stack [8]*subList
	lists := stack[:0]
	h.chanMu.RLock()
	protocol.Patterns(m.Channel, func(p []byte) {
		if e := h.channels[string(p)]; e != nil {
			if l := e.subs.Load(); l != nil && l.n > 0 {
				lists = append(lists, l)
			}
		}
	})
	h.chanMu.RUnlock()
	switch len(lists) {
	case 0:
		return
	case 1:
		l := lists[0]
		for i := 0; i < l.n; i++ {
			if pid := l.slots[i].Load(); pid != nil {
				sender.Send(pid, m)
			}
		}
		return
	}
	seen := make(map[string]struct{}, lists[0].n)
	for _, l := range lists {
		for i := 0; i < l.n; i++ {
			if pid := l.slots[i].Load(); pid != nil {
				if _, dup := seen[pid.Id]; !dup {
					seen[pid.Id] = struct{}{}
					sender.Send(pid, m)
				}
			}
		}
	}
}

// lookupSession returns the live session for a client id.
func (h *Hub) lookupSession(id string) *sessionRef {
	v, ok := h.sessions.Load(id)
	if !ok {
		return nil
	}
	return v.(*sessionRef)
}

// ---- the hub actor ----

type hubActor struct {
	hub   *Hub
	adds  map[string]uint64 // pattern -> subscribes forwarded
	names map[string]string // channel actor id -> pattern
}

func (a *hubActor) Receive(ctx actor.Context) {
	h := a.hub
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.adds = make(map[string]uint64)
		a.names = make(map[string]string)
	case startSupervisor:
		props := actor.PropsFromProducer(func() actor.Actor { return newSupervisor(h) },
			actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, h.decide("session"))))
		pid, err := ctx.SpawnNamed(props, "sessions")
		if err != nil {
			h.log.Error().Err(err).Msg("spawn supervisor")
			return
		}
		msg.ready <- pid
	case *subscribeReq:
		h.chanMu.RLock()
		e := h.channels[msg.pattern]
		h.chanMu.RUnlock()
		if e == nil && h.opts.MaxChannels > 0 && int(h.stats.channels.Load()) >= h.opts.MaxChannels {
			err := h.refuse(actionSubscribe, "", refusedByLimit, "", errTooManyChannels(msg.pattern))
			ctx.Send(msg.session, &subscribeFailed{pattern: msg.pattern, err: err})
			return
		}
		if e == nil {
			e = &channelEntry{}
			pattern := msg.pattern
			e.pid = ctx.SpawnPrefix(actor.PropsFromProducer(func() actor.Actor {
				return &channelActor{hub: h, pattern: pattern, entry: e}
			}), "channel")
			h.chanMu.Lock()
			h.channels[pattern] = e
			h.chanMu.Unlock()
			a.names[e.pid.Id] = pattern
			h.stats.channels.Add(1)
			h.brokerSubscription(pattern, true)
		}
		a.adds[msg.pattern]++
		ctx.Send(e.pid, &addSubscriber{session: msg.session})
	case *channelIdle:
		h.chanMu.RLock()
		e := h.channels[msg.pattern]
		h.chanMu.RUnlock()
		if e == nil || !e.pid.Equal(msg.pid) || a.adds[msg.pattern] != msg.adds {
			return // a subscribe is on its way to it
		}
		a.forget(msg.pattern, e.pid)
		ctx.Stop(e.pid)
	case *actor.Terminated:
		// A channel actor stopped: after channelIdle this is a no-op; after a
		// failure it forgets the channel so the next subscribe makes a new one.
		if pattern, ok := a.names[msg.Who.Id]; ok {
			a.forget(pattern, msg.Who)
		}
	default:
		a.handleAPI(ctx, msg)
	}
}

// forget removes a channel actor from the registry.
func (a *hubActor) forget(pattern string, pid *actor.PID) {
	h := a.hub
	h.chanMu.Lock()
	removed := false
	if cur := h.channels[pattern]; cur != nil && cur.pid.Equal(pid) {
		delete(h.channels, pattern)
		h.stats.channels.Add(-1)
		removed = true
	}
	h.chanMu.Unlock()
	if removed {
		h.brokerSubscription(pattern, false)
	}
	delete(a.adds, pattern)
	delete(a.names, pid.Id)
}
