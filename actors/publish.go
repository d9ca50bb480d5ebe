package actors

import (
	"fmt"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// clientless answers a message without a clientId: an error, or an
// anonymous publish when the hub allows it. An anonymous publish goes
// through the channel rules (as an anonymous client), MessageACL and the
// publish hook, as a client's publish does.
func (h *Hub) clientless(m *protocol.Message, req *RemoteRequest) []byte {
	r := protocol.ReplyTo(m)
	r.Subscription = m.Subscription.Raw
	if m.Invalid != nil {
		return r.Fail(m.Invalid).AppendJSON(nil)
	}
	if !h.opts.AnonPublish || protocol.IsMeta(m.Channel) {
		return r.Fail(protocol.ErrNoClientID()).AppendJSON(nil)
	}
	if err := h.checkName(m.Channel); err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	if _, err := protocol.ParseChannel(m.Channel); err == nil {
		if _, perr := h.checkRule(acl.Subject{}, acl.Publish, m.Channel, ""); perr != nil {
			return r.Fail(perr).AppendJSON(nil)
		}
	}
	c := &Client{RemoteAddr: req.RemoteAddr, Flags: map[string]any{}}
	if err := h.authorize(c, m); err != nil {
		return r.Fail(h.refuse(actionPublish, "", refusedByACL, "", err)).AppendJSON(nil)
	}
	msg, err := h.checkPublish(m)
	if err == nil && protocol.IsService(m.Channel) {
		err = protocol.ErrNoClientID() // a service replies to a client
	}
	if err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	if hook := h.opts.PublishHook; hook != nil {
		_, herr := h.callHook(hook, &HookRequest{Event: HookPublish, Channel: m.Channel, Data: m.Data, Ext: m.Ext,
			RemoteAddr: req.RemoteAddr, Header: req.Header})
		if herr != nil {
			return r.Fail(h.hookError(actionPublish, "", "", m.Channel, herr)).AppendJSON(nil)
		}
	}
	if err := h.publish(h.root, msg); err != nil {
		return r.Fail(err).AppendJSON(nil)
	}
	r.Successful = true
	return r.AppendJSON(nil)
}

// checkPublish validates a client's publish and builds the message to
// route.
func (h *Hub) checkPublish(m *protocol.Message) (*Message, *protocol.Error) {
	if err := h.checkChannel(m.Channel); err != nil {
		return nil, err
	}
	switch {
	case m.Data == nil:
		return nil, protocol.ErrBadRequest("Missing data")
	case h.opts.MaxMessageSize > 0 && messageSize(m) > h.opts.MaxMessageSize:
		return nil, &protocol.Error{Code: protocol.CodeTooLarge, Args: []string{m.Channel}, Message: "Message too large"}
	}
	return &Message{Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext}, nil
}

// checkChannel refuses a publish to a name past the hub's bounds, to a
// name that is not a channel, to a pattern or to a /meta channel.
func (h *Hub) checkChannel(channel string) *protocol.Error {
	if err := h.checkName(channel); err != nil {
		return err
	}
	kind, err := protocol.ParseChannel(channel)
	switch {
	case err != nil:
		return protocol.AsError(err)
	case kind == protocol.KindMeta:
		return protocol.ErrDenied(channel, "Publish to /meta channels denied")
	case kind == protocol.KindWildcard:
		return &protocol.Error{Code: protocol.CodeInvalidChannel, Args: []string{channel}, Message: "Cannot publish to a wildcard channel"}
	}
	return nil
}

// CheckPublishChannel reports whether the server may publish on channel
// (Hub.Publish, LocalClient.Publish, the *Publish actor message): a
// channel name within the hub's MaxChannelLength and MaxChannelDepth, not
// a pattern, a /meta or a /service channel. The error is the one those
// would return, without publishing.
func (h *Hub) CheckPublishChannel(channel string) error {
	if err := h.checkChannel(channel); err != nil {
		return fmt.Errorf("publish %s: %w", channel, err)
	}
	if protocol.IsService(channel) {
		return fmt.Errorf("publish %s: %w", channel, errServiceChannel)
	}
	return nil
}
