package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// RemoteRequest is one transport request: a batch of messages from one
// remote peer.
type RemoteRequest struct {
	// Messages is the decoded batch, in order.
	Messages []*protocol.Message
	// RemoteAddr is the peer's address, for logs, hooks and limits.
	RemoteAddr string
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
	// A handshake is handled alone: other messages in its request are
	// ignored, as the spec requires.
	for _, m := range msgs {
		if m.Invalid == nil && m.Channel == protocol.MetaHandshake {
			out := [][]byte{h.handshake(m, req.RemoteAddr)}
			return func(context.Context) [][]byte { return out }
		}
	}
	var steps []*step
	for i := 0; i < len(msgs); {
		m := msgs[i]
		if m.ClientID == "" {
			steps = append(steps, &step{ready: [][]byte{h.clientless(m, req.RemoteAddr)}})
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
	if ref == nil {
		return &step{ready: failAll(msgs, protocol.ErrUnknownClient(clientID))}
	}
	b := &remoteBatch{msgs: msgs, browser: req.BrowserID, push: req.Push, result: make(chan *batchResult, 1)}
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

// clientless answers a message without a clientId: an error, or an
// anonymous publish when the hub allows it.
func (h *Hub) clientless(m *protocol.Message, remoteAddr string) []byte {
	r := protocol.ReplyTo(m)
	r.Subscription = m.Subscription.Raw
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
	msg, err := h.checkPublish(m)
	if err == nil && protocol.IsService(m.Channel) {
		err = protocol.ErrNoClientID() // a service replies to a client
	}
	if err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	if !h.allowPublish() {
		return r.Fail(errDraining()).AppendJSON(nil)
	}
	h.route(h.root, msg)
	h.publishGate.RUnlock()
	r.Successful = true
	return r.AppendJSON(nil)
}

// handshake creates a session for a remote client.
func (h *Hub) handshake(m *protocol.Message, remoteAddr string) []byte {
	r := protocol.ReplyTo(m)
	r.Version = protocol.Version
	r.SupportedConnectionTypes = h.opts.ConnectionTypes
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
	if !h.commonType(m.SupportedConnectionTypes) {
		e := &protocol.Error{Code: protocol.CodeUnsupported, Args: m.SupportedConnectionTypes, Message: "No common connection type", Advice: none}
		return r.Fail(e).AppendJSON(nil)
	}
	c := &Client{ID: h.newClientID(), RemoteAddr: remoteAddr, Flags: map[string]any{}}
	if err := h.authorize(c, m); err != nil {
		err.Advice = none
		return r.Fail(err).AppendJSON(nil)
	}
	ip := hostOf(remoteAddr)
	if !h.takeIPSlot(ip) {
		e := &protocol.Error{Code: protocol.CodeDenied, Args: []string{ip}, Message: "Too many sessions from this address",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(10000)}}
		return r.Fail(e).AppendJSON(nil)
	}
	ref := newSessionRef(c.ID, false, ip)
	ref.ack = wantsAck(m.Ext)
	if err := h.spawnSession(ref, c); err != nil {
		h.releaseIPSlot(ip)
		h.log.Error().Err(err).Msg("spawn session")
		return r.Fail(&protocol.Error{Code: protocol.CodeServerError, Message: "Cannot create session",
			Advice: &protocol.Advice{Reconnect: protocol.ReconnectHandshake, Interval: protocol.Int(1000)}}).AppendJSON(nil)
	}
	h.stats.handshakes.Add(1)
	r.ClientID = c.ID
	r.Successful = true
	r.Advice = h.connectAdvice()
	if ref.ack {
		r.Ext = json.RawMessage(`{"ack":true}`)
	}
	return r.AppendJSON(make([]byte, 0, 256))
}

func (h *Hub) commonType(types []string) bool {
	for _, t := range types {
		if h.servesType(t) {
			return true
		}
	}
	return false
}

// servesType reports whether connection type t is one of
// Options.ConnectionTypes.
func (h *Hub) servesType(t string) bool {
	for _, s := range h.opts.ConnectionTypes {
		if t == s {
			return true
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

// hostOf returns the host part of a remote address ("ip:port").
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// takeIPSlot counts a new session from ip, or refuses it at the limit.
func (h *Hub) takeIPSlot(ip string) bool {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if max := h.opts.MaxSessionsPerIP; max > 0 && h.perIP[ip] >= max {
		return false
	}
	h.perIP[ip]++
	return true
}

func (h *Hub) releaseIPSlot(ip string) {
	h.ipMu.Lock()
	defer h.ipMu.Unlock()
	if h.perIP[ip]--; h.perIP[ip] <= 0 {
		delete(h.perIP, ip)
	}
}

// holdBrowser reserves one of the browser's held long polls; it reports
// false when its other clients already hold Options.MaxSessionsPerBrowser.
func (h *Hub) holdBrowser(id string) bool {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if max := h.opts.MaxSessionsPerBrowser; max > 0 && h.browserHeld[id] >= max {
		return false
	}
	h.browserHeld[id]++
	return true
}

func (h *Hub) releaseBrowser(id string) {
	h.browserMu.Lock()
	defer h.browserMu.Unlock()
	if h.browserHeld[id]--; h.browserHeld[id] <= 0 {
		delete(h.browserHeld, id)
	}
}

// wantsAck reports whether a handshake's ext asks for the CometD ack
// extension: {"ack": true} (or the newer {"ack": {"enabled": true}}).
func wantsAck(ext json.RawMessage) bool {
	if len(ext) == 0 {
		return false
	}
	var e struct{ Ack json.RawMessage }
	if json.Unmarshal(ext, &e) != nil {
		return false
	}
	if string(e.Ack) == "true" {
		return true
	}
	var obj struct{ Enabled bool }
	return json.Unmarshal(e.Ack, &obj) == nil && obj.Enabled
}

// ackOf reads the batch number a /meta/connect acknowledges, or -1.
func ackOf(ext json.RawMessage) int64 {
	if len(ext) == 0 {
		return -1
	}
	var e struct{ Ack *int64 }
	if json.Unmarshal(ext, &e) != nil || e.Ack == nil {
		return -1
	}
	return *e.Ack
}

// checkPublish validates a publish and builds the message to route.
func (h *Hub) checkPublish(m *protocol.Message) (*Message, *protocol.Error) {
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
	case h.opts.MaxMessageSize > 0 && len(m.Data)+len(m.Ext) > h.opts.MaxMessageSize:
		return nil, &protocol.Error{Code: protocol.CodeTooLarge, Args: []string{m.Channel}, Message: "Message too large"}
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
