package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"
)

// channelActor holds the subscribers of one channel name or wildcard
// pattern. It is the only writer of the list; after each change it
// publishes a fresh copy in its registry entry, which publishers read to
// route (see Hub.route). It watches its subscribers, so a session that ends
// for any reason leaves it without an explicit unsubscribe. Its acks are
// sent after the new list is published: a subscribe is in effect for every
// publish that starts after the ack.
type channelActor struct {
	hub     *Hub
	pattern string
	entry   *channelEntry
	subs    []*actor.PID
	index   map[string]int // subscriber PID id -> position in subs
	adds    uint64         // subscribes received, echoed in channelIdle
}

func (c *channelActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.index = make(map[string]int)
	case *addSubscriber:
		c.adds++
		if _, ok := c.index[msg.session.Id]; !ok {
			c.index[msg.session.Id] = len(c.subs)
			c.subs = append(c.subs, msg.session)
			c.publish()
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
	case *actor.Stopping:
		c.entry.subs.Store(nil)
	}
}

// publish makes the current subscriber list the one publishers route to.
// The stored slice is never written again.
func (c *channelActor) publish() {
	list := slices.Clone(c.subs)
	c.entry.subs.Store(&list)
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
	c.publish()
	return true
}

func (c *channelActor) idleCheck(ctx actor.Context) {
	if len(c.subs) == 0 {
		ctx.Send(ctx.Parent(), &channelIdle{pattern: c.pattern, pid: ctx.Self(), adds: c.adds})
	}
}
