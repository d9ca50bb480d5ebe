package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// Socket buffers on both ends are set (the kernel doubles the figure) and
// so not tuned by the kernel, so that a peer that does not read fills them
// after a known amount and the tests see the server's own buffering. Not
// below loopback's MSS (64 KiB), under which TCP stalls for hundreds of
// milliseconds waiting to reopen a closed window.
const wsTestSockBuf = 128 << 10

// smallBufListener gives every accepted connection small socket buffers.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(wsTestSockBuf)
		_ = tc.SetReadBuffer(wsTestSockBuf)
	}
	return c, err
}

// wsStartSmallBufs is wsStart with small socket buffers on the server's
// connections.
func wsStartSmallBufs(t *testing.T, hubOpts actors.Options, opts WebSocketOptions) *wsTestServer {
	t.Helper()
	if hubOpts.ConnectionTypes == nil {
		hubOpts.ConnectionTypes = DefaultTypes()
	}
	hub, err := actors.Start(actor.NewActorSystem(), hubOpts)
	if err != nil {
		t.Fatal(err)
	}
	s := &wsTestServer{hub: hub, ws: NewWebSocket(hub, opts)}
	s.srv = httptest.NewUnstartedServer(s.ws.Wrap(NewLongPolling(hub, Options{})))
	s.srv.Listener = smallBufListener{s.srv.Listener}
	s.srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hub.Drain(ctx)
		if err := s.ws.Close(ctx); err != nil {
			t.Error(err)
		}
		s.srv.Close()
		if err := hub.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hub.System().Shutdown()
	})
	return s
}

// wsDialSmallBufs opens a raw WebSocket with small socket buffers.
func wsDialSmallBufs(t *testing.T, s *wsTestServer) *websocket.Conn {
	t.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(wsTestSockBuf)
			_ = tc.SetWriteBuffer(wsTestSockBuf)
		}
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, s.url(), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial}},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return conn
}

// newest returns the connection opened after those in before.
func (s *wsTestServer) newest(t *testing.T, before map[*wsConn]bool) *wsConn {
	t.Helper()
	var found *wsConn
	wsCheckFor(t, 10*time.Second, time.Millisecond, func() error {
		s.ws.mu.Lock()
		defer s.ws.mu.Unlock()
		for c := range s.ws.conns {
			if !before[c] {
				found = c
				return nil
			}
		}
		return fmt.Errorf("no new connection among %d", len(s.ws.conns))
	})
	return found
}

func (s *wsTestServer) connSet() map[*wsConn]bool {
	s.ws.mu.Lock()
	defer s.ws.mu.Unlock()
	m := map[*wsConn]bool{}
	for c := range s.ws.conns {
		m[c] = true
	}
	return m
}

// wsConnState is a snapshot of a connection's accounting.
type wsConnState struct {
	pending, reading, peak int64
	frames, pauses         int
	paused                 bool
	skippedPings           int
}

func (c *wsConn) state() wsConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wsConnState{c.pending, c.reading, c.peak, c.frames, c.pauses, c.paused, c.skippedPings}
}

// emptyMessages is a frame of n empty objects, `[{},{},...]`: each is
// answered "400::Missing channel", a reply twenty times its size. (A hub
// refuses a frame of more than MaxBatch messages whole.)
func emptyMessages(n int) []byte {
	return []byte("[" + strings.Repeat("{},", n-1) + "{}]")
}

// flood writes frame n times on conn from a goroutine, until the
// connection fails, and returns the count of frames written so far; the
// goroutine ends with the connection at the latest.
func flood(conn *websocket.Conn, frame []byte, n int) *atomic.Int64 {
	var written atomic.Int64
	go func() {
		for range n {
			if conn.Write(context.Background(), websocket.MessageText, frame) != nil {
				return
			}
			written.Add(1)
		}
	}()
	return &written
}

// TestWebSocketPendingBytesBounded is issue 15's peer that sends frames
// of `[{},{},...]` and never reads: the server stops reading it once its
// replies reach MaxPendingBytes, instead of reading every frame and
// keeping their replies (twenty times their size) until the write
// timeout; another client on the same server is served meanwhile.
func TestWebSocketPendingBytesBounded(t *testing.T) {
	t.Parallel()
	const limit = 32 << 10
	const frames = 400
	s := wsStartSmallBufs(t, actors.Options{}, WebSocketOptions{MaxPendingBytes: limit})
	frame := emptyMessages(900) // 2.7 KiB, replies of 56 KiB
	msgs, err := protocol.Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	replies := size(s.hub.Submit(actors.RemoteRequest{Messages: msgs})(context.Background()))

	before := s.connSet()
	peer := wsDialSmallBufs(t, s)
	c := s.newest(t, before)
	written := flood(peer, frame, frames)
	// The reader stops: the replies of the frames it read are not written
	// (the peer does not read) and hold the limit.
	wsCheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if st := c.state(); !st.paused || st.pending < limit {
			return fmt.Errorf("reads not paused: %+v", st)
		}
		return nil
	})

	// Another client is served meanwhile.
	other := wsPeerDial(t, s)
	other.start()
	if r := other.call(10*time.Second, `{"channel":"/other","data":1,"id":"p","clientId":"`+other.id+`"}`); r["successful"] != true {
		t.Fatalf("publish of another client: %v", r)
	}

	st := c.state()
	t.Logf("peer wrote %d frames of %d bytes; the server read (and submitted) %d and holds %d bytes of replies (peak %d, one frame's replies %d, limit %d)",
		written.Load(), len(frame), st.frames, st.pending, st.peak, replies, limit)
	// Reading one frame whose replies go over the limit, the reader stops
	// until they are written: the connection never holds more than the
	// limit plus one frame's replies.
	if bound := limit + replies; st.peak > bound {
		t.Fatalf("the connection held %d bytes, over %d (limit %d + one frame's replies %d)", st.peak, bound, limit, replies)
	}
	if st.frames >= frames/2 {
		t.Fatalf("the server read %d of the %d frames of a peer that does not read", st.frames, frames)
	}
}

// TestWebSocketPendingBytesWriteTimeout: a peer that takes nothing is
// closed at the write timeout, with a log line that says why.
func TestWebSocketPendingBytesWriteTimeout(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	log := zerolog.New(logs)
	s := wsStartSmallBufs(t, actors.Options{}, WebSocketOptions{MaxPendingBytes: 16 << 10, WriteTimeout: 200 * time.Millisecond, Logger: &log})
	before := s.connSet()
	peer := wsDialSmallBufs(t, s)
	c := s.newest(t, before)
	flood(peer, emptyMessages(900), 100)
	wsCheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if s.connSet()[c] {
			return fmt.Errorf("still open: %+v", c.state())
		}
		return nil
	})
	const reason = "websocket closed: the peer took no output within the write timeout"
	var line struct {
		Level, Message, Remote string
		Pending                int64 `json:"pending_bytes"`
		Paused                 bool  `json:"reads_paused"`
	}
	for l := range bytes.SplitSeq(logs.Bytes(), []byte("\n")) {
		if json.Unmarshal(l, &line) == nil && line.Message == reason {
			break
		}
		line.Message = ""
	}
	if line.Message == "" || line.Level != "info" || line.Remote == "" || line.Pending == 0 || !line.Paused {
		t.Fatalf("no info line %q with the remote address, the bytes pending and the pause; logs:\n%s", reason, logs.Bytes())
	}
}

// syncBuffer is a bytes.Buffer for a logger written from several
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// TestWebSocketSlowReaderGetsEverything: a client that stops reading
// while messages pile up for it and its own requests wait, with pings due
// meanwhile, then reads again gets every reply and every delivery, in
// order, on the same connection: pushes refused at MaxPendingBytes stay in
// its session and come in its connect replies. No ping is answered while
// the server does not read, so the server must not take the missing pongs
// for a dead peer.
func TestWebSocketSlowReaderGetsEverything(t *testing.T) {
	t.Parallel()
	const limit = 16 << 10
	const published, requests = 1500, 20
	const pongTimeout = time.Second
	s := wsStartSmallBufs(t, actors.Options{PollTimeout: 500 * time.Millisecond},
		WebSocketOptions{MaxPendingBytes: limit, PingInterval: 10 * time.Millisecond, PongTimeout: pongTimeout})
	before := s.connSet()
	p := &wsPeer{t: t, conn: wsDialSmallBufs(t, s)}
	c := s.newest(t, before)
	p.start("/slow")

	// Stop reading, holding a connect as clients do; 1.5 MiB of messages
	// come for the client, more than the socket buffers and the limit.
	p.send(`{"channel":"/meta/connect","connectionType":"websocket","id":"c1","clientId":"` + p.id + `"}`)
	pad := strings.Repeat("x", 1024)
	for i := range published {
		if err := s.hub.Publish("/slow", map[string]any{"n": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	// Pushes are refused at the limit; the held connect's reply carries
	// what the session kept then, and the rest stays in the session for
	// the client's next connect. One more connect, sent without reading,
	// takes it (if the server still reads), so that the server's output
	// stays over the limit.
	wsCheckFor(t, 60*time.Second, time.Millisecond, func() error {
		if hs := s.hub.Stats(); hs.Delivered < published || hs.Held > 0 {
			return fmt.Errorf("%d delivered, %d queued, %d held in the session; connection %+v", hs.Delivered, hs.Queued, hs.Held, c.state())
		}
		return nil
	})
	p.send(`{"channel":"/meta/connect","connectionType":"websocket","id":"extra","clientId":"` + p.id + `"}`)
	wsCheckFor(t, 60*time.Second, time.Millisecond, func() error {
		if st := c.state(); st.pending < limit {
			return fmt.Errorf("connection %+v, hub %+v", st, s.hub.Stats())
		}
		return nil
	})
	// The client's requests, one frame each: the server reads the first
	// and stops; the others wait in the socket.
	for i := range requests {
		p.send(fmt.Sprintf(`{"channel":"/acks","id":"a%d","clientId":%q,"data":%d}`, i, p.id, i))
	}
	// More than a pong timeout long, the server sends no ping (one already
	// sent goes unanswered): pings are due every 10 ms.
	var paused wsConnState
	wsCheckFor(t, 60*time.Second, time.Millisecond, func() error {
		if paused = c.state(); !paused.paused {
			return fmt.Errorf("reads not paused: %+v", paused)
		}
		return nil
	})
	wsCheckFor(t, 60*time.Second, 5*time.Millisecond, func() error {
		st := c.state()
		if st.pauses != paused.pauses || !st.paused {
			return fmt.Errorf("reads resumed: %+v", st) // the peer reads nothing: they cannot
		}
		if want := paused.skippedPings + int(3*pongTimeout/(10*time.Millisecond)/2); st.skippedPings < want {
			return fmt.Errorf("%d pings skipped, want %d in one pause: %+v", st.skippedPings, want, st)
		}
		return nil
	})

	// Read again: every request answered once (replies to different frames
	// are written as they come: a held connect does not hold up later
	// replies), every message delivered once and in order; the client
	// answers each connect reply with a new connect, as clients do.
	acked := map[string]bool{}
	got, connects := 0, 1
	readCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(acked) < requests || got < published {
		_, data, err := p.conn.Read(readCtx)
		if err != nil {
			t.Fatalf("read after %d replies, %d deliveries: %v (state %+v)", len(acked), got, err, c.state())
		}
		var frame []map[string]any
		if err := json.Unmarshal(data, &frame); err != nil {
			t.Fatal(err)
		}
		for _, m := range frame {
			switch {
			case m["channel"] == "/meta/connect":
				if m["successful"] != true {
					t.Fatalf("connect: %v", m)
				}
				connects++
				p.send(fmt.Sprintf(`{"channel":"/meta/connect","connectionType":"websocket","id":"c%d","clientId":%q}`, connects, p.id))
			case m["channel"] == "/acks":
				id, _ := m["id"].(string)
				if m["successful"] != true || acked[id] {
					t.Fatalf("reply %v (answered before: %v)", m, acked[id])
				}
				acked[id] = true
			case m["channel"] == "/slow":
				if v := int(m["data"].(map[string]any)["n"].(float64)); v != got {
					t.Fatalf("delivery %d is message %d", got, v)
				}
				got++
			default:
				t.Fatalf("unexpected message %v", m)
			}
		}
	}
	st := c.state()
	t.Logf("%d requests answered, %d messages delivered in order; the server paused reads %d times, skipped %d pings, held at most %d bytes (limit %d); %d connects",
		requests, published, st.pauses, st.skippedPings, st.peak, limit, connects)
}

func TestWebSocketPushRefusedAtPendingBytes(t *testing.T) {
	t.Parallel()
	c := &wsConn{t: &WebSocket{opts: WebSocketOptions{MaxWriteQueue: 100, MaxPendingBytes: 100}}}
	msg := []byte(`{"channel":"/a","data":"` + strings.Repeat("x", 40) + `"}`) // 55 bytes
	for i := range 2 {
		if !c.push([][]byte{msg}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if c.push([][]byte{msg}) {
		t.Fatalf("push accepted holding %d bytes, limit 100", c.state().pending)
	}
	// Replies are queued whatever is held: the reader reads no more.
	connect := []byte(`{"channel":"/meta/connect","successful":true}`)
	c.reply([][]byte{msg, connect})
	if st := c.state(); st.pending != int64(3*len(msg)+len(connect)) || st.peak != st.pending {
		t.Fatalf("pending %d, peak %d", st.pending, st.peak)
	}
	c.markClosed()
	if st := c.state(); st.pending != 0 {
		t.Fatalf("pending %d after close", st.pending)
	}
}

// wsCheckFor calls fn every interval every until it returns nil, and
// fails the test with fn's last error once total has passed: total is a
// deadline against hanging, not a claim about speed.
func wsCheckFor(t testing.TB, total, every time.Duration, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, total, every, fn)
}

// TestWebSocketRefusedPushesTravelInHeldConnect reproduces the stall of
// the chat benchmark: pushes refused while a peer read slowly stayed in the
// session until the held /meta/connect's poll timeout (and every later
// push was refused until then, so that none overtook them), so a peer that
// caught up got nothing for up to the poll timeout. Now the held connect
// carries them at once: with a poll timeout of an hour, it is answered
// while the peer still reads nothing, and everything arrives once it
// reads, in connect replies while pushes are refused, then pushed again.
func TestWebSocketRefusedPushesTravelInHeldConnect(t *testing.T) {
	t.Parallel()
	const limit = 16 << 10
	const published = 1000 // 1 MiB: more than the socket buffers hold
	s := wsStartSmallBufs(t, actors.Options{PollTimeout: time.Hour},
		WebSocketOptions{MaxPendingBytes: limit, PingInterval: -1})
	before := s.connSet()
	p := &wsPeer{t: t, conn: wsDialSmallBufs(t, s)}
	c := s.newest(t, before)
	p.start("/stall")
	p.send(`{"channel":"/meta/connect","connectionType":"websocket","id":"c1","clientId":"` + p.id + `"}`)
	pad := strings.Repeat("x", 1024)
	for i := range published {
		if err := s.hub.Publish("/stall", map[string]any{"n": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	// The old transport kept the connect held, and the refused messages in
	// the session, until the poll timeout.
	wsCheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if hs := s.hub.Stats(); hs.Delivered < published || hs.Held > 0 {
			return fmt.Errorf("%d delivered, %d queued, %d held in the session; connection %+v", hs.Delivered, hs.Queued, hs.Held, c.state())
		}
		return nil
	})
	// Once caught up, live messages flow again, pushed or in connect
	// replies, without waiting for a poll timeout.
	readCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, connects, live := 0, 1, false
	for got < published+10 {
		if got == published && !live {
			live = true
			for i := range 10 {
				if err := s.hub.Publish("/stall", map[string]any{"n": published + i}); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, data, err := p.conn.Read(readCtx)
		if err != nil {
			t.Fatalf("read after %d deliveries: %v (state %+v, hub %+v)", got, err, c.state(), s.hub.Stats())
		}
		var frame []map[string]any
		if err := json.Unmarshal(data, &frame); err != nil {
			t.Fatal(err)
		}
		for _, m := range frame {
			switch m["channel"] {
			case "/meta/connect":
				if m["successful"] != true {
					t.Fatalf("connect: %v", m)
				}
				connects++
				p.send(fmt.Sprintf(`{"channel":"/meta/connect","connectionType":"websocket","id":"c%d","clientId":%q}`, connects, p.id))
			case "/stall":
				if v := int(m["data"].(map[string]any)["n"].(float64)); v != got {
					t.Fatalf("delivery %d is message %d", got, v)
				}
				got++
			default:
				t.Fatalf("unexpected message %v", m)
			}
		}
	}
	t.Logf("%d messages delivered in order with %d connects; the connection held at most %d bytes (limit %d)", got, connects, c.state().peak, limit)
}
