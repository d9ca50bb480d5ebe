package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ErrNoWebSocket is returned when the server does not serve the Bayeux
// websocket connection type: it refused the WebSocket upgrade, or its
// handshake reply did not offer websocket.
var ErrNoWebSocket = errors.New("loadgen: server does not support the websocket transport")

// WSURL turns a Bayeux endpoint's http:// or https:// URL into the
// ws:// or wss:// URL of the same endpoint; ws:// and wss:// URLs are
// returned as they are.
func WSURL(u string) (string, error) {
	switch {
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://"), nil
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://"), nil
	case strings.HasPrefix(u, "ws://"), strings.HasPrefix(u, "wss://"):
		return u, nil
	}
	return "", fmt.Errorf("loadgen: cannot make a WebSocket URL of %q", u)
}

// WSClient is one simulated Bayeux client over the websocket connection
// type: one WebSocket, on which it handshakes, subscribes, runs its
// /meta/connect loop and publishes. Every request is a text frame holding
// a JSON array of messages; a reader goroutine parses every incoming
// frame, hands each reply to the request waiting for its id and each
// delivery to OnDeliver. Unlike Client it is safe for concurrent use, so
// a publisher can publish while its connect is held on the same socket.
//
// The socket is dialled by the first request and dialled again by the
// next request after it broke; the client id survives, so the session
// continues on the new socket if the server still has it (and the
// server's 402 answer leads to a new handshake otherwise).
type WSClient struct {
	// URL is the ws:// (or wss://) endpoint.
	URL string
	// HC makes the WebSocket upgrade requests; nil means
	// http.DefaultClient. Its Timeout must be zero.
	HC *http.Client
	// OnDeliver, when set, is called for every event delivered to this
	// client with the time its frame was read. It runs on the reader
	// goroutine, one delivery after the other.
	OnDeliver func(m *Msg, at time.Time)

	id       atomic.Pointer[string]
	nid      atomic.Uint64
	timeout  atomic.Int64 // advice timeout, ns; 0 = not given yet
	interval atomic.Int64 // advice interval, ns

	mu     sync.Mutex // guards sock and closed; held while dialling
	sock   *wsSock
	closed bool

	// centrifugo: the socket speaks Centrifugo's JSON protocol
	// (CentrifugoClient): frames are parsed by parseCentrifugo, server
	// pings are answered when pong is set, and a broken socket is not
	// dialled again by the next request (a new one needs a new connect).
	centrifugo bool
	pong       atomic.Bool
}

// wsSock is one WebSocket of a WSClient and its reader.
type wsSock struct {
	c      *WSClient
	ws     *websocket.Conn
	ctx    context.Context // ends when the socket is closed
	cancel context.CancelFunc
	done   chan struct{} // the reader ended
	err    error         // why it ended; read after done

	mu      sync.Mutex
	waiters map[string]*wsWait // by message id
	dead    bool               // the reader ended: no waiter will be answered

	wmu sync.Mutex // one frame written at a time
}

// wsWait is a request waiting for the replies to its messages.
type wsWait struct {
	want       int
	got        []Msg  // copies of the replies, in arrival order
	raw        []byte // copy of the frame holding a handshake reply
	deliveries int    // deliveries in the frames that carried the replies
	done       chan struct{}
	// cb, for an asynchronous request (PublishAsync), is called once
	// instead of closing done: with nil when every reply came, with the
	// error when the socket ended first.
	cb    func(w *wsWait, err error)
	fired atomic.Bool
}

// finish calls cb once.
func (w *wsWait) finish(err error) {
	if w.fired.CompareAndSwap(false, true) {
		w.cb(w, err)
	}
}

// ClientID returns the clientId of the session the client speaks for.
func (c *WSClient) ClientID() string {
	if p := c.id.Load(); p != nil {
		return *p
	}
	return ""
}

// SetClientID makes the client speak for session id.
func (c *WSClient) SetClientID(id string) { c.id.Store(&id) }

// ConnectInterval returns the delay the server advised between connects.
func (c *WSClient) ConnectInterval() time.Duration { return time.Duration(c.interval.Load()) }

// holdTimeout is the server's connect hold time from the last advice
// (30 s until one came).
func (c *WSClient) holdTimeout() time.Duration {
	if t := c.timeout.Load(); t > 0 {
		return time.Duration(t)
	}
	return 30 * time.Second
}

// Close closes the socket (with a close handshake, for at most a few
// seconds) and waits for its reader. The client must not be used after.
func (c *WSClient) Close() {
	c.mu.Lock()
	s := c.sock
	c.sock, c.closed = nil, true
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
}

// socket returns the open socket, dialling a new one when there is none
// or the last one broke.
func (c *WSClient) socket(ctx context.Context) (*wsSock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("loadgen: websocket client closed")
	}
	if s := c.sock; s != nil {
		select {
		case <-s.done:
			s.close()
			c.sock = nil
		default:
			return s, nil
		}
	}
	if c.centrifugo {
		return nil, errNoConnection
	}
	return c.dialLocked(ctx)
}

// errNoConnection is returned by a Centrifugo client's requests when its
// socket is gone: it must connect again.
var errNoConnection = fmt.Errorf("%w: the connection is closed", ErrRehandshake)

// redial closes the client's socket, if any, and dials a new one.
func (c *WSClient) redial(ctx context.Context) (*wsSock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("loadgen: websocket client closed")
	}
	if s := c.sock; s != nil {
		c.sock = nil
		s.close()
	}
	c.pong.Store(false)
	return c.dialLocked(ctx)
}

// current returns the client's socket without dialling; nil if none.
func (c *WSClient) current() *wsSock {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock
}

// dialLocked dials a socket and starts its reader; c.mu is held.
func (c *WSClient) dialLocked(ctx context.Context) (*wsSock, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, c.URL, &websocket.DialOptions{HTTPClient: c.HC})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%w: %s answered the WebSocket upgrade with HTTP %d (use --transport long-polling)",
				ErrNoWebSocket, c.URL, resp.StatusCode)
		}
		return nil, err
	}
	ws.SetReadLimit(-1)
	sctx, scancel := context.WithCancel(context.Background())
	s := &wsSock{c: c, ws: ws, ctx: sctx, cancel: scancel, done: make(chan struct{}), waiters: map[string]*wsWait{}}
	go s.read()
	c.sock = s
	return s, nil
}

// close ends the socket and waits for its reader.
func (s *wsSock) close() {
	select {
	case <-s.done:
	default:
		// The reader takes the peer's close frame, which completes the
		// close handshake; a peer that does not answer is cut off.
		_ = s.ws.Close(websocket.StatusNormalClosure, "")
	}
	s.cancel()
	_ = s.ws.CloseNow()
	<-s.done
}

// read parses every incoming frame until the socket ends: deliveries go
// to OnDeliver, replies to the requests waiting for their ids.
func (s *wsSock) read() {
	var (
		buf  bytes.Buffer
		msgs []Msg
	)
	defer func() {
		// Fail the asynchronous requests still waiting; the synchronous
		// ones see done closed.
		s.mu.Lock()
		s.dead = true
		var async []*wsWait
		for id, w := range s.waiters {
			if w.cb != nil && !slices.Contains(async, w) {
				async = append(async, w)
			}
			delete(s.waiters, id)
		}
		s.mu.Unlock()
		err := fmt.Errorf("loadgen: websocket closed: %w", s.err)
		for _, w := range async {
			w.finish(err)
		}
		close(s.done)
	}()
	for {
		_, rd, err := s.ws.Reader(s.ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			s.err = err
			return
		}
		at := time.Now()
		if s.c.centrifugo {
			msgs, err = parseCentrifugo(buf.Bytes(), msgs[:0])
		} else {
			msgs, err = ParseMessages(buf.Bytes(), msgs[:0])
		}
		if err != nil {
			s.err = fmt.Errorf("%w: %.200s", err, buf.Bytes())
			_ = s.ws.CloseNow()
			return
		}
		deliveries := 0
		for i := range msgs {
			m := &msgs[i]
			if m.pong {
				// A connect reply asking for pongs, before any ping.
				s.c.pong.Store(true)
			}
			if m.ping {
				if s.c.pong.Load() {
					// Off the reader, which must not wait for a write.
					go s.write(cfPong)
				}
				continue
			}
			if m.IsDelivery() {
				deliveries++
				if s.c.OnDeliver != nil {
					s.c.OnDeliver(m, at)
				}
				continue
			}
			if m.Timeout >= 0 {
				s.c.timeout.Store(int64(time.Duration(m.Timeout) * time.Millisecond))
			}
			if m.Interval >= 0 {
				s.c.interval.Store(int64(time.Duration(m.Interval) * time.Millisecond))
			}
		}
		s.route(msgs, buf.Bytes(), deliveries)
	}
}

// route hands the replies among msgs to the requests waiting for them;
// frame is the frame they came in, kept for a handshake reply.
func (s *wsSock) route(msgs []Msg, frame []byte, deliveries int) {
	var async []*wsWait
	defer func() {
		for _, w := range async {
			w.finish(nil)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		if len(m.ID) == 0 || m.IsDelivery() {
			continue
		}
		w := s.waiters[string(m.ID)]
		if w == nil {
			continue // a reply nobody waits for any more
		}
		delete(s.waiters, string(m.ID))
		r := *m
		r.Channel = bytes.Clone(m.Channel)
		r.ID = bytes.Clone(m.ID)
		w.got = append(w.got, r)
		if w.raw == nil && string(m.Channel) == "/meta/handshake" {
			w.raw = bytes.Clone(frame)
		}
		w.deliveries += deliveries
		deliveries = 0 // count a frame's deliveries once
		if len(w.got) == w.want {
			if w.cb != nil {
				async = append(async, w)
			} else {
				close(w.done)
			}
		}
	}
}

// write sends one frame, for at most 10 s.
func (s *wsSock) write(frame []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.Write(ctx, websocket.MessageText, frame) // a broken socket ends the reader
}

// forget removes the waiter of ids after its request gave up.
func (s *wsSock) forget(ids []string) {
	s.mu.Lock()
	for _, id := range ids {
		delete(s.waiters, id)
	}
	s.mu.Unlock()
}

// bufPool holds request bodies being built.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// roundTrip sends the frame build writes (a JSON array of messages with
// the ids given) and waits up to timeout for the replies to all of them.
func (c *WSClient) roundTrip(ctx context.Context, ids []string, timeout time.Duration, build func(b []byte) []byte) (*wsWait, error) {
	s, err := c.socket(ctx)
	if err != nil {
		return nil, err
	}
	w := &wsWait{want: len(ids), done: make(chan struct{})}
	s.mu.Lock()
	for _, id := range ids {
		s.waiters[id] = w
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.writeFrame(ctx, ids, build); err != nil {
		return nil, err
	}
	select {
	case <-w.done:
		return w, nil
	case <-s.done:
		s.forget(ids)
		// Replies that came just before the socket broke still count.
		select {
		case <-w.done:
			return w, nil
		default:
		}
		return nil, fmt.Errorf("loadgen: websocket closed: %w", s.err)
	case <-ctx.Done():
		s.forget(ids)
		return nil, fmt.Errorf("loadgen: no reply on the websocket: %w", ctx.Err())
	}
}

// newID returns a fresh message id.
func (c *WSClient) newID() string { return strconv.FormatUint(c.nid.Add(1), 10) }

// appendHead appends the start of a message: channel, clientId and id.
func (c *WSClient) appendHead(b []byte, channel, id string) []byte {
	b = append(b, `{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","clientId":"`...)
	b = append(b, c.ClientID()...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	return append(b, '"')
}

// Handshake performs /meta/handshake over the socket, offering only the
// websocket connection type, and stores the client id. A server that
// does not offer websocket yields an error wrapping ErrNoWebSocket.
func (c *WSClient) Handshake(ctx context.Context) error {
	id := c.newID()
	w, err := c.roundTrip(ctx, []string{id}, 30*time.Second, func(b []byte) []byte {
		b = append(b, `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"`...)
		b = append(b, id...)
		return append(b, `"}]`...)
	})
	if err != nil {
		return err
	}
	m := &w.got[0]
	types, typesErr := offeredTypes(w.raw)
	if !m.Successful && typesErr == nil && len(types) > 0 && !slices.Contains(types, "websocket") {
		return fmt.Errorf("%w: its handshake offers %s (%q)", ErrNoWebSocket, strings.Join(types, ", "), m.Error)
	}
	if err := replyErr(m, "handshake"); err != nil {
		return err
	}
	if typesErr == nil && len(types) > 0 && !slices.Contains(types, "websocket") {
		return fmt.Errorf("%w: its handshake offers %s", ErrNoWebSocket, strings.Join(types, ", "))
	}
	if m.ClientID == "" {
		return errors.New("loadgen: handshake reply without clientId")
	}
	c.SetClientID(m.ClientID)
	return nil
}

// offeredTypes reads supportedConnectionTypes from the handshake reply
// in frame.
func offeredTypes(frame []byte) ([]string, error) {
	var msgs []struct {
		Channel string   `json:"channel"`
		Types   []string `json:"supportedConnectionTypes"`
	}
	if err := json.Unmarshal(frame, &msgs); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.Channel == "/meta/handshake" {
			return m.Types, nil
		}
	}
	return nil, nil
}

// Subscribe subscribes to the given channels in one frame, one
// /meta/subscribe message per channel.
func (c *WSClient) Subscribe(ctx context.Context, channels []string) error {
	return c.SubscribeReplay(ctx, channels, nil)
}

// SubscribeReplay subscribes as Subscribe does, asking for replay as
// Client.SubscribeReplay does.
func (c *WSClient) SubscribeReplay(ctx context.Context, channels []string, from []int64) error {
	ids := make([]string, len(channels))
	for i := range ids {
		ids[i] = c.newID()
	}
	w, err := c.roundTrip(ctx, ids, 30*time.Second, func(b []byte) []byte {
		b = append(b, '[')
		for i, ch := range channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = c.appendHead(b, "/meta/subscribe", ids[i])
			b = append(b, `,"subscription":"`...)
			b = append(b, ch...)
			b = append(b, '"')
			b = appendReplayExt(b, ch, replayFrom(from, i))
			b = append(b, '}')
		}
		return append(b, ']')
	})
	if err != nil {
		return err
	}
	for i := range w.got {
		if err := subscribeErr(&w.got[i], from != nil); err != nil {
			return err
		}
	}
	return nil
}

// Connect sends one /meta/connect and waits for its reply, which the
// server holds as a heartbeat while it pushes deliveries in frames of
// their own. It returns the number of deliveries that came in the
// reply's frame (a backlog the server could not push).
func (c *WSClient) Connect(ctx context.Context) (int, error) {
	id := c.newID()
	w, err := c.roundTrip(ctx, []string{id}, c.holdTimeout()+20*time.Second, func(b []byte) []byte {
		b = append(b, '[')
		b = c.appendHead(b, "/meta/connect", id)
		return append(b, `,"connectionType":"websocket"}]`...)
	})
	if err != nil {
		return 0, err
	}
	return w.deliveries, replyErr(&w.got[0], "connect")
}

// Disconnect sends /meta/disconnect.
func (c *WSClient) Disconnect(ctx context.Context) error {
	id := c.newID()
	w, err := c.roundTrip(ctx, []string{id}, 30*time.Second, func(b []byte) []byte {
		b = append(b, '[')
		b = c.appendHead(b, "/meta/disconnect", id)
		return append(b, `}]`...)
	})
	if err != nil {
		return err
	}
	return replyErr(&w.got[0], "disconnect")
}

// PublishAsync sends the payloads in one frame, as Publish does, without
// waiting for the replies: done is called exactly once, on the socket's
// reader goroutine when the replies to all of them came (acked[k] tells
// whether the server acknowledged ps[k]; err is the first refusal), or
// with the error when the frame could not be written or the socket ended
// before (possibly before PublishAsync returns). Publishes are pipelined
// on the socket in the order of the calls. There is no timeout: a reply
// that never comes holds its request until the socket ends.
func (c *WSClient) PublishAsync(ctx context.Context, ps []Payload, size int, done func(acked []bool, err error)) {
	ids := make([]string, len(ps))
	for i := range ids {
		ids[i] = c.newID()
	}
	c.publishAsync(ctx, ps, ids, done, func(b []byte) []byte { return c.appendPublish(b, ps, ids, size) })
}

// publishAsync sends the frame build writes, publishing ps with ids, and
// calls done once as PublishAsync says.
func (c *WSClient) publishAsync(ctx context.Context, ps []Payload, ids []string, done func(acked []bool, err error), build func(b []byte) []byte) {
	w := &wsWait{want: len(ids), cb: func(w *wsWait, err error) {
		acked := make([]bool, len(ps))
		if err != nil {
			done(acked, err)
			return
		}
		done(acked, publishReplies(w, ids, acked))
	}}
	s, err := c.socket(ctx)
	if err != nil {
		w.finish(err)
		return
	}
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		w.finish(fmt.Errorf("loadgen: websocket closed: %w", s.err))
		return
	}
	for _, id := range ids {
		s.waiters[id] = w
	}
	s.mu.Unlock()
	if err := s.writeFrame(ctx, ids, build); err != nil {
		w.finish(err)
	}
}

// writeFrame writes the frame build appends, in a pooled buffer; on error
// the waiters of ids are forgotten.
func (s *wsSock) writeFrame(ctx context.Context, ids []string, build func([]byte) []byte) error {
	bp := bufPool.Get().(*[]byte)
	*bp = build((*bp)[:0])
	s.wmu.Lock()
	err := s.ws.Write(ctx, websocket.MessageText, *bp)
	s.wmu.Unlock()
	bufPool.Put(bp)
	if err != nil {
		s.forget(ids)
		return fmt.Errorf("loadgen: websocket write: %w", err)
	}
	return nil
}

// appendPublish appends the frame publishing ps with the given ids.
func (c *WSClient) appendPublish(b []byte, ps []Payload, ids []string, size int) []byte {
	b = append(b, '[')
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = c.appendHead(b, ps[i].Channel, ids[i])
		b = append(b, `,"data":`...)
		b = AppendPayload(b, &ps[i], size)
		b = append(b, '}')
	}
	return append(b, ']')
}

// publishReplies sets acked from the replies in w and returns the first
// refusal.
func publishReplies(w *wsWait, ids []string, acked []bool) error {
	var firstErr error
	for i := range w.got {
		m := &w.got[i]
		k := slices.Index(ids, string(m.ID))
		if k < 0 {
			continue
		}
		if m.Successful {
			acked[k] = true
		} else if firstErr == nil {
			firstErr = replyErr(m, "publish")
		}
	}
	return firstErr
}

// Publish sends the payloads in one frame, as Client.Publish does, and
// waits for the reply to every one of them: acked[k] tells whether the
// server acknowledged ps[k] as successful.
func (c *WSClient) Publish(ctx context.Context, ps []Payload, size int) (acked []bool, err error) {
	ids := make([]string, len(ps))
	for i := range ids {
		ids[i] = c.newID()
	}
	acked = make([]bool, len(ps))
	w, err := c.roundTrip(ctx, ids, 30*time.Second, func(b []byte) []byte {
		return c.appendPublish(b, ps, ids, size)
	})
	if err != nil {
		return acked, err
	}
	return acked, publishReplies(w, ids, acked)
}
