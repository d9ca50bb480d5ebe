package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// WebSocketType is the Bayeux connection type of the WebSocket transport.
const WebSocketType = protocol.WebSocket

// Defaults of WebSocketOptions.
const (
	DefaultPingInterval  = 25 * time.Second
	DefaultPongTimeout   = 10 * time.Second
	DefaultWriteTimeout  = 15 * time.Second
	DefaultMaxWriteQueue = 1024
	DefaultMaxInFlight   = 16
	// DefaultMaxPendingBytes is the default of
	// WebSocketOptions.MaxPendingBytes: 1 MiB.
	DefaultMaxPendingBytes = 1 << 20
)

// wsReplyCost is what a frame in flight counts against MaxPendingBytes
// for each of its messages, on top of its own size, until its replies are
// queued: about the size of a reply, so that a frame of many small
// messages (`[{},{},...]`, whose replies are twenty times its size) is
// counted near what its replies will hold before they exist.
const wsReplyCost = 64

// DefaultTypes are the connection types a server offers unless told
// otherwise, in order of preference.
func DefaultTypes() []string {
	return []string{WebSocketType, protocol.LongPolling, protocol.CallbackPolling}
}

// CheckTypes reports an error for an empty list, a name that is not a
// transport of this package (websocket, long-polling, callback-polling) or
// a name listed twice.
func CheckTypes(types []string) error {
	if len(types) == 0 {
		return errors.New("no transport enabled")
	}
	for i, t := range types {
		if !slices.Contains(DefaultTypes(), t) {
			return fmt.Errorf("unknown transport %q (want %s)", t, strings.Join(DefaultTypes(), ", "))
		}
		if slices.Contains(types[:i], t) {
			return fmt.Errorf("transport %q listed twice", t)
		}
	}
	return nil
}

// WebSocketOptions configures the WebSocket transport.
type WebSocketOptions struct {
	// MaxBody limits one incoming frame (a Bayeux message or array) in
	// bytes, as Options.MaxBody limits a long-polling request (default
	// DefaultMaxBody). A larger frame closes the connection with status
	// 1009 (message too big). It also caps outgoing frames: more queued
	// messages than fit are written as several frames.
	MaxBody int64
	// AllowedOrigins lists the origins whose pages may open a WebSocket, as
	// for CORS (see OriginChecker); same-origin pages and clients that send
	// no Origin (not browsers) always may.
	AllowedOrigins []string
	// PingInterval is how often the server pings an open connection, so
	// that proxies do not close it as idle (default DefaultPingInterval;
	// negative: never). A pong must come back within PongTimeout (default
	// DefaultPongTimeout) or the connection is closed.
	PingInterval, PongTimeout time.Duration
	// WriteTimeout bounds the writing of one frame (default
	// DefaultWriteTimeout); a peer that does not take it in time is
	// disconnected.
	WriteTimeout time.Duration
	// MaxWriteQueue bounds the pushed messages waiting to be written on one
	// connection (default DefaultMaxWriteQueue); with the batch being
	// written, a connection holds at most twice as many. When it is reached
	// the transport refuses pushes and the messages stay in the client's
	// session queue, bounded there by the hub's MaxQueue; they then travel
	// in the client's next /meta/connect reply.
	MaxWriteQueue int
	// MaxInFlight bounds the requests (frames) of one connection whose
	// replies are awaited (default DefaultMaxInFlight); the transport stops
	// reading the connection until one is answered (and, not reading, sees
	// no pong: a connection stuck so beyond PongTimeout is closed).
	MaxInFlight int
	// MaxPendingBytes bounds the bytes one connection holds for its peer
	// (default DefaultMaxPendingBytes): replies and pushed messages count
	// from when they are queued until they are written to the socket, and
	// each frame read counts its size plus 64 bytes a message (about a
	// reply) until its replies are queued. At the limit the transport stops
	// reading the connection, so that the frames of a peer that does not
	// read what it is sent wait in TCP buffers rather than in the server's
	// memory, and it refuses pushes, whose messages stay in the client's
	// session queue (bounded there, see MaxWriteQueue); it reads again once
	// enough is written. A connection so holds at most about twice the
	// limit, plus the replies of the frame it read last and one batch from
	// the session (a push, or a connect reply with what the session kept).
	// A peer that takes nothing is closed, as ever, when a frame has not
	// been written within WriteTimeout. The server does not ping while
	// output is pending or reads are paused (it would not read the pong):
	// the write timeout watches the peer then.
	MaxPendingBytes int64
	// Logger receives the transport's logs; nil means none.
	Logger *zerolog.Logger
}

// WebSocket is the Bayeux "websocket" transport: each text frame carries a
// Bayeux message or an array of them, each reply frame an array. Messages
// go to the hub through Hub.Submit, as long-polling requests do, so a
// session cannot tell its transports apart; a client may handshake on one
// and continue on the other with the same clientId. Deliveries are pushed
// as soon as they are queued; a /meta/connect is held as on long-polling,
// as the client's heartbeat.
//
// WebSocket is an http.Handler for upgrade requests; Wrap puts it in
// front of the long-polling handler on the same path.
type WebSocket struct {
	hub    *actors.Hub
	opts   WebSocketOptions
	log    zerolog.Logger
	origin func(*http.Request) bool

	mu     sync.Mutex
	conns  map[*wsConn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection being served
}

// NewWebSocket returns the WebSocket transport for hub.
func NewWebSocket(hub *actors.Hub, opts WebSocketOptions) *WebSocket {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PongTimeout <= 0 {
		opts.PongTimeout = DefaultPongTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxWriteQueue <= 0 {
		opts.MaxWriteQueue = DefaultMaxWriteQueue
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = DefaultMaxPendingBytes
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = opts.Logger.With().Str("component", "websocket").Logger()
	}
	return &WebSocket{hub: hub, opts: opts, log: log, origin: OriginChecker(opts.AllowedOrigins),
		conns: map[*wsConn]struct{}{}}
}

// IsWebSocketUpgrade reports whether r asks to upgrade to a WebSocket.
func IsWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// Wrap returns a handler that serves WebSocket upgrade requests itself and
// passes every other request to next.
func (t *WebSocket) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsWebSocketUpgrade(r) {
			t.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP upgrades the request to a WebSocket and serves Bayeux on it
// until either side closes it. A request that is not an upgrade gets HTTP
// 400 with a Bayeux error; one from a page of a foreign origin gets 403.
func (t *WebSocket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, protocol.ErrBadRequest("WebSocket upgrade expected"))
		return
	}
	if !t.origin(r) {
		t.log.Debug().Str("remote", r.RemoteAddr).Str("origin", r.Header.Get("Origin")).Msg("upgrade from a foreign origin refused")
		http.Error(w, "WebSocket: origin not allowed", http.StatusForbidden)
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, protocol.ErrShuttingDown(protocol.ReconnectHandshake))
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()

	// net/http leaves its read deadline (Server.ReadTimeout) on a hijacked
	// connection: clear it, the transport has its own pings and timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // origin checked above
	if err != nil {
		t.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket upgrade failed")
		return
	}
	ws.SetReadLimit(t.opts.MaxBody)
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{
		t: t, ws: ws, remote: r.RemoteAddr, header: r.Header, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), closing: make(chan struct{}),
		inflight: make(chan struct{}, t.opts.MaxInFlight),
	}
	t.mu.Lock()
	if t.closed { // Close ran while upgrading
		t.mu.Unlock()
		cancel()
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	t.log.Debug().Str("remote", c.remote).Msg("websocket open")
	c.serve()
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.mu.Lock()
	frames, peak := c.frames, c.peak
	c.mu.Unlock()
	t.log.Debug().Str("remote", c.remote).Int("frames", frames).Int64("peak_pending_bytes", peak).Msg("websocket closed")
}

// Close closes every connection with status 1001 (going away), after
// writing what is queued for it and the replies the hub has just given
// (held connects answered by Hub.Drain), refuses new connections, and
// waits until their goroutines have ended; a peer that has not completed
// the close handshake within a few seconds, or by the end of ctx, is
// disconnected. net/http's Server.Shutdown neither closes nor waits for
// upgraded connections: call Close after Hub.Drain, around Shutdown.
func (t *WebSocket) Close(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.shutdown()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	// A peer that does not answer the close handshake is cut off.
	late := time.NewTimer(closeGrace + time.Second)
	defer late.Stop()
	var err error
	select {
	case <-done:
		return nil
	case <-late.C:
	case <-ctx.Done():
		err = fmt.Errorf("websocket close: %w", ctx.Err())
	}
	t.mu.Lock()
	for c := range t.conns {
		c.cancel()
		_ = c.ws.CloseNow()
	}
	t.mu.Unlock()
	<-done
	return err
}

// wsConn is one WebSocket connection. Three goroutines serve it: the
// reader (the HTTP handler's, which reads frames in order and submits them
// to the hub), the writer (which drains the write queue) and the pinger;
// plus one waiter per request whose replies are awaited.
type wsConn struct {
	t      *WebSocket
	ws     *websocket.Conn
	remote string
	header http.Header     // the upgrade request's: its Authorization, for hooks
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  [][]byte // encoded messages to write, in order
	pushed int      // pushed messages in queue, bounded by MaxWriteQueue
	// awaited counts the submitted requests whose replies are not queued
	// yet.
	awaited int
	// pending is the size of the messages queued or being written; reading
	// the cost of the frames whose replies are awaited (see wsReplyCost).
	// The reader reads no frame while their sum is at MaxPendingBytes, and
	// pushes are refused while pending is.
	pending, reading int64
	peak             int64 // the highest pending, for the logs
	frames           int   // frames submitted to the hub
	// paused is set while the reader waits for pending and reading to go
	// below MaxPendingBytes; pauses counts the pauses, so that the pinger
	// can tell that one happened while it waited for a pong; skippedPings
	// counts the pings not sent during a pause.
	paused       bool
	pauses       int
	skippedPings int
	closed       bool
	// backlogged is set when a push was refused for a full queue: the
	// refused messages stay in the session and will come back in a
	// /meta/connect reply; later pushes are refused too until that reply
	// is queued, so that they cannot overtake it.
	backlogged bool

	wake        chan struct{} // the writer has work (capacity 1)
	room        chan struct{} // pending or reading went down (capacity 1)
	closing     chan struct{} // Close: flush, then close with 1001
	closingOnce sync.Once
	inflight    chan struct{} // semaphore of awaited requests
	waiters     sync.WaitGroup
	writerDone  chan struct{}
	pingerDone  chan struct{}
}

// serve runs the connection until it ends, then cleans up.
func (c *wsConn) serve() {
	c.writerDone = make(chan struct{})
	c.pingerDone = make(chan struct{})
	go c.writer()
	go c.pinger()
	c.reader()

	// Refuse further pushes (from now on the session keeps its messages),
	// abandon held connects (their messages stay queued in the session),
	// stop the writer and the pinger.
	c.markClosed()
	c.cancel()
	c.waiters.Wait()
	<-c.writerDone
	<-c.pingerDone
	_ = c.ws.CloseNow()
}

// markClosed makes push refuse messages and drops what is still queued:
// pushed messages not yet written are lost with the connection, as a
// long-polling response lost in flight is (the ack extension, which turns
// pushing off, is the remedy).
func (c *wsConn) markClosed() {
	c.mu.Lock()
	c.closed = true
	c.pending -= size(c.queue)
	c.queue, c.pushed = nil, 0
	c.mu.Unlock()
}

// size is the number of bytes of msgs.
func size(msgs [][]byte) int64 {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return int64(n)
}

// waitRoom returns once the connection holds less than MaxPendingBytes
// (pending output and frames in flight), so that the reader may read the
// next frame; false when the connection ended meanwhile.
func (c *wsConn) waitRoom() bool {
	for {
		c.mu.Lock()
		if c.pending+c.reading < c.t.opts.MaxPendingBytes {
			c.paused = false
			c.mu.Unlock()
			return true
		}
		if !c.paused {
			c.paused = true
			c.pauses++
		}
		c.mu.Unlock()
		select {
		case <-c.room:
		case <-c.writerDone: // the connection is finished
			return false
		case <-c.ctx.Done():
			return false
		}
	}
}

// freed tells a paused reader that pending or reading went down; c.mu is
// held.
func (c *wsConn) freed() {
	if c.paused {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

// reader reads frames in order and submits each to the hub, pausing while
// the connection holds MaxPendingBytes.
func (c *wsConn) reader() {
	for {
		if !c.waitRoom() {
			c.markClosed()
			return
		}
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.markClosed()
			var ce websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, context.Canceled) {
				c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("websocket read")
			}
			return
		}
		if typ != websocket.MessageText {
			c.replyError(protocol.ErrBadRequest("Binary frames not supported"))
			continue
		}
		msgs, err := protocol.DecodeLimit(data, c.t.hub.MaxBatch())
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				pe = protocol.ErrBadRequest(err.Error())
			}
			c.replyError(pe)
			continue
		}
		select {
		case c.inflight <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		// Submit hands the messages to their sessions now, so the next
		// frame's messages come after them even though this frame's
		// replies may be awaited for a while (a held /meta/connect).
		pending := c.t.hub.Submit(actors.RemoteRequest{
			Messages:   msgs,
			RemoteAddr: c.remote,
			Header:     c.header,
			// No BrowserID: a WebSocket does not take one of the browser's
			// HTTP connections, so its held connect must not count against
			// the browser's long polls (MaxSessionsPerBrowser).
			Push: c.push,
		})
		cost := int64(len(data)) + wsReplyCost*int64(len(msgs))
		c.mu.Lock()
		c.frames++
		c.awaited++
		c.reading += cost
		c.mu.Unlock()
		c.waiters.Add(1)
		go func() {
			defer c.waiters.Done()
			parts := pending(c.ctx)
			<-c.inflight
			c.answer(parts, cost)
		}()
	}
}

// push takes deliveries from the client's session actor. It never blocks:
// it refuses them (and they stay queued in the session) when the
// connection is closed, its write queue is full or it holds
// MaxPendingBytes.
func (c *wsConn) push(msgs [][]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.backlogged {
		return false
	}
	// A zero MaxPendingBytes (a wsConn not made by ServeHTTP) is no limit.
	if c.pushed >= c.t.opts.MaxWriteQueue || c.t.opts.MaxPendingBytes > 0 && c.pending >= c.t.opts.MaxPendingBytes {
		c.backlogged = true
		return false
	}
	c.enqueue(msgs)
	c.pushed += len(msgs)
	c.signal()
	return true
}

// enqueue appends msgs to the write queue and counts their bytes; c.mu is
// held.
func (c *wsConn) enqueue(msgs [][]byte) {
	c.queue = append(c.queue, msgs...)
	c.pending += size(msgs)
	c.peak = max(c.peak, c.pending)
}

// reply queues a request's replies; answered is set for the replies of a
// submitted request (not for an error about an unreadable frame). Replies
// are not bounded by MaxWriteQueue nor refused at MaxPendingBytes: there
// are at most MaxInFlight requests awaiting them, and the reader reads no
// more while the connection holds MaxPendingBytes.
func (c *wsConn) reply(parts [][]byte, answered bool) {
	c.answerCost(parts, answered, 0)
}

// answer queues the replies of a submitted request that counted cost
// against MaxPendingBytes while they were awaited.
func (c *wsConn) answer(parts [][]byte, cost int64) {
	c.answerCost(parts, true, cost)
}

func (c *wsConn) answerCost(parts [][]byte, answered bool, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if answered {
		c.awaited--
	}
	c.reading -= cost
	if c.closed || len(parts) == 0 {
		c.freed()
		c.signal()
		return
	}
	if c.backlogged && hasDelivery(parts) {
		c.backlogged = false // the session's backlog is in this reply
	}
	c.enqueue(parts)
	c.freed()
	c.signal()
}

// replyError answers a frame that could not be read with a Bayeux 400.
func (c *wsConn) replyError(pe *protocol.Error) {
	c.t.log.Debug().Str("remote", c.remote).Str("error", pe.Error()).Msg("bad frame")
	c.reply([][]byte{errorMessage(pe)}, false)
}

// signal wakes the writer; c.mu is held.
func (c *wsConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// hasDelivery reports whether replies carry a message that is not a reply
// (a delivery, which has no "successful" field).
func hasDelivery(parts [][]byte) bool {
	for _, p := range parts {
		var m struct {
			Successful *bool `json:"successful"`
		}
		if json.Unmarshal(p, &m) == nil && m.Successful == nil {
			return true
		}
	}
	return false
}

// shutdown asks the writer to write what is queued and close the
// connection with 1001.
func (c *wsConn) shutdown() {
	c.closingOnce.Do(func() { close(c.closing) })
}

// writer drains the write queue, batching everything queued into as few
// frames as MaxBody allows.
func (c *wsConn) writer() {
	defer close(c.writerDone)
	for {
		closing := false
		select {
		case <-c.wake:
		case <-c.closing:
			closing = true
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		items := c.queue
		c.queue, c.pushed = nil, 0
		c.mu.Unlock()
		if err := c.write(items); err != nil {
			c.mu.Lock()
			pending, paused := c.pending, c.paused
			c.mu.Unlock()
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				// No close frame can be written: the peer's receive window is
				// what is full.
				c.t.log.Info().Str("remote", c.remote).Int64("pending_bytes", pending).Bool("reads_paused", paused).
					Dur("write_timeout", c.t.opts.WriteTimeout).
					Msg("websocket closed: the peer took no output within the write timeout")
			case !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed):
				c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("websocket write")
			}
			c.markClosed()
			c.cancel()
			_ = c.ws.CloseNow()
			return
		}
		if closing {
			c.closeGracefully()
			return
		}
	}
}

// closeGrace bounds how long Close waits for a connection's awaited
// replies (connects the hub has just answered while draining).
const closeGrace = 2 * time.Second

// closeGracefully writes the replies still awaited, for up to closeGrace,
// then closes the connection with 1001; the reader sees it end and cleans
// up.
func (c *wsConn) closeGracefully() {
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	for {
		c.mu.Lock()
		items, awaited := c.queue, c.awaited
		c.queue, c.pushed = nil, 0
		c.mu.Unlock()
		if c.write(items) != nil || awaited == 0 {
			break
		}
		select {
		case <-c.wake:
			continue
		case <-grace.C:
		case <-c.ctx.Done():
		}
		break
	}
	_ = c.ws.Close(websocket.StatusGoingAway, "server shutting down")
}

// write writes items as JSON arrays, each frame at most MaxBody bytes
// unless one message alone is larger, and counts each frame's messages
// out of pending once it is written.
func (c *wsConn) write(items [][]byte) error {
	limit := int(c.t.opts.MaxBody)
	frame := make([]byte, 0, min(bodySize(items), limit))
	for i := 0; i < len(items); {
		frame = append(frame[:0], '[')
		n, written := 0, 0
		for i < len(items) && (n == 0 || len(frame)+len(items[i])+2 <= limit) {
			if n > 0 {
				frame = append(frame, ',')
			}
			frame = append(frame, items[i]...)
			written += len(items[i])
			items[i] = nil
			i++
			n++
		}
		frame = append(frame, ']')
		ctx, cancel := context.WithTimeout(c.ctx, c.t.opts.WriteTimeout)
		err := c.ws.Write(ctx, websocket.MessageText, frame)
		cancel()
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.pending -= int64(written)
		c.freed()
		c.mu.Unlock()
	}
	return nil
}

// pinger pings the peer every PingInterval and closes the connection when
// a pong does not come back within PongTimeout. It does not ping while
// output is pending or reads are paused, and it waits longer for the pong
// of a ping sent before: the writer's WriteTimeout watches the peer then,
// the ping's frame may wait in the socket as any frame may, and its pong
// is not read while reads are paused.
func (c *wsConn) pinger() {
	defer close(c.pingerDone)
	if c.t.opts.PingInterval < 0 {
		<-c.ctx.Done()
		return
	}
	tick := time.NewTicker(c.t.opts.PingInterval)
	defer tick.Stop()
	late := time.NewTimer(c.t.opts.PongTimeout)
	late.Stop()
	var ping *wsPing // the ping in flight
	defer func() {
		if ping != nil {
			<-ping.done // it ends with the connection
			ping.cancel()
		}
	}()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
			c.mu.Lock()
			busy, pauses := c.paused || c.pending > 0, c.pauses
			if busy {
				c.skippedPings++
			}
			c.mu.Unlock()
			if busy || ping != nil {
				continue
			}
			ping = c.ping(pauses)
			late.Reset(c.t.opts.PongTimeout)
		case <-late.C:
			if ping != nil && !c.busySince(ping.pauses) {
				c.noPong(errors.New("no pong within the pong timeout"))
				return
			}
		case err := <-ping.doneChan():
			ping.cancel()
			pauses := ping.pauses
			ping = nil
			late.Stop()
			if err != nil && c.ctx.Err() == nil && !c.busySince(pauses) {
				c.noPong(err)
				return
			}
		}
	}
}

// wsPing is a ping in flight.
type wsPing struct {
	done   chan error
	cancel context.CancelFunc
	pauses int // the count of pauses when it was sent
}

// doneChan is nil for no ping: a case that never comes.
func (p *wsPing) doneChan() <-chan error {
	if p == nil {
		return nil
	}
	return p.done
}

// ping sends a ping; its frame may wait in the socket for WriteTimeout, as
// any frame may, and then its pong for PongTimeout.
func (c *wsConn) ping(pauses int) *wsPing {
	ctx, cancel := context.WithTimeout(c.ctx, c.t.opts.WriteTimeout+c.t.opts.PongTimeout)
	p := &wsPing{done: make(chan error, 1), cancel: cancel, pauses: pauses}
	go func() { p.done <- c.ws.Ping(ctx) }()
	return p
}

// noPong closes the connection of a peer that did not answer a ping.
func (c *wsConn) noPong(err error) {
	c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("no pong: closing websocket")
	c.cancel()
	_ = c.ws.CloseNow()
}

// busySince reports whether output is pending or reads are paused, or
// have been since the count of pauses was pauses.
func (c *wsConn) busySince(pauses int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused || c.pauses != pauses || c.pending > 0
}
