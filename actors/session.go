package actors

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

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

// subscription is one channel name or pattern a session is subscribed to.
// A session's subscriptions are kept in the order they were made; a local
// client's delivery goes to the sink of the oldest matching one.
type subscription struct {
	pattern  string
	wildcard bool // pattern ends in /* or /**
	channel  *actor.PID
	state    subState
	sink     sink
}

// job is one unit of work a session does in order: a batch of a remote
// request, or a subscribe/unsubscribe of a local client. A job may wait for
// acks from channel actors; the session's other work (deliveries, held
// connects) goes on meanwhile, but the next job waits.
type job struct {
	b   *remoteBatch // remote batch, or nil
	loc *localJob    // local operation, or nil

	started      bool
	idx          int // next message of b
	waiting      int // acks outstanding
	after        func()
	out          [][]byte
	connect      *protocol.Reply // held-connect reply, when b has a connect
	connTimeout  time.Duration
	disconnected bool
	err          *protocol.Error   // a subscribe the hub refused
	asking       *protocol.Message // the message whose hook answers are awaited
}

type localJob struct {
	unsubscribe bool
	pattern     string
	sink        sink
	reply       chan error
	replyTo     *actor.PID
	err         error
}

// done reports a local job's outcome to whoever waits for it.
func (l *localJob) done(ctx actor.Context, clientID string) {
	if l.reply != nil {
		l.reply <- l.err
	}
	if l.replyTo != nil {
		ctx.Send(l.replyTo, &Result{ClientID: clientID, Channel: l.pattern, Err: l.err})
	}
}

// session is the actor of one client, remote or local.
type session struct {
	hub    *Hub
	ref    *sessionRef
	client *Client
	log    *zerolog.Logger // see logger

	subs      []*subscription
	exact     map[string]int // non-wildcard subscriptions by name (counted)
	wildcards int            // wildcard subscriptions in subs
	queue     [][]byte       // encoded messages waiting for a connect

	held        *job // the job whose /meta/connect is held
	heldGen     uint64
	heldTimer   *time.Timer
	heldBrowser string // BAYEUX_BROWSER id whose one long poll this is

	// The CometD ack extension (ref.ack): messages sent in connect replies
	// stay in unacked until the client acknowledges their batch.
	unacked []sentMsg
	batch   int64

	// push, when set, takes deliveries as they come (WebSocket).
	pusher func([][]byte) bool

	overflowed bool // Options.MaxQueue was reached (logged once)
	dropped    int  // messages dropped by QueueDropOldest

	cur     *job
	backlog []*job

	connected      bool // a first connect has been answered
	flushScheduled bool
	draining       bool
	stopAdvice     *protocol.Advice // advice for the held connect when stopping
	stopErr        *protocol.Error  // the error waiting requests get when stopping; default 402 unknown client

	limiters    map[int]*rate.Limiter // publish rate limits, by channel rule
	expiryTimer *time.Timer           // ends the session when its token expires
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

func newSession(h *Hub, ref *sessionRef, c *Client) *session {
	return &session{
		hub: h, ref: ref, client: c,
	}
}

func (s *session) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *Message:
		s.deliver(ctx, msg)
	case flushNow:
		s.flushScheduled = false
		s.flush()
	case *remoteBatch:
		if !s.ref.ack {
			s.pusher = msg.push // a request without Push switches pushing off
		}
		s.backlog = append(s.backlog, &job{b: msg})
		s.run(ctx)
	case *subscribeFailed:
		if sub := s.find(msg.pattern, subPending); sub != nil {
			s.removeSub(sub)
			if s.cur != nil && s.cur.loc != nil {
				s.cur.loc.err = fmt.Errorf("subscribe %s: %w", msg.pattern, msg.err)
			} else if s.cur != nil {
				s.cur.err = msg.err
			}
			s.ack(ctx)
		}
	case *subscribed:
		if sub := s.find(msg.pattern, subPending); sub != nil {
			sub.state, sub.channel = subActive, msg.channel
			s.hub.emit(Event{Type: EventSubscribe, ClientID: s.ref.id, Channel: msg.pattern})
			s.ack(ctx)
		}
	case *unsubscribed:
		if sub := s.find(msg.pattern, subLeaving); sub != nil {
			s.removeSub(sub)
			s.hub.emit(Event{Type: EventUnsubscribe, ClientID: s.ref.id, Channel: msg.pattern})
			s.ack(ctx)
		}
	case pollTimeout:
		if s.held != nil && msg.gen == s.heldGen {
			s.pushQueue() // a pushing transport takes the queue first, in order
			s.answerHeld(true)
		}
	case *localSubscribe:
		s.backlog = append(s.backlog, &job{loc: &localJob{pattern: msg.pattern, sink: msg.sink, reply: msg.reply, replyTo: msg.replyTo}})
		s.run(ctx)
	case *localUnsubscribe:
		s.backlog = append(s.backlog, &job{loc: &localJob{unsubscribe: true, pattern: msg.pattern, reply: msg.reply, replyTo: msg.replyTo}})
		s.run(ctx)
	case *Push:
		s.push(ctx, msg)
	case abandon:
		s.abandon(msg.b)
	case expire:
		idle := s.ref.idleSince.Load()
		if s.held == nil && s.cur == nil && idle != 0 && time.Since(time.Unix(0, idle)) > s.hub.opts.ConnectTimeout {
			s.logger().Info().Msg("client timed out: no /meta/connect outstanding")
			s.stopAdvice = protocol.ErrUnknownClient(s.ref.id).Advice
			ctx.Stop(ctx.Self())
		}
	case drain:
		s.draining = true
		if s.held != nil {
			s.pushQueue()
			s.answerHeld(true)
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

// run starts or continues jobs in order until one waits for acks.
func (s *session) run(ctx actor.Context) {
	for {
		j := s.cur
		if j == nil {
			if len(s.backlog) == 0 {
				return
			}
			j = s.backlog[0]
			s.backlog[0] = nil
			s.backlog = s.backlog[1:]
			s.cur = j
		}
		if j.waiting > 0 {
			return
		}
		if f := j.after; f != nil {
			j.after = nil
			f()
			continue
		}
		if j.loc != nil {
			if !j.started {
				j.started = true
				s.startLocal(ctx, j)
				continue
			}
			j.loc.done(ctx, s.ref.id)
			s.cur = nil
			continue
		}
		if j.idx < len(j.b.msgs) {
			m := j.b.msgs[j.idx]
			j.idx++
			s.handle(ctx, j, m)
			continue
		}
		s.cur = nil
		s.finish(ctx, j)
		if j.disconnected {
			ctx.Stop(ctx.Self())
			return
		}
	}
}

// ack counts one channel ack for the current job and resumes it.
func (s *session) ack(ctx actor.Context) {
	if s.cur != nil && s.cur.waiting > 0 {
		s.cur.waiting--
		s.run(ctx)
	}
}

func (s *session) reply(j *job, r *protocol.Reply) {
	j.out = append(j.out, r.AppendJSON(make([]byte, 0, 128)))
}

func (s *session) fail(j *job, m *protocol.Message, err *protocol.Error) {
	r := protocol.ReplyTo(m).Fail(err)
	if m.ClientID != "" {
		r.ClientID = s.ref.id
	}
	if len(m.Subscription.Raw) > 0 {
		r.Subscription = m.Subscription.Raw
	}
	s.reply(j, r)
}

// handle processes one message of a remote batch. Subscribes and
// publishes go through the channel rules first, then MessageACL (which
// sees every other message first), then their validation and, last, the
// application's hooks.
func (s *session) handle(ctx actor.Context, j *job, m *protocol.Message) {
	if m.Invalid != nil {
		s.fail(j, m, m.Invalid)
		return
	}
	if j.disconnected {
		s.fail(j, m, protocol.ErrUnknownClient(s.ref.id))
		return
	}
	var rule acl.Decision
	switch m.Channel {
	case protocol.MetaSubscribe:
		if err := s.checkSubscribeRules(m.Subscription.Names); err != nil {
			s.fail(j, m, err)
			return
		}
	case protocol.MetaConnect, protocol.MetaUnsubscribe, protocol.MetaDisconnect, protocol.MetaHandshake:
	default:
		if _, err := protocol.ParseChannel(m.Channel); err == nil && !protocol.IsMeta(m.Channel) {
			d, perr := s.hub.checkRule(s.ref.subject, acl.Publish, m.Channel, s.ref.id)
			if perr != nil {
				s.fail(j, m, perr)
				return
			}
			rule = d
		}
	}
	if err := s.hub.authorize(s.client, m); err != nil {
		s.fail(j, m, s.hub.refuse(actionOf(m.Channel), rule.RuleName, refusedByACL, s.ref.id, err))
		return
	}
	switch m.Channel {
	case protocol.MetaConnect:
		s.connectMsg(j, m)
	case protocol.MetaSubscribe:
		s.subscribeMsg(ctx, j, m)
	case protocol.MetaUnsubscribe:
		s.unsubscribeMsg(ctx, j, m)
	case protocol.MetaDisconnect:
		r := protocol.ReplyTo(m)
		r.ClientID, r.Successful = s.ref.id, true
		s.reply(j, r)
		j.disconnected = true
		s.stopAdvice = &protocol.Advice{Reconnect: protocol.ReconnectNone}
		s.logger().Debug().Msg("client disconnected")
	case protocol.MetaHandshake:
		s.fail(j, m, protocol.ErrBadRequest("Handshake must not carry a clientId"))
	default:
		s.publishMsg(ctx, j, m, rule)
	}
}

// actionOf names the action of a message on channel, for refusal counts.
func actionOf(channel string) string {
	switch channel {
	case protocol.MetaSubscribe:
		return actionSubscribe
	case protocol.MetaHandshake:
		return actionHandshake
	}
	if protocol.IsMeta(channel) {
		return channel[len("/meta/"):]
	}
	return actionPublish
}

// checkSubscribeRules applies the channel rules to the names of a
// subscribe; names that are not valid channels are left to the
// subscribe's own validation, service channels are never recorded.
func (s *session) checkSubscribeRules(names []string) *protocol.Error {
	for _, name := range names {
		kind, err := protocol.ParseChannel(name)
		if err != nil || kind == protocol.KindMeta || kind == protocol.KindService || protocol.IsMeta(name) {
			continue
		}
		if _, perr := s.hub.checkRule(s.ref.subject, acl.Subscribe, name, s.ref.id); perr != nil {
			return perr
		}
	}
	return nil
}

// askHook asks hook about message m of job j, once per channel, on
// goroutines of their own; the job waits (the session goes on delivering)
// and continues with then when all allow, or fails m with the first
// refusal.
func (s *session) askHook(ctx actor.Context, j *job, m *protocol.Message, hook Hook, base HookRequest, channels []string, rule string, then func()) {
	w := &hookWait{job: j, msg: m, left: len(channels), then: then}
	j.waiting += len(channels)
	j.asking = m
	base.ClientID, base.UserID, base.Info = s.ref.id, s.ref.subject.UserID, s.ref.info
	base.Ext, base.RemoteAddr, base.Header = m.Ext, s.ref.remote, j.b.header
	h, self := s.hub, ctx.Self()
	action := actionPublish
	if base.Event == HookSubscribe {
		action = actionSubscribe
	}
	for _, ch := range channels {
		req := base
		req.Channel = ch
		go func() {
			_, err := h.callHook(hook, &req)
			var perr *protocol.Error
			if err != nil {
				perr = h.hookError(action, rule, req.ClientID, ch, err)
			}
			h.root.Send(self, &hookDone{wait: w, err: perr})
		}()
	}
}

// hookDone takes one hook answer for the current job.
func (s *session) hookDone(ctx actor.Context, d *hookDone) {
	w := d.wait
	if s.cur != w.job {
		return // the job ended (the session is stopping)
	}
	if w.err == nil {
		w.err = d.err
	}
	if w.left--; w.left == 0 {
		w.job.asking = nil
		if w.err != nil {
			m := w.msg
			w.job.after = func() { s.fail(w.job, m, w.err) }
		} else {
			w.job.after = w.then
		}
	}
	s.ack(ctx)
}

// deliver takes a published message routed to this session. It goes to
// the client, or, for a local client, to the sink of the oldest
// subscription that matches its channel. A message that no subscription
// matches any more (it was routed just before an unsubscribe took effect)
// is dropped.
func (s *session) deliver(ctx actor.Context, m *Message) {
	if !s.client.Local {
		// Any matching subscription will do: an exact name first, in O(1).
		if s.exact[m.Channel] == 0 && !s.matchesWildcard(m.Channel) {
			return
		}
		s.hub.stats.delivered.Add(1)
		s.enqueue(ctx, m.wireJSON())
		return
	}
	for _, c := range s.subs {
		if protocol.Match(c.pattern, m.Channel) {
			s.hub.stats.delivered.Add(1)
			s.toSink(ctx, c.sink, m)
			return
		}
	}
}

// matchesWildcard reports whether one of the wildcard subscriptions
// matches channel.
func (s *session) matchesWildcard(channel string) bool {
	if s.wildcards == 0 {
		return false
	}
	for _, c := range s.subs {
		if c.wildcard && protocol.Match(c.pattern, channel) {
			return true
		}
	}
	return false
}

// push delivers a Push to this client only. A Push sent straight to the
// session (Hub.SessionPID) is checked here as Hub.Push checks it, and a
// sender gets a *Result.
func (s *session) push(ctx actor.Context, p *Push) {
	raw, err := checkPush(p.Channel, p.Data)
	if err != nil {
		err = fmt.Errorf("push to %s on %s: %w", s.ref.id, p.Channel, err)
	} else {
		p = &Push{ClientID: s.ref.id, Channel: p.Channel, Data: raw}
		s.hub.emit(Event{Type: EventClientPush, ClientID: s.ref.id, Channel: p.Channel, Data: raw})
		s.pushChecked(ctx, p)
	}
	if ctx.Sender() != nil {
		ctx.Respond(&Result{ClientID: s.ref.id, Channel: p.Channel, Err: err})
	}
}

// pushChecked hands a checked push to the client.
func (s *session) pushChecked(ctx actor.Context, p *Push) {
	if !s.client.Local {
		s.enqueue(ctx, pushWire(p))
		return
	}
	m := &Message{Channel: p.Channel, Data: p.Data.(json.RawMessage)}
	for _, sub := range s.subs {
		if sub.state != subPending && protocol.Match(sub.pattern, p.Channel) {
			s.toSink(ctx, sub.sink, m)
			return
		}
	}
	s.logger().Debug().Str("channel", p.Channel).Msg("client push to a local client with no matching subscription dropped")
}

// toSink hands a message to a local subscription's callback or actor.
func (s *session) toSink(ctx actor.Context, k sink, m *Message) {
	switch {
	case k.pid != nil:
		ctx.Send(k.pid, m)
	case k.fn != nil:
		s.callSink(k.fn, m)
	}
}

func (s *session) callSink(fn func(*Message), m *Message) {
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error().Interface("panic", r).Str("channel", m.Channel).Bytes("stack", debug.Stack()).
				Msg("local subscriber callback panicked")
		}
	}()
	fn(m)
}

func (s *session) find(pattern string, state subState) *subscription {
	for _, sub := range s.subs {
		if sub.pattern == pattern && sub.state == state {
			return sub
		}
	}
	return nil
}

func (s *session) removeSub(sub *subscription) {
	for i, c := range s.subs {
		if c == sub {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			if sub.wildcard {
				s.wildcards--
			} else if s.exact[sub.pattern]--; s.exact[sub.pattern] <= 0 {
				delete(s.exact, sub.pattern)
			}
			return
		}
	}
}

// subscribed reports whether pattern is (being) subscribed and not leaving.
func (s *session) subscribedTo(pattern string) bool {
	return s.find(pattern, subActive) != nil || s.find(pattern, subPending) != nil
}

// checkSubscribable validates a name a client asks to subscribe to.
func (s *session) checkSubscribable(name string) *protocol.Error {
	kind, err := protocol.ParseChannel(name)
	if err != nil {
		return err.(*protocol.Error)
	}
	if kind == protocol.KindMeta || (kind == protocol.KindWildcard && protocol.IsMeta(name)) {
		return protocol.ErrDenied(name, "Subscription to /meta channels denied")
	}
	return nil
}

func (s *session) subscribeMsg(ctx actor.Context, j *job, m *protocol.Message) {
	names := m.Subscription.Names
	if len(names) == 0 {
		s.fail(j, m, protocol.ErrBadRequest("Missing subscription"))
		return
	}
	fresh := 0
	for _, name := range names {
		if err := s.checkSubscribable(name); err != nil {
			s.fail(j, m, err)
			return
		}
		if !protocol.IsService(name) && !s.subscribedTo(name) {
			fresh++
		}
	}
	if err := s.checkLimits(names[0], fresh); err != nil {
		s.fail(j, m, err)
		return
	}
	var adds []string
	for _, name := range names {
		if protocol.IsService(name) || s.subscribedTo(name) || slices.Contains(adds, name) {
			continue // service subscriptions are not recorded (spec)
		}
		adds = append(adds, name)
	}
	subscribe := func() {
		for _, name := range adds {
			s.addSub(ctx, name, sink{})
			j.waiting++
		}
		r := protocol.ReplyTo(m)
		r.ClientID, r.Successful, r.Subscription = s.ref.id, true, m.Subscription.Raw
		j.after = func() {
			if j.err != nil {
				s.fail(j, m, j.err)
				j.err = nil
				return
			}
			s.reply(j, r)
		}
	}
	if hook := s.hub.opts.SubscribeHook; hook != nil && len(adds) > 0 {
		s.askHook(ctx, j, m, hook, HookRequest{Event: HookSubscribe}, adds, "", subscribe)
		return
	}
	subscribe()
}

// checkLimits refuses fresh subscriptions past Options.MaxSubscriptions,
// or when the hub is at Options.MaxChannels (the hub checks again when it
// creates a channel).
func (s *session) checkLimits(name string, fresh int) *protocol.Error {
	o := s.hub.opts
	if o.MaxSubscriptions > 0 && len(s.subs)+fresh > o.MaxSubscriptions {
		return protocol.ErrDenied(name, "Too many subscriptions")
	}
	if o.MaxChannels > 0 && fresh > 0 && int(s.hub.stats.channels.Load())+fresh > o.MaxChannels {
		return errTooManyChannels(name)
	}
	return nil
}

func (s *session) addSub(ctx actor.Context, pattern string, k sink) {
	sub := &subscription{pattern: pattern, state: subPending, sink: k, wildcard: strings.HasSuffix(pattern, "*")}
	s.subs = append(s.subs, sub)
	if sub.wildcard {
		s.wildcards++
	} else {
		if s.exact == nil {
			s.exact = make(map[string]int)
		}
		s.exact[pattern]++
	}
	ctx.Send(s.hub.pid, &subscribeReq{pattern: pattern, session: ctx.Self()})
}

func (s *session) unsubscribeMsg(ctx actor.Context, j *job, m *protocol.Message) {
	names := m.Subscription.Names
	if len(names) == 0 {
		s.fail(j, m, protocol.ErrBadRequest("Missing subscription"))
		return
	}
	for _, name := range names {
		if _, err := protocol.ParseChannel(name); err != nil {
			s.fail(j, m, err.(*protocol.Error))
			return
		}
		if !protocol.IsService(name) && s.find(name, subActive) == nil {
			s.fail(j, m, &protocol.Error{Code: protocol.CodeUnknownService, Args: []string{name}, Message: "Not subscribed"})
			return
		}
	}
	for _, name := range names {
		if sub := s.find(name, subActive); sub != nil {
			sub.state = subLeaving
			ctx.Send(sub.channel, &removeSubscriber{session: ctx.Self()})
			j.waiting++
		}
	}
	r := protocol.ReplyTo(m)
	r.ClientID, r.Successful, r.Subscription = s.ref.id, true, m.Subscription.Raw
	j.after = func() { s.reply(j, r) }
}

// publishMsg publishes m for the client, once its rule's rate limit and
// the publish hook allow it; rule is the channel rule that allowed it.
func (s *session) publishMsg(ctx actor.Context, j *job, m *protocol.Message, rule acl.Decision) {
	msg, err := s.hub.checkPublish(m)
	if err != nil {
		s.fail(j, m, err)
		return
	}
	if s.rateLimited(rule) {
		s.fail(j, m, s.hub.refuse(actionPublish, rule.RuleName, refusedByRate, s.ref.id, protocol.ErrRateLimited(m.Channel)))
		return
	}
	publish := func() {
		if protocol.IsService(m.Channel) {
			s.serviceMsg(ctx, j, m)
			return
		}
		msg.ClientID = s.ref.id
		if !s.hub.allowPublish() {
			s.fail(j, m, errDraining())
			return
		}
		s.hub.route(ctx, msg)
		s.hub.publishGate.RUnlock()
		r := protocol.ReplyTo(m)
		r.Successful = true
		s.reply(j, r)
	}
	if hook := s.hub.opts.PublishHook; hook != nil {
		s.askHook(ctx, j, m, hook, HookRequest{Event: HookPublish, Data: m.Data}, []string{m.Channel}, rule.RuleName, publish)
		return
	}
	publish()
}

// rateLimited reports whether a publish allowed by rule goes over the
// rule's rate limit for this client, taking a token from its bucket when
// it does not.
func (s *session) rateLimited(rule acl.Decision) bool {
	if rule.Rule < 0 || !rule.Allowed {
		return false
	}
	r := s.hub.opts.Rules.Rule(rule.Rule)
	if r.PublishRate <= 0 {
		return false
	}
	l := s.limiters[rule.Rule]
	if l == nil {
		if s.limiters == nil {
			s.limiters = make(map[int]*rate.Limiter)
		}
		l = rate.NewLimiter(rate.Limit(r.PublishRate), r.PublishBurst)
		s.limiters[rule.Rule] = l
	}
	return !l.Allow()
}

// startLocal begins a local client's subscribe or unsubscribe.
func (s *session) startLocal(ctx actor.Context, j *job) {
	l := j.loc
	if l.unsubscribe {
		sub := s.find(l.pattern, subActive)
		if sub == nil {
			l.err = fmt.Errorf("unsubscribe %s: not subscribed", l.pattern)
			return
		}
		sub.state = subLeaving
		ctx.Send(sub.channel, &removeSubscriber{session: ctx.Self()})
		j.waiting++
		return
	}
	if _, err := protocol.ParseChannel(l.pattern); err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, err)
		return
	}
	if sub := s.find(l.pattern, subActive); sub != nil {
		sub.sink = l.sink // re-subscribing changes where deliveries go
		return
	}
	if err := s.checkLimits(l.pattern, 1); err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, err)
		return
	}
	s.addSub(ctx, l.pattern, l.sink)
	j.waiting++
}

// stopping answers everything that waits on the session as it ends.
func (s *session) stopping(ctx actor.Context) {
	gone := s.stopErr
	if gone == nil {
		gone = protocol.ErrUnknownClient(s.ref.id)
	}
	if s.held != nil {
		j := s.unhold()
		if s.stopErr == nil && s.stopAdvice != nil && s.stopAdvice.Reconnect == protocol.ReconnectNone {
			j.connect.Successful = true
			j.connect.Advice = s.stopAdvice
		} else {
			j.connect.Fail(gone)
		}
		s.send(j, s.takeQueue(), true)
	}
	jobs := s.backlog
	if s.cur != nil {
		jobs = append([]*job{s.cur}, jobs...)
	}
	s.cur, s.backlog = nil, nil
	for _, j := range jobs {
		if j.loc != nil {
			j.loc.err = ErrClosed
			j.loc.done(ctx, s.ref.id)
			continue
		}
		if j.asking != nil { // its hook answers will not be read
			s.fail(j, j.asking, gone)
		}
		for ; j.idx < len(j.b.msgs); j.idx++ {
			s.fail(j, j.b.msgs[j.idx], gone)
		}
		if j.connect != nil {
			j.connect.Fail(gone)
		}
		s.send(j, nil, false)
	}
	if n := len(s.queue) + len(s.unacked); n > 0 && !s.client.Local {
		s.logger().Info().Int("undelivered", n).Msg("session ended with undelivered messages")
	}
	s.hub.stats.queued.Add(-int64(len(s.queue)))
	s.queue = nil
}
