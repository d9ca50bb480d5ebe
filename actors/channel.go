package actors

import (
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// subList is a channel's subscriber list as publishers see it: slots[:n],
// where a nil slot is a subscriber that has left. The channel actor only
// ever appends past n or clears a slot (atomically), and replaces the whole
// array to grow or compact it, so publishers read it without locks while
// it changes, and adding or removing a subscriber costs O(1) amortised,
// even on channels of many thousands of subscribers.
type subList struct {
	slots []atomic.Pointer[actor.PID]
	n     int
}

// channelActor holds the subscribers of one channel name or wildcard
// pattern. It is the only writer of its subList and publishes a new header
// in its registry entry (see Hub.route) after the changes that arrived
// together: it flushes behind the messages already in its mailbox, and only
// then sends their acks, so a subscribe is in effect for every publish that
// starts after its ack. It watches its subscribers, so a session that ends
// for any reason leaves it without an explicit unsubscribe.
type channelActor struct {
	hub     *Hub
	pattern string
	entry   *channelEntry
	slots   []atomic.Pointer[actor.PID]
	n       int            // slots in use, removed ones included
	live    int            // subscribers
	index   map[string]int // subscriber PID id -> slot
	adds    uint64         // subscribes received, echoed in channelIdle

	dirty     bool  // changed since the last publish
	scheduled bool  // a channelFlush is in the mailbox
	acks      []ack // to send once the change is published
}

// ack is a subscribe or unsubscribe acknowledgement waiting for a flush.
type ack struct {
	to  *actor.PID
	msg any
}

func (c *channelActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.index = make(map[string]int)
	case *addSubscriber:
		c.adds++
		if _, ok := c.index[msg.session.Id]; !ok {
			c.add(msg.session)
			ctx.Watch(msg.session)
		}
		c.later(ctx, ack{msg.session, &subscribed{pattern: c.pattern, channel: ctx.Self()}})
	case *removeSubscriber:
		if c.remove(msg.session) {
			ctx.Unwatch(msg.session)
		}
		c.later(ctx, ack{msg.session, &unsubscribed{pattern: c.pattern}})
	case *actor.Terminated:
		if c.remove(msg.Who) {
			c.later(ctx, ack{})
		}
	case channelFlush:
		c.scheduled = false
		if c.dirty {
			c.dirty = false
			c.entry.subs.Store(&subList{slots: c.slots, n: c.n})
		}
		for i, a := range c.acks {
			if a.to != nil {
				ctx.Send(a.to, a.msg)
			}
			c.acks[i] = ack{}
		}
		c.acks = c.acks[:0]
		if c.live == 0 {
			ctx.Send(ctx.Parent(), &channelIdle{pattern: c.pattern, pid: ctx.Self(), adds: c.adds})
		}
	case *actor.Stopping:
		c.entry.subs.Store(nil)
	}
}

// later queues an ack (or, with a zero ack, just a publish) for the next
// flush, scheduling one behind the messages already in the mailbox.
func (c *channelActor) later(ctx actor.Context, a ack) {
	c.acks = append(c.acks, a)
	if !c.scheduled {
		c.scheduled = true
		ctx.Send(ctx.Self(), channelFlush{})
	}
}

func (c *channelActor) add(pid *actor.PID) {
	if c.n == len(c.slots) {
		c.rebuild(max(2*c.live, 8))
	}
	c.slots[c.n].Store(pid)
	c.index[pid.Id] = c.n
	c.n++
	c.live++
	c.entry.live.Store(int64(c.live))
	c.dirty = true
}

func (c *channelActor) remove(pid *actor.PID) bool {
	i, ok := c.index[pid.Id]
	if !ok {
		return false
	}
	c.slots[i].Store(nil)
	delete(c.index, pid.Id)
	c.live--
	c.entry.live.Store(int64(c.live))
	c.dirty = true
	if c.n > 64 && c.live < c.n/4 {
		c.rebuild(2 * c.live)
	}
	return true
}

// rebuild moves the live subscribers to a new array of the given capacity.
// The old array is left as it is for the publishers still reading it.
func (c *channelActor) rebuild(capacity int) {
	slots := make([]atomic.Pointer[actor.PID], max(capacity, 8))
	n := 0
	for i := 0; i < c.n; i++ {
		if pid := c.slots[i].Load(); pid != nil {
			slots[n].Store(pid)
			c.index[pid.Id] = n
			n++
		}
	}
	c.slots, c.n = slots, n
	c.dirty = true
}
