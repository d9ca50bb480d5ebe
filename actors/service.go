package actors

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// callService runs the handler for a /service channel and encodes its
// replies. A missing handler, an error or a panic becomes a Bayeux error.
func (h *Hub) callService(c *Client, m *protocol.Message) (out [][]byte, perr *protocol.Error) {
	name := strings.TrimPrefix(m.Channel, "/service/")
	fn := h.opts.Services[name]
	if fn == nil {
		fn = h.presenceService(name) // presence.go
	}
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
		var pe *protocol.Error
		if errors.As(err, &pe) {
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

// serviceMsg runs a /service handler; its replies go to this client only:
// in this response, or, for a client using the ack extension (which takes
// every message through /meta/connect), in its next connect.
func (s *session) serviceMsg(ctx actor.Context, j *batchJob, m *protocol.Message) {
	replies, err := s.hub.callService(s.client, m)
	if err != nil {
		s.fail(j, m, err)
		return
	}
	r := protocol.ReplyTo(m)
	r.Successful = true
	s.reply(j, r)
	if s.ref.ack {
		for _, w := range replies {
			s.rem.enqueue(ctx, w)
		}
		return
	}
	j.out = append(j.out, replies...)
}

// marshalReply encodes a service reply as a delivery to the caller.
func marshalReply(m *protocol.Message, r ServiceReply) ([]byte, error) {
	ch := r.Channel
	if ch == "" {
		ch = m.Channel
	}
	data, err := encodeJSON(r.Data)
	if err != nil {
		return nil, fmt.Errorf("encode reply data: %w", err)
	}
	return protocol.AppendDelivery(nil, ch, data, m.ID, nil), nil
}
