package actors

import (
	"context"
	"net/http"
	"sync"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// RemoteRequest is one transport request: a batch of messages from one
// remote peer.
type RemoteRequest struct {
	// Messages is the decoded batch, in order.
	Messages []*protocol.Message
	// RemoteAddr is the peer's address, for logs, hooks and limits.
	RemoteAddr string
	// Header holds the headers of the HTTP request (for WebSocket, of the
	// upgrade request): the handshake's Authorization: Bearer token is read
	// from it, and hooks see it. Nil for none.
	Header http.Header
	// BrowserID identifies the browser that sent the request (the spec's
	// BAYEUX_BROWSER cookie), so that several clients (tabs) of one browser
	// do not all hold long polls; empty when unknown.
	BrowserID string
	// Push, when set, makes the session deliver the client's messages
	// through it as soon as they are queued, without waiting for a
	// /meta/connect to carry them (CometD's WebSocket behaviour); connects
	// are still held, as heartbeats. Each message is one encoded JSON
	// object. Push must not block: it returns false when it cannot take the
	// messages now (its connection is gone or its write queue is full), and
	// they stay queued. A request without Push (long-polling) turns pushing
	// off for the client, so a client can switch transports and keep its
	// session. Clients using the ack extension get every message through
	// /meta/connect, as that extension requires.
	Push func(msgs [][]byte) bool
	// Gone, when set, reports whether the request's connection has closed.
	// SubmitFunc asks it when the session answers, as it asks the
	// context: when it reports true, done gets nil and the session keeps
	// the deliveries it would have sent. A transport that holds a
	// /meta/connect without reading its connection (and so without a
	// context that ends when the peer leaves) sets it. It must not block.
	Gone func() bool
}

// MaxBatch returns the most messages one request may carry
// (Options.MaxBatch; 0: no bound), for transports to refuse a larger one
// before decoding it (protocol.DecodeLimit).
func (h *Hub) MaxBatch() int { return h.opts.MaxBatch }

// HandleRemote processes one request's messages and returns the encoded
// replies, each a JSON object, in the order the transport must write them.
// It blocks while a /meta/connect is held, until the session has messages,
// the poll timeout passes, or ctx ends (the request went away; then it
// returns nil, and messages that were about to be sent on it stay queued).
// It is Submit followed by waiting.
func (h *Hub) HandleRemote(ctx context.Context, req RemoteRequest) [][]byte {
	return h.Submit(req)(ctx)
}

// Pending waits for the replies of a submitted request, as HandleRemote
// does; it must be called exactly once.
type Pending func(ctx context.Context) [][]byte

// Submit hands a request's messages to their sessions at once and returns
// a Pending that waits for the replies. Requests submitted one after
// another keep their order for each client even when their replies are
// awaited on other goroutines, as a WebSocket transport needs (it reads the
// next frame while a /meta/connect is held).
func (h *Hub) Submit(req RemoteRequest) Pending {
	if out, ok := h.submitAlone(&req); ok {
		return func(context.Context) [][]byte { return out }
	}
	msgs := req.Messages
	var steps []*step
	for i := 0; i < len(msgs); {
		m := msgs[i]
		if m.ClientID == "" {
			steps = append(steps, &step{ready: [][]byte{h.clientless(m, &req)}})
			i++
			continue
		}
		// A run of consecutive messages for one client goes to its session
		// as one batch.
		j := i + 1
		for j < len(msgs) && msgs[j].ClientID == m.ClientID {
			j++
		}
		steps = append(steps, h.submitBatch(m.ClientID, msgs[i:j], &req))
		i = j
	}
	return func(ctx context.Context) [][]byte {
		out := make([][]byte, 0, len(msgs))
		for i, st := range steps {
			parts := st.wait(ctx, h)
			if parts == nil && st.b != nil {
				for _, rest := range steps[i+1:] {
					rest.abandon(h)
				}
				return nil
			}
			out = append(out, parts...)
		}
		return out
	}
}

// submitAlone answers a request that needs no session: one of more than
// MaxBatch messages, or a handshake.
func (h *Hub) submitAlone(req *RemoteRequest) ([][]byte, bool) {
	msgs := req.Messages
	if max := h.opts.MaxBatch; max > 0 && len(msgs) > max {
		return failAll(msgs[:1], protocol.ErrTooManyMessages(max)), true
	}
	// A handshake is handled alone: other messages in its request are
	// ignored, as the spec requires.
	for _, m := range msgs {
		if m.Invalid == nil && m.Channel == protocol.MetaHandshake {
			return [][]byte{h.handshake(m, req)}, true
		}
	}
	return nil, false
}

// SubmitFunc is Submit with a callback instead of a Pending: done gets the
// replies, as Pending would return them, exactly once, or nil when ctx
// ends first (the request went away; messages that were about to be sent
// on it stay queued). done is called on the caller's goroutine when the
// replies are ready at once, else on a goroutine of the hub's (the
// session's): it must not block. A transport holding many idle
// connections uses it rather than a goroutine waiting on each held
// /meta/connect. Requests keep their order as with Submit.
func (h *Hub) SubmitFunc(ctx context.Context, req RemoteRequest, done func([][]byte)) {
	if out, ok := h.submitAlone(&req); ok {
		done(out)
		return
	}
	msgs := req.Messages
	id := oneClient(msgs)
	if id == "" {
		// Messages of several clients, or of none: rare enough to be
		// waited for on a goroutine.
		pending := h.Submit(req)
		go func() { done(pending(ctx)) }()
		return
	}
	ref := h.remoteSession(id)
	if ref == nil {
		done(failAll(msgs, protocol.ErrUnknownClient(id)))
		return
	}
	if ctx.Err() != nil {
		done(nil)
		return
	}
	cb := &submitCall{done: done}
	b := newRemoteBatch(msgs, &req)
	gone := req.Gone
	b.notify = func(res *batchResult) bool {
		if ctx.Err() != nil || gone != nil && gone() {
			cb.finish(nil)
			return false
		}
		cb.finish(res.parts())
		return true
	}
	// The session answers a held connect at its poll timeout; if it ends
	// first, or the request goes away, these answer instead.
	cb.after(ref.gone, func() { cb.finish(failAll(msgs, protocol.ErrUnknownClient(id))) })
	cb.after(ctx, func() {
		if cb.finish(nil) {
			h.root.Send(ref.pid, abandon{b: b})
		}
	})
	h.root.Send(ref.pid, b)
}

// oneClient returns the client id all of msgs carry, or "" when they do
// not all carry the same one.
func oneClient(msgs []*protocol.Message) string {
	if len(msgs) == 0 || msgs[0].ClientID == "" {
		return ""
	}
	for _, m := range msgs[1:] {
		if m.ClientID != msgs[0].ClientID {
			return ""
		}
	}
	return msgs[0].ClientID
}

// submitCall completes a SubmitFunc once, from whichever of the session's
// answer, the session's end and the request's end comes first.
type submitCall struct {
	mu    sync.Mutex
	fired bool
	stops []func() bool // the context.AfterFunc registrations to undo
	done  func([][]byte)
}

// finish calls done with parts unless it has been called; it reports
// whether it did.
func (cb *submitCall) finish(parts [][]byte) bool {
	cb.mu.Lock()
	if cb.fired {
		cb.mu.Unlock()
		return false
	}
	cb.fired = true
	stops := cb.stops
	cb.stops = nil
	cb.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	cb.done(parts)
	return true
}

// after runs f when ctx ends, unless finish has been called by then.
func (cb *submitCall) after(ctx context.Context, f func()) {
	stop := context.AfterFunc(ctx, f)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.fired {
		stop()
		return
	}
	cb.stops = append(cb.stops, stop)
}

// step is one part of a submitted request: replies ready at once, or a
// batch sent to a session.
type step struct {
	ready    [][]byte
	ref      *sessionRef
	b        *remoteBatch
	clientID string
}

// submitBatch sends a batch to the client's session.
func (h *Hub) submitBatch(clientID string, msgs []*protocol.Message, req *RemoteRequest) *step {
	ref := h.remoteSession(clientID)
	if ref == nil {
		return &step{ready: failAll(msgs, protocol.ErrUnknownClient(clientID))}
	}
	b := newRemoteBatch(msgs, req)
	b.result = make(chan *batchResult, 1)
	h.root.Send(ref.pid, b)
	return &step{ref: ref, b: b, clientID: clientID}
}

// remoteSession is the session of a remote client, nil for none: a local
// client's id is not a remote client's to use.
func (h *Hub) remoteSession(clientID string) *sessionRef {
	if ref := h.lookupSession(clientID); ref != nil && !ref.local {
		return ref
	}
	return nil
}

// newRemoteBatch is a batch of a request's messages for one client; its
// caller sets how it is answered (result or notify).
func newRemoteBatch(msgs []*protocol.Message, req *RemoteRequest) *remoteBatch {
	return &remoteBatch{msgs: msgs, browser: req.BrowserID, header: req.Header, push: req.Push}
}

func (st *step) abandon(h *Hub) {
	if st.b != nil {
		h.root.Send(st.ref.pid, abandon{b: st.b})
	}
}

// wait returns the step's replies; nil when ctx ended first.
func (st *step) wait(ctx context.Context, h *Hub) [][]byte {
	if st.b == nil {
		return st.ready
	}
	// The session answers a held connect at its poll timeout, and ref.done
	// closes if it ends: no timer of our own is needed.
	select {
	case res := <-st.b.result:
		return res.parts()
	case <-st.ref.done:
		select {
		case res := <-st.b.result:
			return res.parts()
		default:
		}
		return failAll(st.b.msgs, protocol.ErrUnknownClient(st.clientID))
	case <-ctx.Done():
		st.abandon(h)
		return nil
	}
}

func (r *batchResult) parts() [][]byte {
	out := make([][]byte, 0, len(r.replies)+len(r.deliveries)+len(r.tail))
	out = append(out, r.replies...)
	out = append(out, r.deliveries...)
	return append(out, r.tail...)
}

func failAll(msgs []*protocol.Message, err *protocol.Error) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		r := protocol.ReplyTo(m).Fail(err)
		if m.Invalid != nil {
			r.Fail(m.Invalid)
		}
		r.Subscription = m.Subscription.Raw // subscribe replies must name it
		out[i] = r.AppendJSON(nil)
	}
	return out
}
