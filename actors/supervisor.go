package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/acl"
)

// sessionRef is what the world outside a session actor knows of it: enough
// to reach it, to wait on it, and to expire it. It holds no session state.
type sessionRef struct {
	id    string
	pid   *actor.PID
	local bool
	ip    string // remote host, counted against Options.MaxSessionsPerIP
	ack   bool   // the client uses the CometD ack extension

	// Who the client is, fixed at handshake (see Identity): read by the
	// channel rules on the session's goroutine and by the hub's session
	// listings on any.
	subject acl.Subject // user id and granted channels
	info    []byte      // Identity.Info
	expires time.Time   // Identity.ExpiresAt; zero: never
	remote  string      // the handshake's remote address
	since   time.Time   // when the session was created

	// addr is the remote host's counts (limits.go), nil for a local
	// client; set before the session is spawned, then fixed. counted says
	// how the host counts the session, under Hub.ipMu.
	addr    *address
	counted countState
	spawned bool // its pid is set; under Hub.ipMu

	// gone ends when the supervisor has seen the session actor stop, for
	// whatever reason; done is its Done channel: anyone waiting on the
	// session gives up then.
	gone context.Context
	done <-chan struct{}
	end  context.CancelFunc

	// idleSince is the UnixNano time since which the client has had no
	// /meta/connect outstanding, or 0 while one is held (or for local
	// clients, which never expire). Written by the session, read by the
	// supervisor's sweep.
	idleSince atomic.Int64
}

func newSessionRef(id string, local bool, ip string) *sessionRef {
	gone, end := context.WithCancel(context.Background())
	r := &sessionRef{id: id, local: local, ip: ip, gone: gone, done: gone.Done(), end: end, since: time.Now()}
	if !local {
		r.idleSince.Store(time.Now().UnixNano())
	}
	return r
}

func (r *sessionRef) close() { r.end() }

// supervisor is the parent of every session actor. It spawns them, expires
// idle ones and cleans up after any that end.
type supervisor struct {
	hub      *Hub
	children map[string]*sessionRef // by session PID id
	ticker   *time.Ticker
	stopTick chan struct{}

	draining  map[string]bool // sessions that have not yet answered drain
	drainDone chan struct{}
}

func newSupervisor(h *Hub) *supervisor {
	return &supervisor{hub: h, children: make(map[string]*sessionRef)}
}

// sweepInterval is how often idle sessions are looked for: a quarter of the
// connect timeout, between 50 ms and 30 s (the Perl module's period).
func sweepInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/4, 50*time.Millisecond), 30*time.Second)
}

func (s *supervisor) Receive(ctx actor.Context) {
	h := s.hub
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.ticker = time.NewTicker(sweepInterval(h.opts.MaxInterval))
		s.stopTick = make(chan struct{})
		self, root, ticks, stop := ctx.Self(), h.root, s.ticker.C, s.stopTick
		go func() {
			for {
				select {
				case <-ticks:
					root.Send(self, sweep{})
				case <-stop:
					return
				}
			}
		}()
	case *actor.Stopping:
		s.ticker.Stop()
		close(s.stopTick)
	case *spawnSession:
		msg.reply <- s.spawn(ctx, msg.ref, msg.client)
	case *forLocal:
		ref := h.lookupSession(msg.clientID)
		if ref == nil && msg.create {
			ref = newSessionRef(msg.clientID, true, "")
			if err := s.spawn(ctx, ref, &Client{ID: msg.clientID, Local: true, Flags: map[string]any{}}); err != nil {
				ref = nil
			}
		}
		if ref == nil {
			if msg.replyTo != nil {
				ctx.Send(msg.replyTo, &Result{ClientID: msg.clientID, Err: fmt.Errorf("%s: %w", msg.clientID, ErrUnknownClient)})
			}
			return
		}
		ctx.Send(ref.pid, msg.op)
	case sweep:
		now := time.Now().UnixNano()
		limit := int64(h.opts.MaxInterval)
		for _, ref := range s.children {
			if idle := ref.idleSince.Load(); idle != 0 && now-idle > limit {
				ctx.Send(ref.pid, expire{})
			}
		}
	case drain:
		s.draining, s.drainDone = make(map[string]bool, len(s.children)), msg.done
		for id, ref := range s.children {
			s.draining[id] = true
			ctx.Send(ref.pid, drain{})
		}
		s.drainedOne("")
	case *drained:
		s.drainedOne(msg.pid.Id)
	case *actor.Terminated:
		ref, ok := s.children[msg.Who.Id]
		if !ok {
			return
		}
		delete(s.children, msg.Who.Id)
		s.drainedOne(msg.Who.Id)
		h.sessions.CompareAndDelete(ref.id, ref)
		h.users.remove(ref)
		h.stats.clients.Add(-1)
		if !ref.local {
			h.release(ref)
		}
		ref.close()
		h.emit(Event{Type: EventClientDisconnect, ClientID: ref.id})
	}
}

// drainedOne notes that a session has answered drain (or ended) and closes
// the drain's done channel after the last one.
func (s *supervisor) drainedOne(id string) {
	if s.drainDone == nil {
		return
	}
	delete(s.draining, id)
	if len(s.draining) == 0 {
		close(s.drainDone)
		s.drainDone = nil
	}
}

// spawn starts a session actor and registers it.
func (s *supervisor) spawn(ctx actor.Context, ref *sessionRef, c *Client) error {
	h := s.hub
	var in *inbox
	var opts []actor.PropsOption
	if !c.Local {
		in = &inbox{}
		opts = append(opts, actor.WithMailbox(actor.Unbounded(in)))
	}
	props := actor.PropsFromProducer(func() actor.Actor { return newSession(h, ref, c, in) }, opts...)
	pid, err := ctx.SpawnNamed(props, ref.id)
	if err != nil {
		return fmt.Errorf("spawn session %s: %w", ref.id, err)
	}
	ref.pid = pid
	s.children[pid.Id] = ref
	h.sessions.Store(ref.id, ref)
	h.users.add(ref)
	h.stats.clients.Add(1)
	h.emit(Event{Type: EventClientConnect, ClientID: ref.id, IP: ref.ip, Local: ref.local})
	return nil
}
