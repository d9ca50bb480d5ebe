package actors

import (
	"encoding/json"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// The messages below are the hub's actor API, the counterpart of the Perl
// module's POE states that other sessions post to the server's alias. Send
// them to the hub actor (Hub.PID, or the actor named Options.Alias); Push
// may also be sent straight to a session's PID (Hub.SessionPID). When they
// are sent with a sender (ctx.Request, RequestFuture), the sender gets a
// *Result.

// Publish publishes a message (Perl: publish). ClientID, ID and Ext are
// passed through to subscribers.
type Publish struct {
	Channel  string
	Data     any // encoded as JSON; a json.RawMessage is sent as it is
	ClientID string
	ID       string
	Ext      any
}

// Subscribe subscribes the client ClientID to Channel (Perl: subscribe). A
// client id that names no session creates a local client with that id, as
// in the Perl module. For a local client, each message is sent to Receiver
// as a *Message (to the sender when Receiver is nil); a remote client gets
// the messages over its transport.
type Subscribe struct {
	ClientID string
	Channel  string
	Receiver *actor.PID
}

// Unsubscribe ends a subscription made with Subscribe or over HTTP (Perl:
// unsubscribe).
type Unsubscribe struct {
	ClientID string
	Channel  string
}

// Push sends a message to one client only, outside publish/subscribe (Perl:
// client_push): a remote client gets it with its next or held /meta/connect;
// a local client gets it through its oldest subscription that matches
// Channel.
type Push struct {
	ClientID string
	Channel  string
	Data     any // encoded as JSON; a json.RawMessage is sent as it is
}

// Disconnect ends a client's session (Perl: client_disconnect).
type Disconnect struct {
	ClientID string
}

// Result answers an API message that was sent with a sender.
type Result struct {
	ClientID string
	Channel  string
	Err      error // nil on success
}

// SessionPID returns the PID of a client's session actor, for sending it a
// *Push directly.
func (h *Hub) SessionPID(clientID string) (*actor.PID, bool) {
	ref := h.lookupSession(clientID)
	if ref == nil {
		return nil, false
	}
	return ref.pid, true
}

// Push sends a message to one client only (Perl: client_push).
// A client held by another node is reached through the broker.
func (h *Hub) Push(clientID, channel string, data any) error {
	if _, err := protocol.ParseChannel(channel); err != nil {
		return fmt.Errorf("push to %s on %s: %w", clientID, channel, err)
	}
	return h.push(h.root, &Push{ClientID: clientID, Channel: channel, Data: data})
}

// push sends p to the client's session, here or on its node.
func (h *Hub) push(sender actor.SenderContext, p *Push) error {
	if ref := h.lookupSession(p.ClientID); ref != nil {
		sender.Send(ref.pid, p)
		return nil
	}
	if node := nodeOf(p.ClientID); h.opts.Broker != nil && node != "" && node != h.opts.NodeName {
		if err := h.opts.Broker.Push(node, p); err != nil {
			return fmt.Errorf("push to %s via node %s: %w", p.ClientID, node, err)
		}
		return nil
	}
	return fmt.Errorf("push to %s: %w", p.ClientID, ErrUnknownClient)
}

// Disconnect ends a client's session, remote or local (Perl:
// client_disconnect). A held /meta/connect is answered with advice to
// re-handshake.
func (h *Hub) Disconnect(clientID string) error {
	ref := h.lookupSession(clientID)
	if ref == nil {
		return fmt.Errorf("disconnect %s: %w", clientID, ErrUnknownClient)
	}
	h.root.Poison(ref.pid)
	return nil
}

// handleAPI serves the API messages on the hub actor. It reports whether
// msg was one of them.
func (a *hubActor) handleAPI(ctx actor.Context, msg any) bool {
	h := a.hub
	respond := func(id, channel string, err error) {
		if err != nil {
			h.log.Warn().Err(err).Str("client", id).Str("channel", channel).Msg("actor API request failed")
		}
		if ctx.Sender() != nil {
			ctx.Respond(&Result{ClientID: id, Channel: channel, Err: err})
		}
	}
	switch m := msg.(type) {
	case *Publish:
		var opts []PublishOption
		if m.ID != "" {
			opts = append(opts, WithID(m.ID))
		}
		if m.Ext != nil {
			opts = append(opts, WithExt(m.Ext))
		}
		pm, err := h.newLocalMessage(m.Channel, m.Data, opts)
		if err == nil {
			pm.ClientID = m.ClientID
			err = h.publishLocal(ctx, pm)
		}
		respond(m.ClientID, m.Channel, err)
	case *Subscribe:
		receiver := m.Receiver
		if receiver == nil {
			receiver = ctx.Sender()
		}
		op := &localSubscribe{pattern: m.Channel, sink: sink{pid: receiver}, replyTo: ctx.Sender()}
		ctx.Send(h.supervisor, &forLocal{clientID: m.ClientID, create: true, op: op, replyTo: ctx.Sender()})
	case *Unsubscribe:
		op := &localUnsubscribe{pattern: m.Channel, replyTo: ctx.Sender()}
		ctx.Send(h.supervisor, &forLocal{clientID: m.ClientID, op: op, replyTo: ctx.Sender()})
	case *Push:
		respond(m.ClientID, m.Channel, h.push(ctx, m))
	case *Disconnect:
		ref := h.lookupSession(m.ClientID)
		if ref == nil {
			respond(m.ClientID, "", fmt.Errorf("disconnect: %w", ErrUnknownClient))
			return true
		}
		ctx.Poison(ref.pid)
		respond(m.ClientID, "", nil)
	default:
		return false
	}
	return true
}

// forLocal asks the supervisor to pass op to a client's session, creating a
// local session first when create is set and none exists.
type forLocal struct {
	clientID string
	create   bool
	op       any
	replyTo  *actor.PID
}

// pushJSONFor encodes a Push for a remote client.
func pushWire(p *Push) ([]byte, error) {
	data, err := encodeJSON(p.Data)
	if err != nil {
		return nil, fmt.Errorf("push on %s: %w", p.Channel, err)
	}
	return protocol.AppendDelivery(nil, p.Channel, data, nil, nil), nil
}

// pushMessage builds the *Message a local client gets for a Push.
func pushMessage(p *Push) (*Message, error) {
	data, err := encodeJSON(p.Data)
	if err != nil {
		return nil, fmt.Errorf("push on %s: %w", p.Channel, err)
	}
	return &Message{Channel: p.Channel, Data: json.RawMessage(data)}, nil
}
