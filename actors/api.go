package actors

import (
	"context"
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
// a local client gets it through the subscription its Channel matches (of
// that exact channel, else the oldest pattern), and not at all when none
// does.
type Push struct {
	ClientID string
	Channel  string
	Data     any // encoded as JSON; a json.RawMessage is sent as it is
}

// Disconnect ends a client's session (Perl: client_disconnect); see
// Hub.Disconnect.
type Disconnect struct {
	ClientID string
	// NoReconnect tells the client not to come back (see NoReconnect).
	NoReconnect bool
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
// A client held by another node is reached through the broker. The
// channel must be a channel name (not a pattern or a /meta channel) and
// data must encode as JSON; the *Push actor message, sent to the hub or
// straight to the session, is checked the same way.
func (h *Hub) Push(clientID, channel string, data any) error {
	return h.push(h.root, &Push{ClientID: clientID, Channel: channel, Data: data})
}

// push checks p and sends it to the client's session, here or on its node.
func (h *Hub) push(sender actor.SenderContext, p *Push) error {
	raw, err := h.checkPush(p.Channel, p.Data)
	if err != nil {
		return fmt.Errorf("push to %s on %s: %w", p.ClientID, p.Channel, err)
	}
	p = &Push{ClientID: p.ClientID, Channel: p.Channel, Data: raw}
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

// checkPush validates a push's channel (within the hub's bounds on a
// name) and encodes its data (valid UTF-8).
func (h *Hub) checkPush(channel string, data any) (json.RawMessage, error) {
	if err := h.checkName(channel); err != nil {
		return nil, err
	}
	kind, err := protocol.ParseChannel(channel)
	switch {
	case err != nil:
		return nil, err
	case kind == protocol.KindWildcard:
		return nil, &protocol.Error{Code: protocol.CodeInvalidChannel, Args: []string{channel}, Message: "Cannot push to a wildcard channel"}
	case kind == protocol.KindMeta:
		return nil, protocol.ErrDenied(channel, "Push to /meta channels denied")
	}
	return encodeJSON(data)
}

// DisconnectOption changes how Disconnect and DisconnectUser end a
// session.
type DisconnectOption func(*kick)

// NoReconnect tells the client not to come back: its held /meta/connect
// (and its next request) is answered with 403 "Disconnected by the server"
// and advice reconnect "none", which standard clients obey. Without it the
// client is told to handshake again (a 402 with advice "handshake"), as
// the Perl module's client_disconnect did.
func NoReconnect() DisconnectOption { return func(k *kick) { k.noReconnect = true } }

func newKick(opts []DisconnectOption) *kick {
	k := &kick{}
	for _, o := range opts {
		o(k)
	}
	return k
}

// Disconnect ends a client's session, remote or local, on this node or, with
// a broker, on the node that holds it (Perl: client_disconnect). Messages
// already sent to the session are handled first.
func (h *Hub) Disconnect(clientID string, opts ...DisconnectOption) error {
	k := newKick(opts)
	if ref := h.lookupSession(clientID); ref != nil {
		h.root.Send(ref.pid, k)
		return nil
	}
	if node := nodeOf(clientID); h.opts.Broker != nil && node != "" && node != h.opts.NodeName {
		n := 0
		body, _ := json.Marshal(clientKick{ClientID: clientID, NoReconnect: k.noReconnect})
		ctx, cancel := context.WithTimeout(context.Background(), DefaultClusterTimeout)
		defer cancel()
		if _, err := h.askCluster(ctx, queryDisconnectClient, body, countInto(&n)); err != nil {
			return fmt.Errorf("disconnect %s: %w", clientID, err)
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("disconnect %s: %w", clientID, ErrUnknownClient)
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
		var opts []DisconnectOption
		if m.NoReconnect {
			opts = append(opts, NoReconnect())
		}
		respond(m.ClientID, "", h.Disconnect(m.ClientID, opts...))
	default:
		return false
	}
	return true
}
