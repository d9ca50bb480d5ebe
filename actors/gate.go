package actors

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate orders publishes before Drain without a lock that user code could
// re-enter: every publish enters it while it checks that the hub is not
// draining and routes, and leaves it after (with defer, so a panic in a
// broker cannot leave it held); close refuses later entries and waits
// until the publishes inside have left, or ctx ends. A publish made from
// inside another one (a broker calling back into the hub) is refused, not
// blocked, once close has begun.
type gate struct {
	inside    atomic.Int64
	closed    atomic.Bool
	emptyOnce sync.Once
	empty     chan struct{} // closed once inside reaches 0 after close; made by newGate
}

func newGate() gate { return gate{empty: make(chan struct{})} }

// enter reports whether a publish may go on; when it does, the caller
// must call leave.
func (g *gate) enter() bool {
	g.inside.Add(1)
	if g.closed.Load() {
		g.leave()
		return false
	}
	return true
}

// leave ends a publish that entered.
func (g *gate) leave() {
	if g.inside.Add(-1) == 0 && g.closed.Load() {
		g.emptyOnce.Do(func() { close(g.empty) })
	}
}

// close refuses further publishes and waits for those inside to leave.
func (g *gate) close(ctx context.Context) error {
	g.closed.Store(true)
	if g.inside.Load() == 0 {
		return nil
	}
	// inside reaches 0 only when every publish that was accepted has
	// left: after that, all that enter back off.
	select {
	case <-g.empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
