package actors

import "github.com/asynkron/protoactor-go/actor"

// channelActor holds the subscribers of one channel name or wildcard
// pattern and fans each message routed to it out to them. It watches its
// subscribers, so a session that ends for any reason leaves it without an
// explicit unsubscribe.
type channelActor struct {
	hub     *Hub
	pattern string
	subs    []*actor.PID
	index   map[string]int // subscriber PID id -> position in subs
	adds    uint64         // subscribes received, echoed in channelIdle
}

func (c *channelActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *Message:
		if len(c.subs) == 0 {
			return
		}
		d := &delivery{msg: msg, via: c.pattern}
		for _, s := range c.subs {
			ctx.Send(s, d)
		}
	case *actor.Started:
		c.index = make(map[string]int)
	case *barrier:
		msg.wg.Done()
	case *addSubscriber:
		c.adds++
		if _, ok := c.index[msg.session.Id]; !ok {
			c.index[msg.session.Id] = len(c.subs)
			c.subs = append(c.subs, msg.session)
			ctx.Watch(msg.session)
		}
		ctx.Send(msg.session, &subscribed{pattern: c.pattern, channel: ctx.Self()})
	case *removeSubscriber:
		if c.remove(msg.session) {
			ctx.Unwatch(msg.session)
		}
		ctx.Send(msg.session, &unsubscribed{pattern: c.pattern})
		c.idleCheck(ctx)
	case *actor.Terminated:
		if c.remove(msg.Who) {
			c.idleCheck(ctx)
		}
	}
}

// remove drops a subscriber, keeping subs dense.
func (c *channelActor) remove(pid *actor.PID) bool {
	i, ok := c.index[pid.Id]
	if !ok {
		return false
	}
	last := len(c.subs) - 1
	if i != last {
		c.subs[i] = c.subs[last]
		c.index[c.subs[i].Id] = i
	}
	c.subs[last] = nil
	c.subs = c.subs[:last]
	delete(c.index, pid.Id)
	return true
}

func (c *channelActor) idleCheck(ctx actor.Context) {
	if len(c.subs) == 0 {
		ctx.Send(ctx.Parent(), &channelIdle{pattern: c.pattern, pid: ctx.Self(), adds: c.adds})
	}
}
