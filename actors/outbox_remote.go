package actors

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// remoteOutbox is a remote client's outbound side: the queue of encoded
// messages, the held /meta/connect that carries them, the pushing
// transport that takes them as they come (WebSocket), the CometD ack
// extension's unacknowledged messages, and the queue limit. It is part of
// its session and used on the session's goroutine only.
type remoteOutbox struct {
	s     *session
	queue [][]byte // encoded messages waiting for a connect
	// bytes is the size of queue and unacked together, counted against
	// Options.MaxSessionBytes, the address's MaxBytesPerIP and the hub's
	// MaxTotalBytes (see addBytes).
	bytes int

	held        *batchJob // the batch whose /meta/connect is held
	heldGen     uint64
	heldTimer   *time.Timer
	heldBrowser string // BAYEUX_BROWSER id whose one long poll this is

	// The CometD ack extension (ref.ack): messages sent in connect replies
	// stay in unacked until the client acknowledges their batch.
	unacked []sentMsg
	batch   int64

	// pusher, when set, takes deliveries as they come (WebSocket); one is
	// the slice a single delivery is pushed in (the pusher copies it).
	pusher func([][]byte) bool
	one    [1][]byte
	// inbox counts the deliveries waiting in the session's mailbox: one is
	// pushed alone only when none waits behind it.
	inbox *inbox

	connected      bool // a first connect has been answered
	flushScheduled bool
	draining       bool
}

// sentMsg is a message sent in a connect reply and not yet acknowledged.
type sentMsg struct {
	wire  []byte
	batch int64
}

func (o *remoteOutbox) deliver(ctx actor.Context, _ *subscription, m *Message) {
	o.enqueue(ctx, m.wireJSON())
}

// close forgets what is queued; held connects are answered by the
// session's stopping.
func (o *remoteOutbox) close() {
	if n := len(o.queue) + len(o.unacked); n > 0 {
		o.s.logger().Info().Int("undelivered", n).Msg("session ended with undelivered messages")
	}
	o.s.hub.stats.queued.Add(-int64(len(o.queue)))
	o.addBytes(-o.bytes)
	o.queue, o.unacked = nil, nil
}

// addBytes counts n more bytes (or fewer, when negative) kept for the
// client, for the session, its address and the hub.
func (o *remoteOutbox) addBytes(n int) {
	if n == 0 {
		return
	}
	o.bytes += n
	o.s.hub.stats.bytes.Add(int64(n))
	if a := o.s.ref.addr; a != nil {
		a.bytes.Add(int64(n))
	}
}

// full reports whether one more message of size n goes over a limit: the
// session's message count or bytes, or its address's bytes.
func (o *remoteOutbox) full(n int) bool {
	opts := &o.s.hub.opts
	switch {
	case opts.MaxQueue > 0 && len(o.queue)+len(o.unacked) >= opts.MaxQueue:
		return true
	case opts.MaxSessionBytes > 0 && o.bytes+n > opts.MaxSessionBytes && o.bytes > 0:
		return true
	}
	a := o.s.ref.addr
	return a != nil && opts.MaxBytesPerIP > 0 && a.bytes.Load()+int64(n) > int64(opts.MaxBytesPerIP) && o.bytes > 0
}

// hold answers a batch's /meta/connect at once or holds it until there is
// something to deliver or the poll timeout passes.
func (o *remoteOutbox) hold(ctx actor.Context, j *batchJob) {
	s := o.s
	first := !o.connected
	o.connected = true
	if o.held != nil { // one held connect per client: the older one returns, empty
		o.answerHeld(false)
	}
	o.pushQueue() // a pushing transport sends deliveries on their own
	if first || len(o.queue) > 0 || len(o.unacked) > 0 || o.draining || j.connTimeout <= 0 {
		j.connect.Successful = true
		o.send(j, o.takeQueue(), true)
		s.ref.idleSince.Store(time.Now().UnixNano())
		return
	}
	if id := j.b.browser; id != "" {
		if !s.hub.holdBrowser(id) {
			// Another client (tab) of this browser holds a long poll: poll
			// instead of holding, as the spec's multiple-clients section says.
			a := s.hub.connectAdvice()
			a.Interval = protocol.Int(s.hub.opts.MultiSessionInterval.Milliseconds())
			a.MultipleClients = true
			j.connect.Successful, j.connect.Advice = true, a
			o.send(j, nil, true)
			s.ref.idleSince.Store(time.Now().UnixNano())
			return
		}
		o.heldBrowser = id
	}
	o.held = j
	s.hub.stats.held.Add(1)
	o.heldGen++
	gen, self, root := o.heldGen, ctx.Self(), s.hub.root
	o.heldTimer = time.AfterFunc(j.connTimeout, func() { root.Send(self, pollTimeout{gen: gen}) })
	s.ref.idleSince.Store(0)
}

// pollTimeout answers the held connect of generation gen, if it is still
// held, with what is queued.
func (o *remoteOutbox) pollTimeout(gen uint64) {
	if o.held != nil && gen == o.heldGen {
		o.pushQueue() // a pushing transport takes the queue first, in order
		o.answerHeld(true)
	}
}

// drain answers the held connect at once, with advice to come back
// later, and holds no connect from now on.
func (o *remoteOutbox) drain() {
	o.draining = true
	if o.held != nil {
		o.held.connect.Advice = o.s.hub.connectAdvice()
		o.pushQueue()
		o.answerHeld(true)
	}
}

// pushChunk bounds the bytes of one push (but for a single larger
// message): the transport refuses pushes once it holds its limit
// (WebSocketOptions.MaxPendingBytes), so a session's backlog is handed
// over in chunks, and what the transport holds goes over its limit by one
// chunk at most.
const pushChunk = 32 << 10

// pushQueue hands the queue to the pushing transport, if there is one, in
// chunks until it refuses one or the queue is empty.
func (o *remoteOutbox) pushQueue() {
	for o.pusher != nil && len(o.queue) > 0 {
		n, size := 0, 0
		for n < len(o.queue) && (n == 0 || size+len(o.queue[n]) <= pushChunk) {
			size += len(o.queue[n])
			n++
		}
		if !o.pusher(o.queue[:n]) {
			return
		}
		if n == len(o.queue) {
			o.takeQueue()
			return
		}
		clear(o.queue[:n])
		o.queue = o.queue[n:]
		o.s.hub.stats.queued.Add(-int64(n))
		o.addBytes(-size)
	}
}

// flush sends what is queued: through the push transport when there is
// one, else in the held connect.
func (o *remoteOutbox) flush() {
	o.flushScheduled = false
	if len(o.queue) == 0 {
		return
	}
	if o.pusher != nil {
		o.pushQueue()
		if len(o.queue) == 0 {
			return
		}
		// The pushing transport refused them (its write queue is full or
		// its peer reads slowly): the held connect carries them now, as on
		// long-polling, rather than at its poll timeout. Until that reply
		// is written the transport refuses pushes, so nothing overtakes it.
	}
	if o.held != nil {
		o.answerHeld(true)
	}
}

// unhold forgets the held connect without answering it.
func (o *remoteOutbox) unhold() *batchJob {
	j := o.held
	o.held = nil
	o.s.hub.stats.held.Add(-1)
	if o.heldTimer != nil {
		o.heldTimer.Stop()
		o.heldTimer = nil
	}
	if o.heldBrowser != "" {
		o.s.hub.releaseBrowser(o.heldBrowser)
		o.heldBrowser = ""
	}
	o.s.ref.idleSince.Store(time.Now().UnixNano())
	return j
}

// answerHeld completes the held connect, with everything queued when
// withQueue is set.
func (o *remoteOutbox) answerHeld(withQueue bool) {
	j := o.unhold()
	j.connect.Successful = true
	var q [][]byte
	if withQueue {
		q = o.takeQueue()
	}
	o.send(j, q, withQueue)
}

// stopHeld answers the held connect, if any, as the session ends: with
// err, or successfully with advice when the client was told to go away
// (advice reconnect "none") and no error.
func (o *remoteOutbox) stopHeld(err *protocol.Error, advice *protocol.Advice) {
	if o.held == nil {
		return
	}
	j := o.unhold()
	if err == nil && advice != nil && advice.Reconnect == protocol.ReconnectNone {
		j.connect.Successful = true
		j.connect.Advice = advice
	} else {
		if err == nil {
			err = protocol.ErrUnknownClient(o.s.ref.id)
		}
		j.connect.Fail(err)
	}
	o.send(j, o.takeQueue(), true)
}

// send delivers a batch's result: its replies, the deliveries, and the
// connect reply last. With the ack extension, a connect reply carries every
// unacknowledged message and the batch number the client acknowledges
// with its next connect.
func (o *remoteOutbox) send(j *batchJob, deliveries [][]byte, resend bool) {
	if j.connect != nil && j.connect.Successful && o.s.ref.ack {
		if resend {
			deliveries = o.sendBatch(deliveries)
		}
		j.connect.Ext = json.RawMessage(`{"ack":` + strconv.FormatInt(o.batch, 10) + `}`)
	}
	res := &batchResult{replies: j.out, deliveries: deliveries}
	if j.connect != nil {
		res.tail = [][]byte{j.connect.AppendJSON(make([]byte, 0, 160))}
	}
	if !j.b.answer(res) {
		o.requeue(res.deliveries)
	}
}

// requeue puts back at the head of the queue the deliveries of an answer
// nobody took (its request went away); with the ack extension they are
// still in unacked, to be sent again.
func (o *remoteOutbox) requeue(deliveries [][]byte) {
	if len(deliveries) == 0 || o.s.ref.ack {
		return
	}
	o.queue = append(deliveries, o.queue...)
	o.s.hub.stats.queued.Add(int64(len(deliveries)))
	o.addBytes(sizeOf(deliveries))
}

// sendBatch moves fresh messages to unacked under a new batch number and
// returns every unacknowledged message, oldest first.
func (o *remoteOutbox) sendBatch(fresh [][]byte) [][]byte {
	if len(fresh) == 0 && len(o.unacked) == 0 {
		return nil
	}
	o.batch++
	kept := 0
	for _, w := range fresh {
		o.unacked = append(o.unacked, sentMsg{wire: w, batch: o.batch})
		kept += len(w)
	}
	o.addBytes(kept)
	out := make([][]byte, len(o.unacked))
	for i, m := range o.unacked {
		out[i] = m.wire
	}
	return out
}

// acknowledge drops the messages of every batch up to and including n.
func (o *remoteOutbox) acknowledge(n int64) {
	i := 0
	for i < len(o.unacked) && o.unacked[i].batch <= n {
		i++
	}
	if i > 0 {
		freed := 0
		for _, m := range o.unacked[:i] {
			freed += len(m.wire)
		}
		o.addBytes(-freed)
		o.unacked = append(o.unacked[:0:0], o.unacked[i:]...)
	}
}

func (o *remoteOutbox) takeQueue() [][]byte {
	q := o.queue
	o.queue = nil
	o.s.hub.stats.queued.Add(-int64(len(q)))
	o.addBytes(-sizeOf(q))
	return q
}

func sizeOf(msgs [][]byte) int {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n
}

// abandon handles a request that went away: a held connect is dropped with
// the queue kept; a result already sent but not read is taken back (with
// the ack extension it is still in unacked, to be sent again).
func (o *remoteOutbox) abandon(b *remoteBatch) {
	b.abandoned = true
	if o.held != nil && o.held.b == b {
		o.unhold()
		return
	}
	if b.result == nil {
		return // answered through notify: the transport has it
	}
	select {
	case res := <-b.result:
		o.requeue(res.deliveries)
	default:
	}
}

// enqueue adds an encoded message for the client and schedules a flush of
// a held connect. The flush is a message to self, so deliveries already in
// the mailbox join the same response. At Options.MaxQueue the queue policy
// applies.
func (o *remoteOutbox) enqueue(ctx actor.Context, wire []byte) {
	for o.full(len(wire)) {
		if !o.s.overflow(ctx, o.dropOldest) {
			return
		}
	}
	if o.pusher != nil && len(o.queue) == 0 && o.inbox.waiting.Load() == 0 {
		// Nothing waits before it nor behind it: the pushing transport
		// takes it now, without a flushNow round trip through the mailbox.
		// With deliveries behind it, it is queued and they are pushed
		// together by the flushNow that follows them (see inbox). Refused,
		// it is queued.
		o.one[0] = wire
		ok := o.pusher(o.one[:])
		o.one[0] = nil
		if ok {
			return
		}
	}
	o.queue = append(o.queue, wire)
	o.s.hub.stats.queued.Add(1)
	o.addBytes(len(wire))
	if (o.held != nil || o.pusher != nil) && !o.flushScheduled {
		o.flushScheduled = true
		ctx.Send(ctx.Self(), flushNow{})
	}
}

// dropOldest drops the oldest unacknowledged or queued message; it
// reports whether there was one.
func (o *remoteOutbox) dropOldest() bool {
	switch {
	case len(o.unacked) > 0:
		o.addBytes(-len(o.unacked[0].wire))
		o.unacked = o.unacked[1:]
	case len(o.queue) > 0:
		o.addBytes(-len(o.queue[0]))
		o.queue[0] = nil
		o.queue = o.queue[1:]
		o.s.hub.stats.queued.Add(-1)
	default:
		return false
	}
	return true
}
