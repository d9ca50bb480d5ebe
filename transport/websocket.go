package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
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
	// WriteTimeout bounds the writing of what is queued for a connection
	// when the writer takes it (default DefaultWriteTimeout); a peer that
	// does not take it in time is disconnected.
	WriteTimeout time.Duration
	// Compression offers the permessage-deflate extension (RFC 7692)
	// without context takeover: a client that asks for it gets frames
	// compressed one by one, with compressors pooled across connections,
	// so an idle connection holds no compression state. It costs CPU on
	// every frame (see BENCHMARKS.md); off by default.
	Compression bool
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
	// the session (a push, at most 32 KiB but for a single larger message,
	// or a connect reply with what the session kept).
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
	hub      *actors.Hub
	opts     WebSocketOptions
	log      zerolog.Logger
	origin   func(*http.Request) bool
	upgrader websocket.Upgrader

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
	t := &WebSocket{hub: hub, opts: opts, log: log, origin: OriginChecker(opts.AllowedOrigins),
		conns: map[*wsConn]struct{}{}}
	t.upgrader = websocket.Upgrader{
		// A small read buffer of the connection's own (incoming frames are
		// small: connects, subscribes, publishes; larger ones are read in
		// pieces) and write buffers shared by all connections, held only
		// while a connection writes: an idle connection holds 1 KiB.
		ReadBufferSize:    wsReadBuffer,
		WriteBufferSize:   wsWriteBuffer,
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: opts.Compression,
		CheckOrigin:       func(*http.Request) bool { return true }, // checked by ServeHTTP
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, protocol.ErrBadRequest("WebSocket upgrade: "+reason.Error()))
		},
	}
	return t
}

// offersDeflate reports whether an upgrade request offers
// permessage-deflate: gorilla/websocket accepts it then, when enabled.
func offersDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for ext := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
				return true
			}
		}
	}
	return false
}

// The connection buffers: see NewWebSocket.
const (
	wsReadBuffer  = 1 << 10
	wsWriteBuffer = 16 << 10
)

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
// until either side closes it, on a goroutine of its own: the request and
// net/http's buffers are not kept. A request that is not an upgrade gets
// HTTP 400 with a Bayeux error; one from a page of a foreign origin gets
// 403.
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

	// net/http leaves its deadlines (Server.ReadTimeout, WriteTimeout) on
	// a hijacked connection: clear them, the transport has its own pings
	// and timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		t.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket upgrade failed")
		t.wg.Done()
		return
	}
	c := newWSConn(t, ws, r.RemoteAddr, r.Header.Clone(), t.opts.Compression && offersDeflate(r.Header))
	t.mu.Lock()
	if t.closed { // Close ran while upgrading
		t.mu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = ws.Close()
		t.wg.Done()
		return
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	t.log.Debug().Str("remote", c.remote).Msg("websocket open")
	go func() {
		defer t.wg.Done()
		c.serve()
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		c.mu.Lock()
		frames, peak := c.frames, c.peak
		c.mu.Unlock()
		t.log.Debug().Str("remote", c.remote).Int("frames", frames).Int64("peak_pending_bytes", peak).Msg("websocket closed")
	}()
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
		_ = c.ws.Close()
	}
	t.mu.Unlock()
	<-done
	return err
}
