package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds replay: messages on channels with history are stamped
// with a replay id as they are published (History.Append, on the
// publisher's goroutine, under a lock per channel so that ids and
// deliveries keep one order), and a subscribe that asks, in the Salesforce
// replay extension's way (ext.replay: {"<channel>": <replayId>}), is sent
// what the history retains after that id, then the live messages, with
// no gap and no duplicate at the seam.

// replayExt returns ext (a JSON object or nil) with the replay id and
// epoch added in front, as "replayId" and "replayEpoch".
func replayExt(ext []byte, id int64, epoch string) []byte {
	b := make([]byte, 0, 48+len(epoch)+len(ext))
	b = append(b, `{"replayId":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"replayEpoch":`...)
	b = protocol.AppendString(b, epoch)
	if len(ext) > 2 && ext[0] == '{' {
		// The publisher's ext object: its members follow ours. A member
		// named like ours comes after and, for most JSON readers, wins;
		// the hub's own is first.
		rest := ext[1:]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r') {
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0] != '}' {
			b = append(b, ',')
		}
		return append(b, rest...)
	}
	return append(b, '}')
}

// salesforceData wraps data in the Salesforce Streaming API's shape, which
// jsforce's replay extension reads the replay id from:
// {"event":{"replayId":N},"payload":<data>}.
func salesforceData(data []byte, id int64) []byte {
	b := make([]byte, 0, 40+len(data))
	b = append(b, `{"event":{"replayId":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `},"payload":`...)
	if len(data) == 0 {
		data = []byte("null")
	}
	b = append(b, data...)
	return append(b, '}')
}

// historyOf returns the retention and shape of channel's history, when
// its channel rule keeps one.
func (h *Hub) historyOf(channel string) (Retention, bool, bool) {
	if !h.historyOn {
		return Retention{}, false, false
	}
	i := h.opts.Rules.Match(channel)
	if i < 0 {
		return Retention{}, false, false
	}
	hist := h.opts.Rules.Rule(i).History
	if !hist.Enabled() {
		return Retention{}, false, false
	}
	return Retention{Max: hist.Size, TTL: hist.TTL}, hist.Shape == acl.ShapeSalesforce, true
}

// stripe returns the lock that orders the stamping and routing of
// messages on channel, so that a channel's subscribers get its messages
// in the order of their replay ids.
func (h *Hub) stripe(channel string) *sync.Mutex {
	var x uint32 = 2166136261
	for i := 0; i < len(channel); i++ {
		x = (x ^ uint32(channel[i])) * 16777619
	}
	return &h.stripes[x%uint32(len(h.stripes))]
}

// routeStamped stores m in its channel's history, when it has one, and
// routes it with route, in one order per channel. A message that cannot be
// stored is refused rather than routed without a replay id.
func (h *Hub) routeStamped(m *Message, route func(*Message)) *protocol.Error {
	keep, salesforce, ok := h.historyOf(m.Channel)
	if !ok {
		route(m)
		return nil
	}
	mu := h.stripe(m.Channel)
	mu.Lock()
	defer mu.Unlock()
	ctx := context.Background()
	if h.memory == nil { // the hub's own history never waits: no timer per publish for it
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.HistoryTimeout)
		defer cancel()
	}
	m.salesforce = salesforce
	pos, err := h.history.Append(ctx, m, keep)
	if err != nil {
		h.log.Warn().Err(err).Str("channel", m.Channel).Msg("history append failed; publish refused")
		return &protocol.Error{Code: protocol.CodeServiceUnavailable, Args: []string{m.Channel},
			Message: "History unavailable", Advice: &protocol.Advice{Reconnect: protocol.ReconnectRetry, Interval: protocol.Int(1000)}}
	}
	m.ReplayID, m.Epoch = pos.ID, pos.Epoch
	route(m)
	return nil
}

// replayAsk is one channel of a subscribe that asks for replay: the
// subscription (holding its live messages meanwhile), the replay id asked
// for, and what the history answered.
type replayAsk struct {
	sub   *subscription
	after int64
	res   Replay
	err   error
}

// replayFetched tells the session that one replayAsk has its answer.
type replayFetched struct{ job *batchJob }

// replayWanted reads a subscribe's ext.replay ({"<channel>": <replayId>},
// the Salesforce replay extension) for the channels in names; -1 (new
// messages only) is left out.
func replayWanted(m *protocol.Message, names []string) (map[string]int64, *protocol.Error) {
	if len(m.Ext) == 0 || !bytes.Contains(m.Ext, []byte(`"replay"`)) {
		return nil, nil
	}
	var ext struct {
		Replay map[string]json.Number `json:"replay"`
	}
	dec := json.NewDecoder(bytes.NewReader(m.Ext))
	dec.UseNumber()
	if err := dec.Decode(&ext); err != nil {
		return nil, protocol.ErrBadRequest("ext.replay must map channels to replay ids")
	}
	var want map[string]int64
	for _, name := range names {
		v, ok := ext.Replay[name]
		if !ok {
			continue
		}
		id, err := v.Int64()
		if err != nil || (id < 0 && id != ReplayNew && id != ReplayAll) {
			return nil, protocol.ErrBadRequest("ext.replay: replay id of " + name + " must be -1, -2 or a message's replay id")
		}
		if id == ReplayNew {
			continue
		}
		if strings.HasSuffix(name, "*") {
			return nil, &protocol.Error{Code: protocol.CodeBadRequest, Args: []string{name}, Message: "Replay needs a channel name, not a pattern"}
		}
		if want == nil {
			want = make(map[string]int64)
		}
		want[name] = id
	}
	return want, nil
}

// fetchReplays asks the history for every replaying subscription of j,
// each on a goroutine of its own; the session hears of each answer as
// replayFetched, and then continues with then.
func (s *session) fetchReplays(ctx actor.Context, j *batchJob, asks []*replayAsk, then func()) {
	h, self := s.hub, ctx.Self()
	j.waiting += len(asks)
	j.after = then
	for _, a := range asks {
		go func() {
			hctx, cancel := context.WithTimeout(context.Background(), h.opts.HistoryTimeout)
			defer cancel()
			a.res, a.err = h.history.Since(hctx, a.sub.pattern, a.after)
			if _, salesforce, _ := h.historyOf(a.sub.pattern); salesforce {
				for _, m := range a.res.Messages {
					if !m.salesforce { // a shared history's fresh copies; the memory history's have it
						m.salesforce = true
					}
				}
			}
			h.root.Send(self, &replayFetched{job: j})
		}()
	}
}

// checkReplay reports whether what the history retains answers a replay
// from after without a gap: after must be -2, or an id of the retained
// history (or the one just before its oldest).
func checkReplay(name string, after int64, r Replay, err error) *protocol.Error {
	if err != nil {
		return &protocol.Error{Code: protocol.CodeServiceUnavailable, Args: []string{name}, Message: "History unavailable",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectRetry, Interval: protocol.Int(1000)}}
	}
	if after == ReplayAll || (r.Newest != 0 && after >= r.Oldest-1 && after <= r.Newest) {
		return nil
	}
	return &protocol.Error{Code: protocol.CodeBadRequest, Args: []string{name}, Message: fmt.Sprintf(
		"Replay id %d is not in the retained history of the channel (oldest %d, newest %d): subscribe with -2 for everything retained or -1 for new messages only",
		after, r.Oldest, r.Newest)}
}

// replayed delivers what a replaying subscription fetched, then the live
// messages it held meanwhile that the history did not have, and lets live
// messages through from now on; upTo is the newest replay id delivered, so
// a live message routed before the replay but arriving after it is not
// delivered twice.
func (s *session) replayed(ctx actor.Context, a *replayAsk) {
	sub := a.sub
	upTo := max(a.after, 0)
	for _, m := range a.res.Messages {
		if m.ReplayID > upTo {
			s.hub.stats.delivered.Add(1)
			s.out.deliver(ctx, sub, m)
			upTo = m.ReplayID
		}
	}
	held := sub.held
	sub.held, sub.replaying, sub.upTo = nil, false, upTo
	for _, m := range held {
		s.deliver(ctx, m)
	}
}
