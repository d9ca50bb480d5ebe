package transport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// wsConn is one WebSocket connection. An idle connection has one
// goroutine, its reader, which reads frames in order and submits them to
// the hub. The writer is started when there is something to write and
// ends when the queue is empty; pings are sent from a timer; replies that
// are awaited (a held /meta/connect) come back through Hub.SubmitFunc's
// callback, on the session's goroutine. So a held connection costs its
// reader's stack, a 1 KiB read buffer and the structures below.
type wsConn struct {
	t      *WebSocket
	ws     *websocket.Conn
	remote string
	header http.Header     // the upgrade request's: its Authorization, for hooks
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc

	mu     sync.Mutex
	queue  [][]byte // encoded messages to write, in order
	spare  [][]byte // the batch written last, emptied: the next queue
	pushed int      // pushed messages in queue, bounded by MaxWriteQueue
	// awaited counts the submitted requests whose replies are not queued
	// yet; the reader submits no more while there are MaxInFlight.
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
	// writing is set while a writer goroutine runs (writers counts it, for
	// serve to wait on); closing once Close asked for a flush and a close
	// with 1001.
	writing bool
	closing bool
	writers sync.WaitGroup
	// The writer lingers for writerLinger once the queue is empty, so that
	// a connection with steady output keeps one writer rather than
	// starting one per message (each one's stack grows anew): lingering is
	// set meanwhile and enqueue wakes it; written says that it wrote since
	// its linger timer was armed.
	lingering bool
	written   bool
	wake      chan struct{} // capacity 1
	linger    *time.Timer

	// The pinger's state: ping is set while a ping's pong is awaited,
	// pingPauses is the count of pauses when it was sent, pingGen tells
	// a timer that fires late that it was reset meanwhile.
	pingTimer  *time.Timer
	ping       bool
	pingPauses int
	pingGen    uint64

	room    chan struct{} // pending, reading or awaited went down (capacity 1)
	flushed chan struct{} // the writer went idle or a reply came (capacity 1)

	// sock, for a connection without permessage-deflate, frames and
	// writes everything itself (wsframe.go); with deflate, gorilla's
	// writer does. partial is the part of pending that a push written at
	// once (wsSocket.tryWrite) left for the writer.
	sock    *wsSocket
	partial int64
}

func newWSConn(t *WebSocket, ws *websocket.Conn, remote string, header http.Header, deflate bool) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{t: t, ws: ws, remote: remote, header: header, ctx: ctx, cancel: cancel,
		room: make(chan struct{}, 1), flushed: make(chan struct{}, 1)}
	if deflate {
		ws.SetReadLimit(t.opts.MaxBody)
		return c
	}
	// Nothing is written to the socket but through sock: gorilla's
	// answers to pings and close frames go through it too, and its own
	// read limit (which would write a close frame itself) is off: readFrame
	// bounds every frame by MaxBody.
	c.sock = newWSSocket(ws.NetConn())
	ws.SetPingHandler(func(data string) error {
		err := c.sock.writeControl(websocket.PongMessage, []byte(data), c.t.opts.WriteTimeout)
		if err != nil && !errors.Is(err, errSocketClosed) {
			return err
		}
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		var msg []byte
		if code != websocket.CloseNoStatusReceived {
			msg = websocket.FormatCloseMessage(code, "")
		}
		_ = c.sock.writeControl(websocket.CloseMessage, msg, time.Second)
		return nil
	})
	return c
}

// writeClose sends a close frame with code and reason.
func (c *wsConn) writeClose(code int, reason string, timeout time.Duration) {
	msg := websocket.FormatCloseMessage(code, reason)
	if c.sock != nil {
		_ = c.sock.writeControl(websocket.CloseMessage, msg, timeout)
		return
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(timeout))
}

// serve runs the connection until it ends, then cleans up.
func (c *wsConn) serve() {
	c.ws.SetPongHandler(func(string) error {
		c.pong()
		return nil
	})
	c.startPings()
	c.reader()

	// Refuse further pushes (from now on the session keeps its messages),
	// abandon held connects (their messages stay queued in the session:
	// cancel makes SubmitFunc give up), stop the writer and the pings.
	c.markClosed()
	c.cancel()
	c.stopPings()
	_ = c.ws.Close() // a writer blocked in a write returns
	c.writers.Wait()
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
	c.notify(c.flushed)
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
// (pending output and frames in flight) and fewer than MaxInFlight
// requests are awaited, so that the reader may read the next frame; false
// when the connection ended meanwhile.
func (c *wsConn) waitRoom() bool {
	for {
		c.mu.Lock()
		full := c.pending+c.reading >= c.t.opts.MaxPendingBytes
		if !full && c.awaited < c.t.opts.MaxInFlight {
			c.paused = false
			c.mu.Unlock()
			return true
		}
		if full && !c.paused {
			c.paused = true
			c.pauses++
		}
		c.mu.Unlock()
		select {
		case <-c.room:
		case <-c.ctx.Done():
			return false
		}
	}
}

// notify sends on a channel of capacity 1 without blocking; c.mu is held.
func (c *wsConn) notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// reader reads frames in order and submits each to the hub, pausing while
// the connection holds MaxPendingBytes or MaxInFlight requests.
func (c *wsConn) reader() {
	for {
		if !c.waitRoom() {
			return
		}
		typ, data, err := c.readFrame()
		if errors.Is(err, errFrameTooBig) {
			c.t.log.Debug().Str("remote", c.remote).Int64("max_body", c.t.opts.MaxBody).Msg("websocket frame too big (inflated)")
			c.writeClose(websocket.CloseMessageTooBig, "message too big", time.Second)
			return
		}
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
				c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("websocket read")
			}
			return
		}
		if typ != websocket.TextMessage {
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
		cost := int64(len(data)) + wsReplyCost*int64(len(msgs))
		c.mu.Lock()
		c.frames++
		c.awaited++
		c.reading += cost
		c.mu.Unlock()
		// SubmitFunc hands the messages to their sessions now, so the next
		// frame's messages come after them even though this frame's
		// replies may be awaited for a while (a held /meta/connect); the
		// replies come back on the session's goroutine, or on this one.
		c.t.hub.SubmitFunc(c.ctx, actors.RemoteRequest{
			Messages:   msgs,
			RemoteAddr: c.remote,
			Header:     c.header,
			// No BrowserID: a WebSocket does not take one of the browser's
			// HTTP connections, so its held connect must not count against
			// the browser's long polls (MaxSessionsPerBrowser).
			Push: c.push,
		}, func(parts [][]byte) { c.answer(parts, cost) })
	}
}

// errFrameTooBig is a compressed frame that inflates past MaxBody.
var errFrameTooBig = errors.New("websocket frame over MaxBody once inflated")

// readFrame reads the next message whole. The library's read limit
// (MaxBody) counts the bytes on the wire; with permessage-deflate a small
// frame may inflate to any size, so what is read is bounded again here.
func (c *wsConn) readFrame() (int, []byte, error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return typ, nil, err
	}
	limit := c.t.opts.MaxBody
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(data)) > limit {
		return typ, nil, errFrameTooBig
	}
	return typ, data, err
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
	if c.sock != nil && (!c.writing || c.lingering) && len(c.queue) == 0 && c.partial == 0 && c.writeNow(msgs) {
		return true
	}
	c.enqueue(msgs)
	c.pushed += len(msgs)
	return true
}

// writeNow writes msgs as one frame from the caller's goroutine (the
// session's) when the socket takes it without waiting: one goroutine
// wake-up less per delivery. A frame the socket takes in part is finished
// by the writer. False when nothing was written; c.mu is held and no
// writer is writing (none runs, or it lingers).
func (c *wsConn) writeNow(msgs [][]byte) bool {
	n := 1 + len(msgs)
	for _, m := range msgs {
		n += len(m)
	}
	if n > int(c.t.opts.MaxBody) && len(msgs) > 1 {
		return false // the writer splits it
	}
	bp := framePool.Get().(*[]byte)
	frame := appendTextFrame((*bp)[:0], msgs)
	done, started := c.sock.tryWrite(frame)
	if cap(frame) <= maxPooledFrame {
		*bp = frame[:0]
		framePool.Put(bp)
	}
	if !done {
		return false
	}
	if started {
		rest := int64(c.sock.pendingPartial())
		c.partial += rest
		c.pending += rest
		c.peak = max(c.peak, c.pending)
		c.startWriter()
	}
	return true
}

// enqueue appends msgs to the write queue, counts their bytes and starts
// the writer if it is not running; c.mu is held.
func (c *wsConn) enqueue(msgs [][]byte) {
	if c.queue == nil && c.spare != nil {
		c.queue, c.spare = c.spare, nil
	}
	c.queue = append(c.queue, msgs...)
	c.pending += size(msgs)
	c.peak = max(c.peak, c.pending)
	c.startWriter()
}

// startWriter wakes the writer, or starts it; c.mu is held.
func (c *wsConn) startWriter() {
	switch {
	case c.lingering:
		c.notify(c.wake)
	case !c.writing && c.ws != nil:
		c.writing = true
		c.writers.Add(1)
		go c.writer()
	}
}

// reply queues the replies to a frame that could not be read.
func (c *wsConn) reply(parts [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queueReplies(parts)
}

// answer queues the replies of a submitted request that counted cost
// against MaxPendingBytes while they were awaited; nil parts when the
// connection ended first.
func (c *wsConn) answer(parts [][]byte, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaited--
	c.reading -= cost
	c.notify(c.room)
	c.notify(c.flushed)
	c.queueReplies(parts)
}

// queueReplies queues replies; c.mu is held. Replies are not bounded by
// MaxWriteQueue nor refused at MaxPendingBytes: there are at most
// MaxInFlight requests awaiting them, and the reader reads no more while
// the connection holds MaxPendingBytes.
func (c *wsConn) queueReplies(parts [][]byte) {
	if c.closed || len(parts) == 0 {
		return
	}
	if c.backlogged && hasDelivery(parts) {
		c.backlogged = false // the session's backlog is in this reply
	}
	c.enqueue(parts)
}

// replyError answers a frame that could not be read with a Bayeux 400.
func (c *wsConn) replyError(pe *protocol.Error) {
	c.t.log.Debug().Str("remote", c.remote).Str("error", pe.Error()).Msg("bad frame")
	c.reply([][]byte{errorMessage(pe)})
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

// writerLinger is how long a writer waits for more output once the queue
// is empty, before it ends.
const writerLinger = time.Second

// writer writes the queue until it has been empty for writerLinger,
// batching everything queued into as few frames as MaxBody allows, then
// ends.
func (c *wsConn) writer() {
	defer c.writers.Done()
	for {
		c.mu.Lock()
		items := c.queue
		if len(items) == 0 && c.partial == 0 && !c.closed && c.waitOutput() {
			items = c.queue
		}
		if c.closed || len(items) == 0 && c.partial == 0 {
			c.writing = false
			c.notify(c.flushed)
			c.mu.Unlock()
			return
		}
		c.queue, c.pushed = nil, 0
		c.written = true
		c.mu.Unlock()
		err := c.write(items)
		c.mu.Lock()
		if cap(items) <= 2*c.t.opts.MaxWriteQueue {
			c.spare = items[:0] // write cleared it
		}
		c.mu.Unlock()
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// waitOutput lingers until something is queued (true) or nothing has been
// for writerLinger, or the connection ends (false); c.mu is held, and
// released while it waits. The linger timer is armed once and re-armed
// when it fires after a write, not at every write.
func (c *wsConn) waitOutput() bool {
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	if c.linger == nil {
		c.linger = time.NewTimer(writerLinger)
	}
	c.notify(c.flushed) // idle now: Close may go on
	for {
		c.lingering = true
		c.mu.Unlock()
		expired := false
		select {
		case <-c.wake:
		case <-c.linger.C:
			expired = true
		case <-c.ctx.Done():
		}
		c.mu.Lock()
		c.lingering = false
		switch {
		case len(c.queue) > 0 || c.partial > 0:
			return true
		case c.closed || c.ctx.Err() != nil || c.closing:
			return false
		case expired && !c.written:
			c.linger.Reset(writerLinger) // armed for the next writer
			return false
		case expired:
			c.written = false
			c.linger.Reset(writerLinger)
		}
	}
}

// writeFailed closes the connection after a write error.
func (c *wsConn) writeFailed(err error) {
	c.mu.Lock()
	pending, paused := c.pending, c.paused
	c.writing = false
	c.mu.Unlock()
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		// No close frame can be written: the peer's receive window is
		// what is full.
		c.t.log.Info().Str("remote", c.remote).Int64("pending_bytes", pending).Bool("reads_paused", paused).
			Dur("write_timeout", c.t.opts.WriteTimeout).
			Msg("websocket closed: the peer took no output within the write timeout")
	case !errors.Is(err, net.ErrClosed) && !errors.Is(err, websocket.ErrCloseSent) && !errors.Is(err, errSocketClosed):
		c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("websocket write")
	}
	c.markClosed()
	c.cancel()
	_ = c.ws.Close()
}

var (
	frameOpen  = []byte{'['}
	frameComma = []byte{','}
	frameClose = []byte{']'}
)

// write writes items as JSON arrays, each frame at most MaxBody bytes
// unless one message alone is larger, and counts each frame's messages
// out of pending once it is written; it clears items.
func (c *wsConn) write(items [][]byte) error {
	if c.sock != nil {
		return c.writeSock(items)
	}
	limit := int(c.t.opts.MaxBody)
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout)); err != nil {
		return err
	}
	for i := 0; i < len(items); {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		_, _ = w.Write(frameOpen)
		n, framed, written := 0, 1, 0
		for i < len(items) && (n == 0 || framed+len(items[i])+2 <= limit) {
			if n > 0 {
				_, _ = w.Write(frameComma)
				framed++
			}
			_, _ = w.Write(items[i])
			framed += len(items[i])
			written += len(items[i])
			items[i] = nil
			i++
			n++
		}
		_, _ = w.Write(frameClose)
		if err := w.Close(); err != nil {
			return err
		}
		c.mu.Lock()
		c.pending -= int64(written)
		c.notify(c.room)
		c.mu.Unlock()
	}
	return nil
}

// writeSock is write through sock: every frame of items in one buffer,
// written in one call after the rest of a frame writeNow began.
func (c *wsConn) writeSock(items [][]byte) error {
	limit := int(c.t.opts.MaxBody)
	bp := framePool.Get().(*[]byte)
	buf := (*bp)[:0]
	written := 0
	for i := 0; i < len(items); {
		j, framed := i, 1
		for j < len(items) && (j == i || framed+len(items[j])+1 <= limit) {
			framed += len(items[j]) + 1
			written += len(items[j])
			j++
		}
		buf = appendTextFrame(buf, items[i:j])
		i = j
	}
	clear(items)
	c.mu.Lock()
	partial := c.partial
	c.mu.Unlock()
	err := c.sock.write(buf, c.t.opts.WriteTimeout)
	if cap(buf) <= maxPooledFrame {
		*bp = buf[:0]
		framePool.Put(bp)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.partial -= partial
	c.pending -= int64(written) + partial
	c.notify(c.room)
	c.mu.Unlock()
	return nil
}

// shutdown writes what is queued and the replies still awaited, for up to
// closeGrace, then closes the connection with 1001; the reader sees it
// end and cleans up.
func (c *wsConn) shutdown() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if c.lingering {
		c.notify(c.wake) // the writer ends rather than lingers
	}
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.writers.Add(1)
	c.mu.Unlock()
	go c.closeGracefully()
}

// closeGrace bounds how long Close waits for a connection's awaited
// replies (connects the hub has just answered while draining).
const closeGrace = 2 * time.Second

func (c *wsConn) closeGracefully() {
	defer c.writers.Done()
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	for {
		c.mu.Lock()
		done := c.closed || (!c.writing || c.lingering) && len(c.queue) == 0 && c.awaited == 0
		c.mu.Unlock()
		if done {
			break
		}
		select {
		case <-c.flushed:
			continue
		case <-grace.C:
		case <-c.ctx.Done():
		}
		break
	}
	c.writeClose(websocket.CloseGoingAway, "server shutting down", c.t.opts.WriteTimeout)
}

// startPings arms the ping timer: every PingInterval the peer is pinged,
// and a pong must come back within PongTimeout or the connection is
// closed. No ping is sent while output is pending or reads are paused, and
// a ping sent before is forgiven its late pong: the write timeout watches
// the peer then, the ping's frame may wait in the socket as any frame may,
// and its pong is not read while reads are paused.
func (c *wsConn) startPings() {
	if c.t.opts.PingInterval < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.pingGen
	c.pingTimer = time.AfterFunc(c.t.opts.PingInterval, func() { c.pingDue(gen) })
}

// stopPings stops the ping timer.
func (c *wsConn) stopPings() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pingGen++
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
}

// rearm sets the ping timer to fire after d; c.mu is held.
func (c *wsConn) rearm(d time.Duration) {
	c.pingGen++
	gen := c.pingGen
	c.pingTimer = time.AfterFunc(d, func() { c.pingDue(gen) })
}

// pingDue runs when the ping timer fires: it pings, or closes the
// connection of a peer whose pong is late.
func (c *wsConn) pingDue(gen uint64) {
	c.mu.Lock()
	if c.closed || gen != c.pingGen {
		c.mu.Unlock()
		return
	}
	busy := c.paused || c.pending > 0
	if c.ping { // the pong is late
		if busy || c.pauses != c.pingPauses {
			c.ping = false // forgiven: see startPings
			c.rearm(c.t.opts.PingInterval)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.noPong(errors.New("no pong within the pong timeout"))
		return
	}
	if busy {
		c.skippedPings++
		c.rearm(c.t.opts.PingInterval)
		c.mu.Unlock()
		return
	}
	c.ping, c.pingPauses = true, c.pauses
	c.rearm(c.t.opts.PongTimeout)
	c.writers.Add(1) // serve waits for the ping's write
	c.mu.Unlock()
	defer c.writers.Done()
	var err error
	if c.sock != nil {
		err = c.sock.writeControl(websocket.PingMessage, nil, c.t.opts.WriteTimeout)
	} else {
		err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.opts.WriteTimeout))
	}
	if err != nil {
		c.noPong(err)
	}
}

// pong records the peer's pong; the next ping is due a PingInterval later.
func (c *wsConn) pong() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ping || c.closed {
		return
	}
	c.ping = false
	c.pingTimer.Stop()
	c.rearm(c.t.opts.PingInterval)
}

// noPong closes the connection of a peer that did not answer a ping.
func (c *wsConn) noPong(err error) {
	c.t.log.Debug().Err(err).Str("remote", c.remote).Msg("no pong: closing websocket")
	c.cancel()
	_ = c.ws.Close()
}
