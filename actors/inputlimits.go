package actors

import (
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// What a message may contain (issue 15): every way in (a remote client's
// batch, an anonymous publish, Hub.Publish, LocalClient, the actor API
// messages, Push, the backend API, which calls the hub's methods) goes
// through these checks before routing or the broker see the message, and
// channel names before the channel rules too:
//
//   - checkName: a channel name or pattern is at most
//     Options.MaxChannelLength bytes and Options.MaxChannelDepth segments
//     (protocol.CheckChannelSize);
//   - messageSize: a published message is bounded as a whole by
//     Options.MaxMessageSize (checkPublish);
//   - encodeJSON: JSON the server itself sends (data, ext, push data,
//     service replies) is valid JSON and valid UTF-8, as protocol.Decode
//     makes sure a client's messages are.

// checkName refuses a channel name or pattern past the hub's bounds.
func (h *Hub) checkName(name string) *protocol.Error {
	return protocol.CheckChannelSize(name, h.opts.MaxChannelLength, h.opts.MaxChannelDepth)
}

// checkNames applies checkName to a remote client's message: its channel
// and, for a subscribe or unsubscribe, every name it asks for.
func (h *Hub) checkNames(m *protocol.Message) *protocol.Error {
	if err := h.checkName(m.Channel); err != nil {
		return err
	}
	if m.Channel == protocol.MetaSubscribe || m.Channel == protocol.MetaUnsubscribe {
		for _, name := range m.Subscription.Names {
			if err := h.checkName(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// messageSize is the size of a message that Options.MaxMessageSize
// bounds: its JSON as received when it was decoded, else (the server's
// own) the bytes of its fields.
func messageSize(m *protocol.Message) int {
	if m.Size > 0 {
		return m.Size
	}
	return len(m.Channel) + len(m.ID) + len(m.ClientID) + len(m.Data) + len(m.Ext)
}

// errInvalidUTF8 refuses JSON from the server's own code (Hub.Publish,
// WithExt, Push, a service reply) that is not valid UTF-8: passed on, it
// would make every WebSocket subscriber's connection fail.
var errInvalidUTF8 = protocol.ErrBadRequest("Invalid UTF-8 in data")

// validUTF8 checks encoded JSON. json.Valid does not look at UTF-8, and
// json.Marshal copies a json.RawMessage (or a Marshaler's output) as it
// is.
func validUTF8(b []byte) error {
	if !utf8.Valid(b) {
		return errInvalidUTF8
	}
	return nil
}

// checkOptionFields checks the fields PublishOptions set on m, whose
// data was encoded as raw: its id and ext, and its data if an option
// replaced it.
func checkOptionFields(m *Message, raw json.RawMessage) error {
	if len(m.Data) != len(raw) || len(raw) > 0 && &m.Data[0] != &raw[0] {
		d, err := encodeJSON(m.Data)
		if err != nil {
			return err
		}
		m.Data = d
	}
	for _, b := range []json.RawMessage{m.ID, m.Ext} {
		if len(b) > 0 && !json.Valid(b) {
			return errors.New("id or ext is not valid JSON")
		}
		if err := validUTF8(b); err != nil {
			return err
		}
	}
	return nil
}
