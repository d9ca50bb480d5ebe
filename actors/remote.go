package actors

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// supportedTypes are the connection types the hub's HTTP transport serves.
var supportedTypes = []string{protocol.LongPolling, protocol.CallbackPolling}

// RemoteRequest is one transport request: a batch of messages from one
// remote peer.
type RemoteRequest struct {
	// Messages is the decoded batch, in order.
	Messages []*protocol.Message
	// RemoteAddr is the peer's address, for logs, hooks and limits.
	RemoteAddr string
}

// HandleRemote processes one request's messages and returns the encoded
// replies, each a JSON object, in the order the transport must write them.
// It blocks while a /meta/connect is held, until the session has messages,
// the poll timeout passes, or ctx ends (the request went away; messages
// that were about to be sent on it stay queued). Transports call it; it is
// the only entry for remote clients.
func (h *Hub) HandleRemote(ctx context.Context, req RemoteRequest) [][]byte {
	msgs := req.Messages
	// A handshake is handled alone: other messages in its request are
	// ignored, as the spec requires.
	for _, m := range msgs {
		if m.Invalid == nil && m.Channel == protocol.MetaHandshake {
			return [][]byte{h.handshake(m, req.RemoteAddr)}
		}
	}
	out := make([][]byte, 0, len(msgs))
	for i := 0; i < len(msgs); {
		m := msgs[i]
		if m.ClientID == "" {
			out = append(out, h.clientless(m, req.RemoteAddr))
			i++
			continue
		}
		// A run of consecutive messages for one client goes to its session
		// as one batch.
		j := i + 1
		for j < len(msgs) && msgs[j].ClientID == m.ClientID {
			j++
		}
		out = append(out, h.toSession(ctx, m.ClientID, msgs[i:j])...)
		i = j
	}
	return out
}

// toSession runs a batch on the client's session and waits for its answer.
func (h *Hub) toSession(ctx context.Context, clientID string, msgs []*protocol.Message) [][]byte {
	ref := h.lookupSession(clientID)
	if ref == nil {
		return failAll(msgs, protocol.ErrUnknownClient(clientID))
	}
	b := &remoteBatch{msgs: msgs, result: make(chan *batchResult, 1)}
	h.root.Send(ref.pid, b)
	// Backstop: the session answers a held connect at its poll timeout; this
	// only fires if the session is wedged.
	backstop := time.NewTimer(h.opts.PollTimeout + 30*time.Second)
	defer backstop.Stop()
	select {
	case res := <-b.result:
		return res.parts()
	case <-ref.done:
		select {
		case res := <-b.result:
			return res.parts()
		default:
		}
		return failAll(msgs, protocol.ErrUnknownClient(clientID))
	case <-ctx.Done():
		h.root.Send(ref.pid, abandon{b: b})
		return nil
	case <-backstop.C:
		h.log.Error().Str("client", clientID).Msg("session did not answer a request in time")
		h.root.Send(ref.pid, abandon{b: b})
		return failAll(msgs, &protocol.Error{Code: protocol.CodeServerError, Message: "Session did not answer"})
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
		out[i] = r.AppendJSON(nil)
	}
	return out
}

// clientless answers a message without a clientId: an error, or an
// anonymous publish when the hub allows it.
func (h *Hub) clientless(m *protocol.Message, remoteAddr string) []byte {
	r := protocol.ReplyTo(m)
	if m.Invalid != nil {
		return r.Fail(m.Invalid).AppendJSON(nil)
	}
	if !h.opts.AnonPublish || protocol.IsMeta(m.Channel) {
		return r.Fail(protocol.ErrNoClientID()).AppendJSON(nil)
	}
	c := &Client{RemoteAddr: remoteAddr, Flags: map[string]any{}}
	if err := h.authorize(c, m); err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	msg, err := checkPublish(m)
	if err == nil && protocol.IsService(m.Channel) {
		err = protocol.ErrNoClientID() // a service replies to a client
	}
	if err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	h.route(h.root, msg)
	r.Successful = true
	return r.AppendJSON(nil)
}

// handshake creates a session for a remote client.
func (h *Hub) handshake(m *protocol.Message, remoteAddr string) []byte {
	r := protocol.ReplyTo(m)
	r.Version = protocol.Version
	r.SupportedConnectionTypes = supportedTypes
	none := &protocol.Advice{Reconnect: protocol.ReconnectNone}
	if h.draining.Load() {
		e := &protocol.Error{Code: protocol.CodeServiceUnavailable, Message: "Server shutting down",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}
		return r.Fail(e).AppendJSON(nil)
	}
	if m.Version == "" || !strings.HasPrefix(m.Version, "1") {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: []string{m.Version}, Message: "Unsupported version", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	if !commonType(m.SupportedConnectionTypes) {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: m.SupportedConnectionTypes, Message: "No common connection type", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	c := &Client{ID: newClientID(), RemoteAddr: remoteAddr, Flags: map[string]any{}}
	if err := h.authorize(c, m); err != nil {
		err.Advice = none
		return r.Fail(err).AppendJSON(nil)
	}
	ref := newSessionRef(c.ID, false, remoteAddr)
	if err := h.spawnSession(ref, c); err != nil {
		h.log.Error().Err(err).Msg("spawn session")
		return r.Fail(&protocol.Error{Code: protocol.CodeServerError, Message: "Cannot create session",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}).AppendJSON(nil)
	}
	h.stats.handshakes.Add(1)
	r.ClientID = c.ID
	r.Successful = true
	r.Advice = h.connectAdvice()
	return r.AppendJSON(make([]byte, 0, 256))
}

func commonType(types []string) bool {
	for _, t := range types {
		for _, s := range supportedTypes {
			if t == s {
				return true
			}
		}
	}
	return false
}

// spawnSession asks the supervisor for a new session actor and waits.
func (h *Hub) spawnSession(ref *sessionRef, c *Client) error {
	if h.closed.Load() {
		return ErrClosed
	}
	reply := make(chan error, 1)
	h.root.Send(h.supervisor, &spawnSession{ref: ref, client: c, reply: reply})
	select {
	case err := <-reply:
		if err != nil {
			return fmt.Errorf("spawn session %s: %w", ref.id, err)
		}
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("spawn session %s: supervisor did not answer", ref.id)
	}
}

// connectAdvice is the advice sent with handshake and connect replies.
func (h *Hub) connectAdvice() *protocol.Advice {
	return &protocol.Advice{
		Reconnect: protocol.ReconnectRetry,
		Interval:  protocol.Int(0),
		Timeout:   protocol.Int(h.opts.PollTimeout.Milliseconds()),
	}
}

// authorize runs the MessageACL hook, turning a rejection or a panic into
// a Bayeux error.
func (h *Hub) authorize(c *Client, m *protocol.Message) (perr *protocol.Error) {
	if h.opts.MessageACL == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.Error().Interface("panic", r).Str("channel", m.Channel).Bytes("stack", debug.Stack()).
				Msg("authorization hook panicked")
			perr = &protocol.Error{Code: protocol.CodeServerError, Args: []string{m.Channel}, Message: "Authorization failed"}
		}
	}()
	if err := h.opts.MessageACL(c, m); err != nil {
		if pe, ok := err.(*protocol.Error); ok {
			return pe
		}
		return protocol.ErrDenied(m.Channel, err.Error())
	}
	return nil
}

// checkPublish validates a publish and builds the message to route.
func checkPublish(m *protocol.Message) (*Message, *protocol.Error) {
	kind, err := protocol.ParseChannel(m.Channel)
	switch {
	case err != nil:
		return nil, err.(*protocol.Error)
	case kind == protocol.KindMeta:
		return nil, protocol.ErrDenied(m.Channel, "Publish to /meta channels denied")
	case kind == protocol.KindWildcard:
		return nil, &protocol.Error{Code: protocol.CodeInvalidChannel, Args: []string{m.Channel}, Message: "Cannot publish to a wildcard channel"}
	case m.Data == nil:
		return nil, protocol.ErrBadRequest("Missing data")
	}
	return &Message{Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext}, nil
}

// callService runs the handler for a /service channel and encodes its
// replies. A missing handler, an error or a panic becomes a Bayeux error.
func (h *Hub) callService(c *Client, m *protocol.Message) (out [][]byte, perr *protocol.Error) {
	name := strings.TrimPrefix(m.Channel, "/service/")
	fn := h.opts.Services[name]
	if fn == nil {
		fn = h.opts.Services["_handler"]
	}
	if fn == nil {
		return nil, protocol.ErrUnknownService(m.Channel)
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.Error().Interface("panic", r).Str("channel", m.Channel).Bytes("stack", debug.Stack()).
				Msg("service handler panicked")
			out, perr = nil, &protocol.Error{Code: protocol.CodeServerError, Args: []string{m.Channel}, Message: "Service failed"}
		}
	}()
	replies, err := fn(c, m)
	if err != nil {
		if pe, ok := err.(*protocol.Error); ok {
			return nil, pe
		}
		return nil, &protocol.Error{Code: protocol.CodeServerError, Args: []string{m.Channel}, Message: err.Error()}
	}
	for _, r := range replies {
		b, err := marshalReply(m, r)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeServerError, Args: []string{m.Channel}, Message: err.Error()}
		}
		out = append(out, b)
	}
	return out, nil
}
