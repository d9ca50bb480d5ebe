package actors

import (
	"runtime/debug"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

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
