package actors

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds the session's outbound side: the queue, the held
// /meta/connect, the CometD ack extension and the queue limit.

// sentMsg is a message sent in a connect reply and not yet acknowledged.
type sentMsg struct {
	wire  []byte
	batch int64
}

// connectMsg validates a /meta/connect; it is answered or held when the
// batch ends, so that the batch's other replies travel with it.
func (s *session) connectMsg(j *job, m *protocol.Message) {
	switch {
	case m.ConnectionType == "":
		s.fail(j, m, protocol.ErrBadRequest("Missing connectionType"))
		return
	case !s.hub.servesType(m.ConnectionType):
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: []string{m.ConnectionType}, Message: "Unsupported connection type"}
		s.fail(j, m, e)
		return
	}
	if s.ref.ack {
		s.acknowledge(ackOf(m.Ext))
	}
	if j.connect != nil { // two connects in one batch: the first is answered now
		j.connect.Successful = true
		j.out = append(j.out, j.connect.AppendJSON(nil))
	}
	r := protocol.ReplyTo(m)
	r.ClientID = s.ref.id
	r.Advice = s.hub.connectAdvice()
	j.connect = r
	j.connTimeout = s.hub.opts.PollTimeout
	if m.Advice != nil && m.Advice.Timeout != nil {
		j.connTimeout = min(j.connTimeout, time.Duration(max(*m.Advice.Timeout, 0))*time.Millisecond)
	}
}

// finish answers a remote batch, or holds its connect.
func (s *session) finish(ctx actor.Context, j *job) {
	if j.connect == nil || j.b.abandoned {
		s.send(j, nil, false)
		return
	}
	if j.disconnected {
		j.connect.Fail(protocol.ErrUnknownClient(s.ref.id))
		j.out = append(j.out, j.connect.AppendJSON(nil))
		j.connect = nil
		s.send(j, nil, false)
		return
	}
	first := !s.connected
	s.connected = true
	if s.held != nil { // one held connect per client: the older one returns, empty
		s.answerHeld(false)
	}
	s.pushQueue() // a pushing transport sends deliveries on their own
	if first || len(s.queue) > 0 || len(s.unacked) > 0 || s.draining || j.connTimeout <= 0 {
		j.connect.Successful = true
		s.send(j, s.takeQueue(), true)
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
			s.send(j, nil, true)
			s.ref.idleSince.Store(time.Now().UnixNano())
			return
		}
		s.heldBrowser = id
	}
	s.held = j
	s.hub.stats.held.Add(1)
	s.heldGen++
	gen, self, root := s.heldGen, ctx.Self(), s.hub.root
	s.heldTimer = time.AfterFunc(j.connTimeout, func() { root.Send(self, pollTimeout{gen: gen}) })
	s.ref.idleSince.Store(0)
}

// pushQueue hands the queue to the pushing transport, if there is one and
// it takes it.
func (s *session) pushQueue() {
	if s.pusher != nil && len(s.queue) > 0 && s.pusher(s.queue) {
		s.takeQueue()
	}
}

// flush sends what is queued: through the push transport when there is
// one, else in the held connect.
func (s *session) flush() {
	if len(s.queue) == 0 {
		return
	}
	if s.pusher != nil {
		s.pushQueue()
		return
	}
	if s.held != nil {
		s.answerHeld(true)
	}
}

// unhold forgets the held connect without answering it.
func (s *session) unhold() *job {
	j := s.held
	s.held = nil
	s.hub.stats.held.Add(-1)
	if s.heldTimer != nil {
		s.heldTimer.Stop()
		s.heldTimer = nil
	}
	if s.heldBrowser != "" {
		s.hub.releaseBrowser(s.heldBrowser)
		s.heldBrowser = ""
	}
	s.ref.idleSince.Store(time.Now().UnixNano())
	return j
}

// answerHeld completes the held connect, with everything queued when
// withQueue is set.
func (s *session) answerHeld(withQueue bool) {
	j := s.unhold()
	j.connect.Successful = true
	var q [][]byte
	if withQueue {
		q = s.takeQueue()
	}
	s.send(j, q, withQueue)
}

// send delivers a batch's result: its replies, the deliveries, and the
// connect reply last. With the ack extension, a connect reply carries every
// unacknowledged message and the batch number the client acknowledges
// with its next connect.
func (s *session) send(j *job, deliveries [][]byte, resend bool) {
	if j.connect != nil && j.connect.Successful && s.ref.ack {
		if resend {
			deliveries = s.sendBatch(deliveries)
		}
		j.connect.Ext = json.RawMessage(`{"ack":` + strconv.FormatInt(s.batch, 10) + `}`)
	}
	res := &batchResult{replies: j.out, deliveries: deliveries}
	if j.connect != nil {
		res.tail = [][]byte{j.connect.AppendJSON(make([]byte, 0, 160))}
	}
	j.b.result <- res
}

// sendBatch moves fresh messages to unacked under a new batch number and
// returns every unacknowledged message, oldest first.
func (s *session) sendBatch(fresh [][]byte) [][]byte {
	if len(fresh) == 0 && len(s.unacked) == 0 {
		return nil
	}
	s.batch++
	for _, w := range fresh {
		s.unacked = append(s.unacked, sentMsg{wire: w, batch: s.batch})
	}
	out := make([][]byte, len(s.unacked))
	for i, m := range s.unacked {
		out[i] = m.wire
	}
	return out
}

// acknowledge drops the messages of every batch up to and including n.
func (s *session) acknowledge(n int64) {
	i := 0
	for i < len(s.unacked) && s.unacked[i].batch <= n {
		i++
	}
	if i > 0 {
		s.unacked = append(s.unacked[:0:0], s.unacked[i:]...)
	}
}

func (s *session) takeQueue() [][]byte {
	q := s.queue
	s.queue = nil
	s.hub.stats.queued.Add(-int64(len(q)))
	return q
}

// abandon handles a request that went away: a held connect is dropped with
// the queue kept; a result already sent but not read is taken back (with
// the ack extension it is still in unacked, to be sent again).
func (s *session) abandon(b *remoteBatch) {
	b.abandoned = true
	if s.held != nil && s.held.b == b {
		s.unhold()
		return
	}
	select {
	case res := <-b.result:
		if len(res.deliveries) > 0 && !s.ref.ack {
			s.queue = append(res.deliveries, s.queue...)
			s.hub.stats.queued.Add(int64(len(res.deliveries)))
		}
	default:
	}
}

// enqueue adds an encoded message for the client and schedules a flush of
// a held connect. The flush is a message to self, so deliveries already in
// the mailbox join the same response. At Options.MaxQueue the queue policy
// applies.
func (s *session) enqueue(ctx actor.Context, wire []byte) {
	if s.client.Local {
		return // local clients get deliveries through their sinks
	}
	if max := s.hub.opts.MaxQueue; max > 0 && len(s.queue)+len(s.unacked) >= max {
		if !s.overflow(ctx) {
			return
		}
	}
	s.queue = append(s.queue, wire)
	s.hub.stats.queued.Add(1)
	if (s.held != nil || s.pusher != nil) && !s.flushScheduled {
		s.flushScheduled = true
		ctx.Send(ctx.Self(), flushNow{})
	}
}

// overflow applies the queue policy; it reports whether there is now room
// for one more message.
func (s *session) overflow(ctx actor.Context) bool {
	h := s.hub
	if !s.overflowed {
		s.overflowed = true
		h.stats.overflows.Add(1)
		s.logger().Warn().Int("max_queue", h.opts.MaxQueue).Str("policy", string(h.opts.QueuePolicy)).
			Msg("client is not reading: session queue full")
	}
	if h.opts.QueuePolicy == QueueDisconnect {
		s.stopAdvice = protocol.ErrUnknownClient(s.ref.id).Advice
		ctx.Stop(ctx.Self())
		return false
	}
	switch {
	case len(s.unacked) > 0:
		s.unacked = s.unacked[1:]
	case len(s.queue) > 0:
		s.queue[0] = nil
		s.queue = s.queue[1:]
		h.stats.queued.Add(-1)
	}
	s.dropped++
	h.stats.dropped.Add(1)
	return true
}
