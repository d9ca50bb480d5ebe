package actors

import (
	"encoding/json"
	"runtime/debug"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// outbox is where a session's deliveries go. A remote client's is its
// queue, held /meta/connect and pushing socket (remoteOutbox,
// outbox_remote.go); a local client's is its callbacks and actors
// (localOutbox, below). The session decides what to deliver; its outbox
// decides how.
type outbox interface {
	// deliver takes a message for the client: a publish routed to the
	// session through sub, or a Push (then sub is the subscription its
	// channel matches, or nil when none does).
	deliver(ctx actor.Context, sub *subscription, m *Message)
	// close is called as the session ends; nothing is delivered after.
	close()
}

// localOutbox delivers to a local client's subscriptions: a message for
// a subscription made with a PID is sent to that actor; one made with a
// callback is handed to the client's callback goroutine (callQueue), so
// that user code never runs on the session's goroutine and may call any
// hub method, this client's own Subscribe and Unsubscribe included.
type localOutbox struct {
	s     *session
	calls *callQueue // started with the first callback delivery
}

func (o *localOutbox) deliver(ctx actor.Context, sub *subscription, m *Message) {
	switch {
	case sub == nil:
		o.s.logger().Debug().Str("channel", m.Channel).Msg("client push to a local client with no matching subscription dropped")
	case sub.sink.pid != nil:
		ctx.Send(sub.sink.pid, m)
	case sub.sink.fn != nil:
		if o.calls == nil {
			o.calls = startCallQueue(o.s)
		}
		k := callback{fn: sub.sink.fn, sub: sub, m: m}
		if !o.calls.add(k) && o.s.overflow(ctx, o.calls.dropOldest) {
			o.calls.add(k)
		}
	}
}

func (o *localOutbox) close() {
	if o.calls != nil {
		o.calls.close()
	}
}

// callback is one callback delivery waiting to run.
type callback struct {
	fn  func(*Message)
	sub *subscription
	m   *Message
}

// callQueue runs a local client's callbacks on one goroutine, one at a
// time, in delivery order. It holds at most Options.MaxQueue calls (the
// session's queue policy applies past that). A call whose subscription
// has ended (Unsubscribe has returned) is skipped, so no callback starts
// after Unsubscribe returns.
type callQueue struct {
	log    zerolog.Logger
	max    int
	mu     sync.Mutex
	q      []callback
	closed bool
	wake   chan struct{}
}

func startCallQueue(s *session) *callQueue {
	c := &callQueue{log: *s.logger(), max: s.hub.opts.MaxQueue, wake: make(chan struct{}, 1)}
	go c.run()
	return c
}

// add queues a call; it reports false when the queue is full.
func (c *callQueue) add(k callback) bool {
	c.mu.Lock()
	if c.max > 0 && len(c.q) >= c.max {
		c.mu.Unlock()
		return false
	}
	c.q = append(c.q, k)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// dropOldest drops the oldest waiting call to make room; it reports
// whether there was one.
func (c *callQueue) dropOldest() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.q) == 0 {
		return false
	}
	c.q[0] = callback{}
	c.q = c.q[1:]
	return true
}

// close drops the waiting calls and ends the goroutine once the running
// callback, if any, returns.
func (c *callQueue) close() {
	c.mu.Lock()
	c.closed, c.q = true, nil
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *callQueue) run() {
	var batch []callback
	for {
		c.mu.Lock()
		closed := c.closed
		batch, c.q = c.q, batch[:0]
		c.mu.Unlock()
		if closed {
			return
		}
		if len(batch) == 0 {
			<-c.wake
			continue
		}
		for i := range batch {
			if k := batch[i]; !k.sub.off.Load() {
				c.invoke(k)
			}
			batch[i] = callback{}
		}
	}
}

// invoke runs one callback; a panic is logged and the next one runs.
func (c *callQueue) invoke(k callback) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error().Interface("panic", r).Str("channel", k.m.Channel).Bytes("stack", debug.Stack()).
				Msg("local subscriber callback panicked")
		}
	}()
	k.fn(k.m)
}

// pushMessage is the Message a checked Push delivers: a remote client
// gets the same JSON as for a publish without id or ext.
func pushMessage(p *Push) *Message {
	return &Message{Channel: p.Channel, Data: p.Data.(json.RawMessage)}
}
