package actors

import "github.com/bayeuxhub/bayeuxhub/protocol"

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
