package actors

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// ErrClosed is returned by hub operations after Shutdown has begun.
var ErrClosed = errors.New("bayeuxhub: hub is shut down")

// Hub is a running Bayeux hub inside an actor system. Create one with Start;
// all its methods are safe for concurrent use.
type Hub struct {
	opts   Options
	log    zerolog.Logger
	system *actor.ActorSystem
	root   *actor.RootContext

	pid        *actor.PID // the hub actor, named opts.Alias
	supervisor *actor.PID

	sessions sync.Map // client id -> *sessionRef

	chanMu   sync.RWMutex
	channels map[string]*actor.PID // pattern -> channel actor; written by the hub actor only

	draining atomic.Bool
	closed   atomic.Bool

	stats hubStats
	start time.Time
}

type hubStats struct {
	clients    atomic.Int64
	channels   atomic.Int64
	published  atomic.Uint64
	delivered  atomic.Uint64
	handshakes atomic.Uint64
}

// Stats is a snapshot of a hub's counters.
type Stats struct {
	Clients    int           // open sessions, remote and local
	Channels   int           // live channel actors (names and patterns)
	Published  uint64        // messages accepted for publish since start
	Delivered  uint64        // messages handed to subscribers since start
	Handshakes uint64        // successful handshakes since start
	Uptime     time.Duration // time since Start
}

// Start spawns a hub in system: the hub actor (named opts.Alias), its
// supervisor and, later, its channel and session actors. Stop it with
// Shutdown; the actor system stays the caller's.
func Start(system *actor.ActorSystem, opts Options) (*Hub, error) {
	opts = opts.withDefaults()
	h := &Hub{
		opts:     opts,
		log:      opts.Logger.With().Str("component", "hub").Logger(),
		system:   system,
		root:     system.Root,
		channels: make(map[string]*actor.PID),
		start:    time.Now(),
	}
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
	h.log.Info().Str("alias", opts.Alias).Dur("connect_timeout", opts.ConnectTimeout).
		Dur("poll_timeout", opts.PollTimeout).Bool("anon_publish", opts.AnonPublish).Msg("hub started")
	return h, nil
}

// PID returns the hub actor's PID (its name is Options.Alias).
func (h *Hub) PID() *actor.PID { return h.pid }

// System returns the actor system the hub runs in.
func (h *Hub) System() *actor.ActorSystem { return h.system }

// PollTimeout returns the configured /meta/connect hold time.
func (h *Hub) PollTimeout() time.Duration { return h.opts.PollTimeout }

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Clients:    int(h.stats.clients.Load()),
		Channels:   int(h.stats.channels.Load()),
		Published:  h.stats.published.Load(),
		Delivered:  h.stats.delivered.Load(),
		Handshakes: h.stats.handshakes.Load(),
		Uptime:     time.Since(h.start),
	}
}

// Drain answers every held /meta/connect at once and makes new connects
// return without waiting, so that an HTTP server can shut down without
// waiting out long polls. The hub keeps working otherwise.
func (h *Hub) Drain() {
	if h.draining.Swap(true) {
		return
	}
	h.root.Send(h.supervisor, drain{})
}

// Shutdown drains the hub, stops every session, channel and the hub actor,
// and waits for them, or for ctx. Queued publishes already accepted are
// delivered to sessions before they stop only as far as the sessions have
// received them; held connects are answered.
func (h *Hub) Shutdown(ctx context.Context) error {
	if h.closed.Swap(true) {
		return nil
	}
	h.Drain()
	done := make(chan struct{})
	go func() {
		// Poison is queued behind messages already sent, so everything
		// accepted before Shutdown is processed first.
		_ = h.root.PoisonFuture(h.pid).Wait()
		close(done)
	}()
	select {
	case <-done:
		h.log.Info().Msg("hub stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bayeuxhub: shutdown: %w", ctx.Err())
	}
}

// decide is the supervision decider: a failing session or channel actor is
// logged and stopped, never restarted with lost state.
func (h *Hub) decide(kind string) actor.DeciderFunc {
	return func(reason any) actor.Directive {
		h.log.Error().Str("actor", kind).Interface("panic", reason).Msg("actor failed; stopping it")
		return actor.StopDirective
	}
}

// lookupChannel returns the channel actor registered for pattern, or nil.
func (h *Hub) lookupChannel(pattern []byte) *actor.PID {
	h.chanMu.RLock()
	pid := h.channels[string(pattern)]
	h.chanMu.RUnlock()
	return pid
}

// route sends m to every channel actor whose name or pattern matches its
// channel. It is called on the publisher's goroutine, so that one
// publisher's messages reach each channel actor in order.
func (h *Hub) route(sender actor.SenderContext, m *Message) {
	h.stats.published.Add(1)
	protocol.Patterns(m.Channel, func(p []byte) {
		if pid := h.lookupChannel(p); pid != nil {
			sender.Send(pid, m)
		}
	})
	h.emit(Event{Type: EventPublish, ClientID: m.ClientID, Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext})
}

// emit reports an event to the user's callback and, as an Event value, on
// the actor system's event stream. A panicking callback is logged and
// otherwise ignored.
func (h *Hub) emit(e Event) {
	if h.opts.Callback != nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					h.log.Error().Interface("panic", r).Str("event", string(e.Type)).
						Bytes("stack", debug.Stack()).Msg("event callback panicked")
				}
			}()
			h.opts.Callback(e)
		}()
	}
	h.system.EventStream.Publish(e)
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

type startSupervisor struct{ ready chan *actor.PID }

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
		pid := h.channels[msg.pattern]
		h.chanMu.RUnlock()
		if pid == nil {
			pattern := msg.pattern
			pid = ctx.SpawnPrefix(actor.PropsFromProducer(func() actor.Actor {
				return &channelActor{hub: h, pattern: pattern}
			}), "channel")
			h.chanMu.Lock()
			h.channels[pattern] = pid
			h.chanMu.Unlock()
			a.names[pid.Id] = pattern
			h.stats.channels.Add(1)
		}
		a.adds[msg.pattern]++
		ctx.Send(pid, &addSubscriber{session: msg.session})
	case *channelIdle:
		h.chanMu.RLock()
		pid := h.channels[msg.pattern]
		h.chanMu.RUnlock()
		if pid == nil || !pid.Equal(msg.pid) || a.adds[msg.pattern] != msg.adds {
			return // a subscribe is on its way to it
		}
		a.forget(msg.pattern, pid)
		ctx.Stop(pid)
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
	if cur := h.channels[pattern]; cur != nil && cur.Equal(pid) {
		delete(h.channels, pattern)
		h.stats.channels.Add(-1)
	}
	h.chanMu.Unlock()
	delete(a.adds, pattern)
	delete(a.names, pid.Id)
}
