package actors

import (
	"context"
	"net/http"

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
	msgs := req.Messages
	if max := h.opts.MaxBatch; max > 0 && len(msgs) > max {
		out := failAll(msgs[:1], protocol.ErrTooManyMessages(max))
		return func(context.Context) [][]byte { return out }
	}
	// A handshake is handled alone: other messages in its request are
	// ignored, as the spec requires.
	for _, m := range msgs {
		if m.Invalid == nil && m.Channel == protocol.MetaHandshake {
			out := [][]byte{h.handshake(m, &req)}
			return func(context.Context) [][]byte { return out }
		}
	}
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
	ref := h.lookupSession(clientID)
	if ref == nil || ref.local {
		// A local client's id is not a remote client's to use.
		return &step{ready: failAll(msgs, protocol.ErrUnknownClient(clientID))}
	}
	b := &remoteBatch{msgs: msgs, browser: req.BrowserID, header: req.Header, push: req.Push, result: make(chan *batchResult, 1)}
	h.root.Send(ref.pid, b)
	return &step{ref: ref, b: b, clientID: clientID}
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
