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
)

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
		wake: make(chan struct{}, 1), closing: make(chan struct{}),
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
	t.log.Debug().Str("remote", c.remote).Msg("websocket closed")
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
	closed  bool
	// backlogged is set when a push was refused for a full queue: the
	// refused messages stay in the session and will come back in a
	// /meta/connect reply; later pushes are refused too until that reply
	// is queued, so that they cannot overtake it.
	backlogged bool

	wake        chan struct{} // the writer has work (capacity 1)
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
	c.queue, c.pushed = nil, 0
	c.mu.Unlock()
}

// reader reads frames in order and submits each to the hub.
func (c *wsConn) reader() {
	for {
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
		msgs, err := protocol.Decode(data)
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
		c.mu.Lock()
		c.awaited++
		c.mu.Unlock()
		c.waiters.Add(1)
		go func() {
			defer c.waiters.Done()
			parts := pending(c.ctx)
			<-c.inflight
			c.reply(parts, true)
		}()
	}
}

// push takes deliveries from the client's session actor. It never blocks:
// it refuses them (and they stay queued in the session) when the
// connection is closed or its write queue is full.
func (c *wsConn) push(msgs [][]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.backlogged {
		return false
	}
	if c.pushed >= c.t.opts.MaxWriteQueue {
		c.backlogged = true
		return false
	}
	c.queue = append(c.queue, msgs...)
	c.pushed += len(msgs)
	c.signal()
	return true
}

// reply queues a request's replies; answered is set for the replies of a
// submitted request (not for an error about an unreadable frame). Replies
// are not bounded by MaxWriteQueue: there are at most MaxInFlight requests
// awaiting them.
func (c *wsConn) reply(parts [][]byte, answered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if answered {
		c.awaited--
	}
	if c.closed || len(parts) == 0 {
		c.signal()
		return
	}
	if c.backlogged && hasDelivery(parts) {
		c.backlogged = false // the session's backlog is in this reply
	}
	c.queue = append(c.queue, parts...)
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
			if !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
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
// unless one message alone is larger.
func (c *wsConn) write(items [][]byte) error {
	limit := int(c.t.opts.MaxBody)
	frame := make([]byte, 0, min(bodySize(items), limit))
	for i := 0; i < len(items); {
		frame = append(frame[:0], '[')
		n := 0
		for i < len(items) && (n == 0 || len(frame)+len(items[i])+2 <= limit) {
			if n > 0 {
				frame = append(frame, ',')
			}
			frame = append(frame, items[i]...)
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
	}
	return nil
}

// pinger pings the peer every PingInterval and closes the connection when
// a pong does not come back within PongTimeout.
func (c *wsConn) pinger() {
	defer close(c.pingerDone)
	if c.t.opts.PingInterval < 0 {
		<-c.ctx.Done()
		return
	}
	tick := time.NewTicker(c.t.opts.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.t.opts.PongTimeout)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("no pong: closing websocket")
			}
			c.cancel()
			_ = c.ws.CloseNow()
			return
		}
	}
}
