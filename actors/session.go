package actors

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds the session actor: one per client, remote or local. It
// owns the client's subscriptions and runs its jobs in order (job.go: the
// batches of a remote client's requests, batch.go; a local client's
// subscribes and unsubscribes, localop.go), and hands what the client
// receives to its outbox (outbox.go, outbox_remote.go).

// sink is where a local subscription's deliveries go: a Go callback or an
// actor.
type sink struct {
	fn  func(*Message)
	pid *actor.PID
}

type subState uint8

const (
	subPending subState = iota // asked for; the channel actor has not acked
	subActive                  // the channel actor delivers to us
	subLeaving                 // unsubscribe sent; deliveries may still arrive
)

// subscription is one channel name or pattern a session is subscribed to,
// kept in the order they were made.
type subscription struct {
	pattern  string
	wildcard bool // pattern ends in /* or /**
	channel  *actor.PID
	state    subState
	sink     sink
	// off is set once nothing may be delivered through the subscription
	// any more (it is leaving, or the session ends); a local client's
	// callback goroutine reads it.
	off atomic.Bool

	// A subscription that replays history (replay.go) holds its live
	// messages until the replay is delivered; upTo is the newest replay id
	// delivered, so that a live message the replay had is not delivered
	// again.
	replaying bool
	held      []*Message
	upTo      int64
}

// session is the actor of one client, remote or local.
type session struct {
	hub    *Hub
	ref    *sessionRef
	client *Client
	log    *zerolog.Logger // see logger

	subs      []*subscription
	exact     map[string]*subscription // the live subscription of each channel name
	wildcards int                      // wildcard subscriptions in subs

	out outbox        // where deliveries go
	rem *remoteOutbox // out, for a remote client; nil for a local one

	cur     job
	backlog []job

	overflowed bool // Options.MaxQueue was reached (logged once)
	dropped    int  // messages dropped by QueueDropOldest

	stopAdvice *protocol.Advice // advice for the held connect when stopping
	stopErr    *protocol.Error  // the error waiting requests get when stopping; default 402 unknown client

	limiters    map[int]*rate.Limiter // publish rate limits, by channel rule
	expiryTimer *time.Timer           // ends the session when its token expires
}

func newSession(h *Hub, ref *sessionRef, c *Client, in *inbox) *session {
	s := &session{hub: h, ref: ref, client: c}
	if c.Local {
		s.out = &localOutbox{s: s}
	} else {
		s.rem = &remoteOutbox{s: s, inbox: in}
		s.out = s.rem
	}
	return s
}

// logger returns the session's logger, made on first use: most sessions
// never log, and a logger with context costs memory per session.
func (s *session) logger() *zerolog.Logger {
	if s.log == nil {
		l := s.hub.opts.Logger.With().Str("client", s.ref.id).Logger()
		s.log = &l
	}
	return s.log
}

// Receive handles the session's messages. Deliveries stay in this one
// switch: each activation of the mailbox runs on a new goroutine, whose
// stack grows once, here; handled in a small frame of their own, the
// growth came deeper, on the way to the socket, where copying the stack
// costs more (chat over WebSocket: 21 % of the CPU profile against 4.6 %).
func (s *session) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *Message:
		if s.rem != nil {
			s.rem.inbox.waiting.Add(-1)
		}
		s.deliver(ctx, msg)
	case flushNow:
		s.rem.flush()
	case *remoteBatch:
		if s.rem == nil { // submitBatch sends none to a local client
			msg.answer(&batchResult{replies: failAll(msg.msgs, protocol.ErrUnknownClient(s.ref.id))})
			return
		}
		if !s.ref.ack {
			s.rem.pusher = msg.push // a request without Push switches pushing off
		}
		s.backlog = append(s.backlog, &batchJob{b: msg})
		s.run(ctx)
	case *subscribeFailed:
		if sub := s.find(msg.pattern, subPending); sub != nil {
			s.removeSub(sub)
			if s.cur != nil {
				s.cur.state().err = msg.err
			}
			s.ack(ctx)
		}
	case *subscribed:
		if sub := s.find(msg.pattern, subPending); sub != nil {
			sub.state, sub.channel = subActive, msg.channel
			s.hub.emit(Event{Type: EventSubscribe, ClientID: s.ref.id, Channel: msg.pattern})
			s.hub.presenceJoined(s.ref, msg.pattern)
			s.ack(ctx)
		}
	case *unsubscribed:
		if sub := s.find(msg.pattern, subLeaving); sub != nil {
			s.removeSub(sub)
			s.hub.emit(Event{Type: EventUnsubscribe, ClientID: s.ref.id, Channel: msg.pattern})
			s.hub.presenceLeft(s.ref, msg.pattern)
			s.ack(ctx)
		}
	case pollTimeout:
		s.rem.pollTimeout(msg.gen)
	case *localSubscribe:
		s.backlog = append(s.backlog, &localJob{pattern: msg.pattern, sink: msg.sink, reply: msg.reply, replyTo: msg.replyTo})
		s.run(ctx)
	case *localUnsubscribe:
		s.backlog = append(s.backlog, &localJob{unsubscribe: true, pattern: msg.pattern, reply: msg.reply, replyTo: msg.replyTo})
		s.run(ctx)
	case *Push:
		s.push(ctx, msg)
	case abandon:
		s.rem.abandon(msg.b)
	case expire:
		idle := s.ref.idleSince.Load()
		if idle != 0 && s.rem.held == nil && s.cur == nil && time.Since(time.Unix(0, idle)) > s.hub.opts.MaxInterval {
			s.logger().Info().Msg("client timed out: no /meta/connect outstanding")
			s.stopAdvice = protocol.ErrUnknownClient(s.ref.id).Advice
			ctx.Stop(ctx.Self())
		}
	case drain:
		if s.rem != nil {
			s.rem.drain()
		}
		ctx.Send(ctx.Parent(), &drained{pid: ctx.Self()})
	case *kick:
		if msg.noReconnect {
			s.stopErr = protocol.ErrDisconnected(s.ref.id)
			s.stopAdvice = s.stopErr.Advice
		}
		s.logger().Debug().Bool("reconnect", !msg.noReconnect).Msg("disconnected by the server")
		ctx.Stop(ctx.Self())
	case *hookDone:
		s.hookDone(ctx, msg)
	case *replayFetched:
		if s.cur == job(msg.job) {
			s.ack(ctx)
		}
	case tokenExpired:
		s.logger().Info().Msg("token expired: ending the session")
		s.hub.stats.expired.Add(1)
		s.stopErr = protocol.ErrTokenExpired(s.ref.id)
		s.stopAdvice = s.stopErr.Advice
		ctx.Stop(ctx.Self())
	case *actor.Started:
		if !s.ref.expires.IsZero() {
			self, root := ctx.Self(), s.hub.root
			s.expiryTimer = time.AfterFunc(time.Until(s.ref.expires), func() { root.Send(self, tokenExpired{}) })
		}
	case *actor.Stopping:
		if s.expiryTimer != nil {
			s.expiryTimer.Stop()
		}
		s.stopping(ctx)
	}
}

// deliver takes a published message routed to this session and hands it
// to the outbox with the subscription it matches. A message that no
// subscription matches any more (it was routed just before an
// unsubscribe took effect) is dropped.
func (s *session) deliver(ctx actor.Context, m *Message) {
	sub := s.matching(m.Channel)
	switch {
	case sub == nil:
		return
	case sub.replaying:
		sub.held = append(sub.held, m)
		return
	case m.ReplayID != 0 && m.ReplayID <= sub.upTo && m.Channel == sub.pattern:
		return // delivered by the replay already
	}
	s.hub.stats.delivered.Add(1)
	s.out.deliver(ctx, sub, m)
}

// matching returns the subscription a message on channel is delivered
// through: the subscription of that exact name, else the oldest pattern
// that matches; nil when none does. Leaving subscriptions do not match.
func (s *session) matching(channel string) *subscription {
	if sub := s.exact[channel]; sub != nil {
		return sub
	}
	if s.wildcards == 0 {
		return nil
	}
	for _, sub := range s.subs {
		if sub.wildcard && sub.state != subLeaving && protocol.Match(sub.pattern, channel) {
			return sub
		}
	}
	return nil
}

// push delivers a Push to this client only. A Push sent straight to the
// session (Hub.SessionPID) is checked here as Hub.Push checks it, emits
// the same event, and a sender gets a *Result.
func (s *session) push(ctx actor.Context, p *Push) {
	raw, err := s.hub.checkPush(p.Channel, p.Data)
	if err != nil {
		err = fmt.Errorf("push to %s on %s: %w", s.ref.id, p.Channel, err)
	} else {
		m := pushMessage(&Push{ClientID: s.ref.id, Channel: p.Channel, Data: raw})
		s.hub.emit(Event{Type: EventClientPush, ClientID: s.ref.id, Channel: p.Channel, Data: raw})
		s.out.deliver(ctx, s.matching(p.Channel), m)
	}
	if ctx.Sender() != nil {
		ctx.Respond(&Result{ClientID: s.ref.id, Channel: p.Channel, Err: err})
	}
}

func (s *session) find(pattern string, state subState) *subscription {
	for _, sub := range s.subs {
		if sub.pattern == pattern && sub.state == state {
			return sub
		}
	}
	return nil
}

// subscribedTo reports whether pattern is (being) subscribed and not leaving.
func (s *session) subscribedTo(pattern string) bool {
	return s.find(pattern, subActive) != nil || s.find(pattern, subPending) != nil
}

// checkLimits refuses fresh subscriptions past Options.MaxSubscriptions,
// or when the hub is at Options.MaxChannels (the hub checks again when it
// creates a channel).
func (s *session) checkLimits(name string, fresh int) *protocol.Error {
	o := s.hub.opts
	if o.MaxSubscriptions > 0 && len(s.subs)+fresh > o.MaxSubscriptions {
		return protocol.ErrDenied(name, "Too many subscriptions")
	}
	if a := s.ref.addr; a != nil && o.MaxSubscriptionsPerIP > 0 && fresh > 0 && a.subs.Load()+int64(fresh) > int64(o.MaxSubscriptionsPerIP) {
		return s.hub.refuse(actionSubscribe, "", refusedByLimit, s.ref.id,
			protocol.ErrDenied(name, "Too many subscriptions from this address"))
	}
	if o.MaxChannels > 0 && fresh > 0 && int(s.hub.stats.channels.Load())+fresh > o.MaxChannels {
		return s.hub.refuse(actionSubscribe, "", refusedByLimit, s.ref.id, errTooManyChannels(name))
	}
	return nil
}

// addSub records a new subscription and asks the hub for it; the channel
// actor acks with subscribed (or the hub refuses with subscribeFailed).
func (s *session) addSub(ctx actor.Context, pattern string, k sink) {
	sub := &subscription{pattern: pattern, state: subPending, sink: k, wildcard: strings.HasSuffix(pattern, "*")}
	s.subs = append(s.subs, sub)
	if a := s.ref.addr; a != nil {
		a.subs.Add(1)
	}
	if sub.wildcard {
		s.wildcards++
	} else {
		if s.exact == nil {
			s.exact = make(map[string]*subscription)
		}
		s.exact[pattern] = sub
	}
	ctx.Send(s.hub.pid, &subscribeReq{pattern: pattern, session: ctx.Self()})
}

// leave ends a subscription: nothing is delivered through it from now on,
// and its channel actor is asked to drop the session (it acks with
// unsubscribed).
func (s *session) leave(ctx actor.Context, sub *subscription) {
	sub.state = subLeaving
	sub.off.Store(true)
	s.unindexExact(sub)
	ctx.Send(sub.channel, &removeSubscriber{session: ctx.Self()})
}

// removeSub forgets a subscription.
func (s *session) removeSub(sub *subscription) {
	for i, c := range s.subs {
		if c == sub {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			sub.off.Store(true)
			if a := s.ref.addr; a != nil {
				a.subs.Add(-1)
			}
			if sub.wildcard {
				s.wildcards--
			} else {
				s.unindexExact(sub)
			}
			return
		}
	}
}

// unindexExact takes a channel-name subscription out of the exact lookup.
func (s *session) unindexExact(sub *subscription) {
	if !sub.wildcard && s.exact[sub.pattern] == sub {
		delete(s.exact, sub.pattern)
	}
}

// overflow applies the queue policy when the client's outbox is full
// (Options.MaxQueue); drop makes room by dropping the oldest message. It
// reports whether there is now room for one more message.
func (s *session) overflow(ctx actor.Context, drop func() bool) bool {
	h := s.hub
	if !s.overflowed {
		s.overflowed = true
		h.stats.overflows.Add(1)
		s.logger().Warn().Int("max_queue", h.opts.MaxQueue).Int("max_session_bytes", h.opts.MaxSessionBytes).
			Int("max_bytes_per_ip", h.opts.MaxBytesPerIP).Str("policy", string(h.opts.QueuePolicy)).
			Msg("client is not reading: session queue full")
	}
	if h.opts.QueuePolicy == QueueDisconnect {
		s.stopAdvice = protocol.ErrUnknownClient(s.ref.id).Advice
		ctx.Stop(ctx.Self())
		return false
	}
	if drop() {
		s.dropped++
		h.stats.dropped.Add(1)
	}
	return true
}

// stopping answers everything that waits on the session as it ends.
func (s *session) stopping(ctx actor.Context) {
	gone := s.stopErr
	if gone == nil {
		gone = protocol.ErrUnknownClient(s.ref.id)
	}
	for _, sub := range s.subs {
		sub.off.Store(true)
		if sub.state != subPending {
			s.hub.presenceLeft(s.ref, sub.pattern)
		}
	}
	if a := s.ref.addr; a != nil {
		a.subs.Add(-int64(len(s.subs)))
	}
	if s.rem != nil {
		s.rem.stopHeld(s.stopErr, s.stopAdvice)
	}
	jobs := s.backlog
	if s.cur != nil {
		jobs = append([]job{s.cur}, jobs...)
	}
	s.cur, s.backlog = nil, nil
	for _, j := range jobs {
		j.abort(ctx, s, gone)
	}
	s.out.close()
}
