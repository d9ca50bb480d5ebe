package actors

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// This file holds the hub's event reporting: Options.Callback and the
// actor system's event stream are told of every event on one goroutine
// of the hub's own, in the order the events happened, so that user code
// never runs on a session's or the supervisor's goroutine and may call
// any hub method.

// EventType names a hub event.
type EventType string

// The events a hub reports through Options.Callback and the actor system's
// event stream (the Perl module's Callback events).
const (
	EventSubscribe        EventType = "subscribe"
	EventUnsubscribe      EventType = "unsubscribe"
	EventPublish          EventType = "publish"
	EventClientPush       EventType = "client_push"
	EventClientConnect    EventType = "client_connect"
	EventClientDisconnect EventType = "client_disconnect"
)

// eventQueue carries events from the goroutines that emit them to the one
// that reports them. It holds at most max events (0: no bound); past it,
// events are dropped and counted, as a callback that cannot keep up must
// not make the hub hold unbounded memory or wait on user code.
type eventQueue struct {
	mu      sync.Mutex
	q       []Event
	closed  bool
	max     int
	warned  bool // the overflow is logged once per episode
	wake    chan struct{}
	done    chan struct{} // closed when the reporting goroutine has ended
	gid     atomic.Uint64 // the reporting goroutine, to tell Shutdown called from a callback
	dropped atomic.Uint64
}

// wantEvents reports whether anybody listens to events: a Callback, or
// a subscriber of the event stream beyond those the actor system makes.
func (h *Hub) wantEvents() bool {
	return h.opts.Callback != nil || h.system.EventStream.Length() > h.streamBase
}

// startEvents starts the goroutine that reports events.
func (h *Hub) startEvents() {
	h.events = &eventQueue{max: h.opts.MaxEventBacklog, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go h.reportEvents()
}

// emit queues an event for the Callback and the event stream.
func (h *Hub) emit(e Event) {
	if !h.wantEvents() {
		return
	}
	q := h.events
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return
	case q.max > 0 && len(q.q) >= q.max:
		q.dropped.Add(1)
		warn := !q.warned
		q.warned = true
		q.mu.Unlock()
		if warn {
			h.log.Warn().Int("max_event_backlog", q.max).Msg("event callback is not keeping up: events dropped")
		}
		return
	}
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// reportEvents runs on the hub's event goroutine until the queue is
// closed and empty.
func (h *Hub) reportEvents() {
	q := h.events
	q.gid.Store(goid())
	defer close(q.done)
	var batch []Event
	for {
		q.mu.Lock()
		batch, q.q = q.q, batch[:0]
		closed := q.closed
		if len(batch) == 0 {
			q.warned = false
		}
		q.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
			continue
		}
		for i := range batch {
			h.report(batch[i])
			batch[i] = Event{}
		}
	}
}

// report tells the Callback and the event stream of one event. A
// panicking callback is logged and otherwise ignored.
func (h *Hub) report(e Event) {
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

// stopEvents closes the queue and waits until every event emitted before
// has been reported, or ctx ends. Called from the event goroutine itself
// (a Callback that shuts the hub down) it does not wait.
func (h *Hub) stopEvents(ctx context.Context) error {
	q := h.events
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	if q.gid.Load() == goid() {
		return nil
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bayeuxhub: report events: %w", ctx.Err())
	}
}
