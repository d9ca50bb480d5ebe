package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/time/rate"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// batchJob is the messages of one request for one remote client (a
// remoteBatch), handled in order. Its replies collect in out; a
// /meta/connect among them is answered, or held, when the batch ends, so
// that the batch's other replies travel with it.
type batchJob struct {
	jobState
	b            *remoteBatch
	idx          int // next message of b
	out          [][]byte
	connect      *protocol.Reply // the connect reply, when b has a connect
	connTimeout  time.Duration
	disconnected bool
	asking       *protocol.Message // the message whose hook answers are awaited
}

func (j *batchJob) next(ctx actor.Context, s *session) bool {
	if j.idx >= len(j.b.msgs) {
		return false
	}
	m := j.b.msgs[j.idx]
	j.idx++
	s.handle(ctx, j, m)
	return true
}

func (j *batchJob) end(ctx actor.Context, s *session) bool {
	s.finish(ctx, j)
	return j.disconnected
}

// abort answers every message of the batch not answered yet with gone.
func (j *batchJob) abort(_ actor.Context, s *session, gone *protocol.Error) {
	if j.asking != nil { // its hook answers will not be read
		s.fail(j, j.asking, gone)
	}
	for ; j.idx < len(j.b.msgs); j.idx++ {
		s.fail(j, j.b.msgs[j.idx], gone)
	}
	if j.connect != nil {
		j.connect.Fail(gone)
	}
	s.rem.send(j, nil, false)
}

// connectMsg validates a /meta/connect; it is answered or held when the
// batch ends, so that the batch's other replies travel with it.
func (s *session) connectMsg(j *batchJob, m *protocol.Message) {
	switch {
	case m.ConnectionType == "":
		s.fail(j, m, protocol.ErrBadRequest("Missing connectionType"))
		return
	case !s.hub.servesType(m.ConnectionType):
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: []string{m.ConnectionType}, Message: "Unsupported connection type"}
		s.fail(j, m, e)
		return
	}
	if s.ref.ack {
		s.rem.acknowledge(ackOf(m.Ext))
	}
	if j.connect != nil { // two connects in one batch: the first is answered now
		j.connect.Successful = true
		j.out = append(j.out, j.connect.AppendJSON(nil))
	}
	r := protocol.ReplyTo(m)
	r.ClientID = s.ref.id
	r.Advice = s.hub.connectAdvice()
	j.connect = r
	j.connTimeout = s.hub.opts.PollTimeout
	if m.Advice != nil && m.Advice.Timeout != nil {
		j.connTimeout = min(j.connTimeout, time.Duration(max(*m.Advice.Timeout, 0))*time.Millisecond)
	}
}

// finish answers a remote batch, or holds its connect.
func (s *session) finish(ctx actor.Context, j *batchJob) {
	o := s.rem
	switch {
	case j.connect == nil || j.b.abandoned:
		o.send(j, nil, false)
	case j.disconnected:
		j.connect.Fail(protocol.ErrUnknownClient(s.ref.id))
		j.out = append(j.out, j.connect.AppendJSON(nil))
		j.connect = nil
		o.send(j, nil, false)
	case !o.connected && !s.hub.markConnected(s.ref):
		// Its address has MaxSessionsPerIP connected sessions already (or
		// the session was evicted while it had not connected).
		s.stopErr = errTooManySessions(s.ref.ip)
		s.stopAdvice = s.stopErr.Advice
		j.connect.Fail(s.stopErr)
		o.send(j, nil, false)
		j.disconnected = true
	default:
		o.hold(ctx, j)
	}
}

func (s *session) reply(j *batchJob, r *protocol.Reply) {
	j.out = append(j.out, r.AppendJSON(make([]byte, 0, 128)))
}

func (s *session) fail(j *batchJob, m *protocol.Message, err *protocol.Error) {
	r := protocol.ReplyTo(m).Fail(err)
	if m.ClientID != "" {
		r.ClientID = s.ref.id
	}
	if len(m.Subscription.Raw) > 0 {
		r.Subscription = m.Subscription.Raw
	}
	s.reply(j, r)
}

// handle processes one message of a remote batch. Its channel names are
// held to MaxChannelLength and MaxChannelDepth first; subscribes and
// publishes then go through the channel rules, then MessageACL (which
// sees every other message first), then their validation and, last, the
// application's hooks.
func (s *session) handle(ctx actor.Context, j *batchJob, m *protocol.Message) {
	if m.Invalid != nil {
		s.fail(j, m, m.Invalid)
		return
	}
	if j.disconnected {
		s.fail(j, m, protocol.ErrUnknownClient(s.ref.id))
		return
	}
	if err := s.hub.checkNames(m); err != nil { // before anything reads the names
		s.fail(j, m, err)
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
func (s *session) askHook(ctx actor.Context, j *batchJob, m *protocol.Message, hook Hook, base HookRequest, channels []string, rule string, then func()) {
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
	if s.cur != job(w.job) {
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

// checkSubscribable validates a name a client asks to subscribe to.
func (s *session) checkSubscribable(name string) *protocol.Error {
	kind, err := protocol.ParseChannel(name)
	if err != nil {
		return protocol.AsError(err)
	}
	if kind == protocol.KindMeta || (kind == protocol.KindWildcard && protocol.IsMeta(name)) {
		return protocol.ErrDenied(name, "Subscription to /meta channels denied")
	}
	return nil
}

func (s *session) subscribeMsg(ctx actor.Context, j *batchJob, m *protocol.Message) {
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
	want, perr := replayWanted(m, adds)
	if perr != nil {
		s.fail(j, m, perr)
		return
	}
	subscribe := func() {
		var asks []*replayAsk
		for _, name := range adds {
			s.addSub(ctx, name, sink{})
			j.waiting++
			if after, ok := want[name]; ok {
				sub := s.subs[len(s.subs)-1]
				sub.replaying = true // its live messages wait for the replay
				asks = append(asks, &replayAsk{sub: sub, after: after})
			}
		}
		r := protocol.ReplyTo(m)
		r.ClientID, r.Successful, r.Subscription = s.ref.id, true, m.Subscription.Raw
		j.after = func() {
			if j.err != nil {
				s.fail(j, m, j.err)
				j.err = nil
				return
			}
			if len(asks) == 0 {
				s.reply(j, r)
				return
			}
			// Subscribed live: now what the history has from before.
			s.fetchReplays(ctx, j, asks, func() { s.finishReplays(ctx, j, m, r, asks) })
		}
	}
	if hook := s.hub.opts.SubscribeHook; hook != nil && len(adds) > 0 {
		s.askHook(ctx, j, m, hook, HookRequest{Event: HookSubscribe}, adds, "", subscribe)
		return
	}
	subscribe()
}

// finishReplays answers a subscribe whose replays were fetched: with the
// first replay that cannot be served without a gap, the subscribe fails
// and its subscriptions end; otherwise the reply goes first (pushed at
// once to a pushing transport, so that it comes before the replayed
// messages) and every replay is delivered.
func (s *session) finishReplays(ctx actor.Context, j *batchJob, m *protocol.Message, r *protocol.Reply, asks []*replayAsk) {
	var refused *protocol.Error
	for _, a := range asks {
		if refused = checkReplay(a.sub.pattern, a.after, a.res, a.err); refused != nil {
			break
		}
		if size, max := replaySize(a.res, a.after), s.hub.opts.MaxSessionBytes; max > 0 && size > max {
			refused = &protocol.Error{Code: protocol.CodeBadRequest, Args: []string{a.sub.pattern}, Message: fmt.Sprintf(
				"Replay of %d bytes is more than this client may be sent at once (%d): subscribe with a later replay id, or -1", size, max)}
			break
		}
	}
	if refused != nil {
		for _, a := range asks {
			a.sub.replaying, a.sub.held = false, nil
		}
		for _, name := range m.Subscription.Names {
			if sub := s.find(name, subActive); sub != nil && slices.ContainsFunc(asks, func(a *replayAsk) bool { return a.sub == sub }) {
				s.leave(ctx, sub)
				j.waiting++
			}
		}
		j.after = func() { s.fail(j, m, refused) }
		return
	}
	s.reply(j, r)
	if p := s.rem.pusher; p != nil && len(j.out) > 0 && p(j.out) {
		j.out = nil
	}
	for _, a := range asks {
		s.replayed(ctx, a)
	}
}

// replaySize is the bytes a replay from after would send.
func replaySize(r Replay, after int64) int {
	n := 0
	for _, m := range r.Messages {
		if m.ReplayID > after {
			n += len(m.wireJSON())
		}
	}
	return n
}

func (s *session) unsubscribeMsg(ctx actor.Context, j *batchJob, m *protocol.Message) {
	names := m.Subscription.Names
	if len(names) == 0 {
		s.fail(j, m, protocol.ErrBadRequest("Missing subscription"))
		return
	}
	for _, name := range names {
		if _, err := protocol.ParseChannel(name); err != nil {
			s.fail(j, m, protocol.AsError(err))
			return
		}
		if !protocol.IsService(name) && s.find(name, subActive) == nil {
			s.fail(j, m, &protocol.Error{Code: protocol.CodeUnknownService, Args: []string{name}, Message: "Not subscribed"})
			return
		}
	}
	for _, name := range names {
		if sub := s.find(name, subActive); sub != nil {
			s.leave(ctx, sub)
			j.waiting++
		}
	}
	r := protocol.ReplyTo(m)
	r.ClientID, r.Successful, r.Subscription = s.ref.id, true, m.Subscription.Raw
	j.after = func() { s.reply(j, r) }
}

// publishMsg publishes m for the client, once its rule's rate limit and
// the publish hook allow it; rule is the channel rule that allowed it.
func (s *session) publishMsg(ctx actor.Context, j *batchJob, m *protocol.Message, rule acl.Decision) {
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
		if err := s.hub.publish(ctx, msg); err != nil {
			s.fail(j, m, err)
			return
		}
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
