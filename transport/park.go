package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Parking: an HTTP/1.1 connection whose /meta/connect has been held for
// Options.ParkAfter is taken from net/http (hijacked) and left with no
// goroutine, no buffer and no parsed request: only the socket and the
// response head wait for the session's answer. The answer is written when
// the connection is handed back to the http.Server through the listener
// Serve wrapped, so that the next request on the connection is served as
// any other. A sweep every parkSweepEvery ends the parked polls whose
// client has closed the connection, so that their sessions start their
// max-interval as they do when net/http notices. A held poll costs a goroutine pair and about 10 KiB of
// net/http's buffers otherwise, which is most of an idle long-polling
// client's memory.

// DefaultParkAfter is the default Options.ParkAfter.
const DefaultParkAfter = time.Second

// parkWriteTimeout bounds the write of a parked response.
const parkWriteTimeout = 10 * time.Second

// parkSweepEvery is how often parked connections are looked at for
// clients that have closed them: a client that leaves is noticed within
// it, as net/http notices within a moment for a request it holds.
const parkSweepEvery = 2 * time.Second

// Serve is srv.Serve(ln) that also lets the long-polling transports srv
// serves park the /meta/connect requests they hold on ln's connections
// (see Options.ParkAfter). It sets srv.ConnContext, calling the one srv
// had first. Like srv.Serve, it returns http.ErrServerClosed after
// srv.Shutdown or srv.Close; parked connections whose answer comes after
// that are written their answer and closed.
func Serve(srv *http.Server, ln net.Listener) error {
	pl := newParkListener(ln)
	inner := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if inner != nil {
			ctx = inner(ctx, c)
		}
		if pc, ok := c.(*parkConn); ok {
			ctx = context.WithValue(ctx, parkKey{}, pc)
		}
		return ctx
	}
	return srv.Serve(pl)
}

// parkKey is the request context key of the *parkConn a request came on.
type parkKey struct{}

// parkListener is the listener Serve wraps: its connections can be parked,
// and Accept hands back parked ones when their answer is ready, before or
// after new connections.
type parkListener struct {
	net.Listener
	start    sync.Once
	accepted chan acceptResult // from the accept goroutine
	wake     chan struct{}     // capacity 1: ready has grown
	done     chan struct{}     // closed by Close

	mu       sync.Mutex
	ready    []*parkConn // answered parked connections, to be served again
	parked   map[*heldPoll]struct{}
	sweeping bool // the sweep goroutine runs
	closed   bool
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newParkListener(ln net.Listener) *parkListener {
	return &parkListener{
		Listener: ln,
		accepted: make(chan acceptResult),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

// Accept returns an answered parked connection or a new one.
func (l *parkListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	for {
		l.mu.Lock()
		if len(l.ready) > 0 {
			c := l.ready[0]
			l.ready[0] = nil
			l.ready = l.ready[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case r := <-l.accepted:
			if r.err != nil {
				return nil, r.err
			}
			return &parkConn{Conn: r.c, l: l}, nil
		case <-l.wake:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

// acceptLoop accepts new connections for Accept. The channel is
// unbuffered, so an error is retried at the pace http.Server retries.
func (l *parkListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				_ = c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Close closes the listener; answered parked connections still waiting to
// be served get their answer and are closed.
func (l *parkListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	ready := l.ready
	l.ready = nil
	l.mu.Unlock()
	close(l.done)
	err := l.Listener.Close()
	for _, c := range ready {
		c.closeAnswered()
	}
	return err
}

// serveAgain queues c, whose answer is owed, for Accept; once the listener
// is closed it writes the answer and closes c instead. It does not block
// on the connection.
func (l *parkListener) serveAgain(c *parkConn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		go c.closeAnswered()
		return
	}
	l.ready = append(l.ready, c)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// park adds p, about to be parked on one of l's connections, to the
// sweep.
func (l *parkListener) park(p *heldPoll) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parked == nil {
		l.parked = make(map[*heldPoll]struct{})
	}
	l.parked[p] = struct{}{}
	if !l.sweeping && !l.closed {
		l.sweeping = true
		go l.sweep()
	}
}

// unpark removes p, answered, from the sweep.
func (l *parkListener) unpark(p *heldPoll) {
	l.mu.Lock()
	delete(l.parked, p)
	l.mu.Unlock()
}

// sweep looks at the parked connections every parkSweepEvery, until the
// listener closes, and ends the polls whose client has left.
func (l *parkListener) sweep() {
	tick := time.NewTicker(parkSweepEvery)
	defer tick.Stop()
	var polls []*heldPoll
	for {
		select {
		case <-l.done:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		for p := range l.parked {
			polls = append(polls, p)
		}
		l.mu.Unlock()
		for _, p := range polls {
			p.sweep()
		}
		clear(polls)
		polls = polls[:0]
	}
}

// parkConn is a connection of a parkListener.
type parkConn struct {
	net.Conn
	l *parkListener
	// owed is a parked request's response, written before the connection
	// is next read; pre holds bytes that net/http had read past the parked
	// request. Both are set before the connection is served again and
	// used by the goroutine that serves it.
	owed []byte
	pre  []byte
}

// Read writes the owed response, if any, then reads, first what net/http
// had read ahead.
func (c *parkConn) Read(p []byte) (int, error) {
	if c.owed != nil {
		if err := c.writeOwed(); err != nil {
			return 0, err
		}
	}
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// writeOwed writes the owed response within parkWriteTimeout.
func (c *parkConn) writeOwed() error {
	b := c.owed
	c.owed = nil
	_ = c.Conn.SetWriteDeadline(time.Now().Add(parkWriteTimeout))
	_, err := c.Conn.Write(b)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	return err
}

// closeAnswered writes the owed response and closes the connection.
func (c *parkConn) closeAnswered() {
	if c.owed != nil {
		_ = c.writeOwed()
	}
	_ = c.Conn.Close()
}
