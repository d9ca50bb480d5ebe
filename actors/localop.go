package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// localJob is a subscribe or unsubscribe asked for by Go code (a
// LocalClient call) or another actor (the Subscribe and Unsubscribe actor
// messages). The outcome goes to reply and/or, as a *Result, to replyTo.
type localJob struct {
	jobState
	unsubscribe bool
	pattern     string
	sink        sink
	reply       chan error
	replyTo     *actor.PID

	started bool
	err     error
}

func (l *localJob) next(ctx actor.Context, s *session) bool {
	if l.started {
		return false
	}
	l.started = true
	if l.unsubscribe {
		s.startLocalUnsubscribe(ctx, l)
	} else {
		s.startLocalSubscribe(ctx, l)
	}
	return true
}

func (l *localJob) end(ctx actor.Context, s *session) bool {
	if l.err == nil && l.jobState.err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, l.jobState.err)
	}
	l.done(ctx, s.ref.id)
	return false
}

func (l *localJob) abort(ctx actor.Context, s *session, _ *protocol.Error) {
	l.err = ErrClosed
	l.done(ctx, s.ref.id)
}

// done reports the outcome to whoever waits for it.
func (l *localJob) done(ctx actor.Context, clientID string) {
	if l.reply != nil {
		l.reply <- l.err
	}
	if l.replyTo != nil {
		ctx.Send(l.replyTo, &Result{ClientID: clientID, Channel: l.pattern, Err: l.err})
	}
}

// startLocalSubscribe begins a local subscribe: it waits for the channel
// actor's ack, unless the client is subscribed already (then only where
// the deliveries go changes).
func (s *session) startLocalSubscribe(ctx actor.Context, l *localJob) {
	if err := s.hub.checkName(l.pattern); err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, err)
		return
	}
	if _, err := protocol.ParseChannel(l.pattern); err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, err)
		return
	}
	if sub := s.find(l.pattern, subActive); sub != nil {
		sub.sink = l.sink
		return
	}
	if err := s.checkLimits(l.pattern, 1); err != nil {
		l.err = fmt.Errorf("subscribe %s: %w", l.pattern, err)
		return
	}
	s.addSub(ctx, l.pattern, l.sink)
	l.waiting++
}

// startLocalUnsubscribe begins a local unsubscribe: from now on nothing is
// delivered through the subscription; the job ends with the channel
// actor's ack.
func (s *session) startLocalUnsubscribe(ctx actor.Context, l *localJob) {
	if err := s.hub.checkName(l.pattern); err != nil {
		l.err = fmt.Errorf("unsubscribe %s: %w", l.pattern, err)
		return
	}
	sub := s.find(l.pattern, subActive)
	if sub == nil {
		l.err = fmt.Errorf("unsubscribe %s: %w", l.pattern, ErrNotSubscribed)
		return
	}
	s.leave(ctx, sub)
	l.waiting++
}
