package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Version is the protocol version bayeuxhub speaks.
const Version = "1.0"

// Connection types that the long-polling transport serves.
const (
	LongPolling     = "long-polling"
	CallbackPolling = "callback-polling"
	WebSocket       = "websocket"
)

// Reconnect advice values (spec: advice, reconnect).
const (
	ReconnectRetry     = "retry"
	ReconnectHandshake = "handshake"
	ReconnectNone      = "none"
)

// Message is one Bayeux message as a client sent it. Fields the server echoes
// or passes on unchanged (id, data, ext, subscription) are kept as raw JSON.
type Message struct {
	Channel                  string          `json:"channel"`
	ID                       json.RawMessage `json:"id,omitempty"`
	ClientID                 string          `json:"clientId,omitempty"`
	Version                  string          `json:"version,omitempty"`
	MinimumVersion           string          `json:"minimumVersion,omitempty"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes,omitempty"`
	ConnectionType           string          `json:"connectionType,omitempty"`
	Subscription             Subscription    `json:"subscription,omitempty"`
	Data                     json.RawMessage `json:"data,omitempty"`
	Ext                      json.RawMessage `json:"ext,omitempty"`
	Advice                   *Advice         `json:"advice,omitempty"`

	// Size is the length in bytes of the message's JSON object as it was
	// received, from its "{" to its "}" (every field, known or not, and
	// white space included), set by Decode; 0 for a message made in Go.
	Size int `json:"-"`

	// Invalid is set by Decode when this element of the batch could not be
	// read as a Bayeux message; Channel and ID are filled in when they could
	// be recovered so that the error reply can name them.
	Invalid *Error `json:"-"`
}

// Advice is the spec's advice field, sent by the server and, for timeout and
// interval, honoured when a client sends it with /meta/connect.
type Advice struct {
	Reconnect       string   `json:"reconnect,omitempty"`
	Interval        *int64   `json:"interval,omitempty"`
	Timeout         *int64   `json:"timeout,omitempty"`
	MultipleClients bool     `json:"multiple-clients,omitempty"`
	Hosts           []string `json:"hosts,omitempty"`
}

// Int returns a pointer to v, for Advice's optional numbers.
func Int(v int64) *int64 { return &v }

// Subscription is the subscription field: one channel name or an array of
// them. Raw keeps the form the client sent so that replies echo it.
type Subscription struct {
	Names []string
	Raw   json.RawMessage
}

// UnmarshalJSON accepts a string or an array of strings.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	s.Raw = append(s.Raw[:0], b...)
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, &s.Names)
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return fmt.Errorf("subscription must be a channel name or an array of them: %w", err)
	}
	s.Names = []string{one}
	return nil
}

// MarshalJSON writes the subscription as it was received.
func (s Subscription) MarshalJSON() ([]byte, error) {
	if len(s.Raw) > 0 {
		return s.Raw, nil
	}
	return json.Marshal(s.Names)
}

// validate checks the field shapes that json.Unmarshal cannot: id must be a
// string or number, ext an object.
func (m *Message) validate() *Error {
	if m.Channel == "" {
		return ErrBadRequest("Missing channel")
	}
	if len(m.ID) > 0 {
		switch m.ID[0] {
		case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return ErrBadRequest("id must be a string or a number")
		}
	}
	if len(m.Ext) > 0 && m.Ext[0] != '{' && !isNull(m.Ext) {
		return ErrBadRequest("ext must be an object")
	}
	if isNull(m.Data) {
		m.Data = nil
	}
	if isNull(m.Ext) {
		m.Ext = nil
	}
	return nil
}

func isNull(b json.RawMessage) bool { return string(b) == "null" }

// Decode reads a request body holding one Bayeux message or an array of
// them. A body that is not JSON, or not an object or array, is an error for
// the whole request. An element that is an object but not a valid message is
// returned with Invalid set, so that the rest of the batch is still served;
// so is an element with a string that is not valid UTF-8 (ErrInvalidUTF8),
// so that every message Decode returns valid is valid UTF-8 throughout.
func Decode(body []byte) ([]*Message, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, ErrBadRequest("Empty request")
	}
	if msgs, ok := decodeFast(body); ok {
		return msgs, nil
	}
	return decodeSlow(body)
}

// decodeSlow is Decode with encoding/json, for whatever decodeFast leaves.
func decodeSlow(body []byte) ([]*Message, error) {
	switch body[0] {
	case '{':
		if !json.Valid(body) {
			return nil, ErrBadRequest("Malformed JSON")
		}
		m := decodeOne(body)
		return []*Message{m}, nil
	case '[':
	default:
		return nil, ErrBadRequest("Request must be a JSON object or array")
	}
	// Most often the whole batch decodes at once; invalid UTF-8 must be
	// found element by element (json.Unmarshal would replace it).
	if utf8.Valid(body) {
		var msgs []*Message
		if err := json.Unmarshal(body, &msgs); err == nil && len(msgs) > 0 && setSizes(body, msgs) {
			for _, m := range msgs {
				if m.Invalid == nil { // not null
					m.Invalid = m.validate()
				}
			}
			return msgs, nil
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, ErrBadRequest("Malformed JSON: " + jsonErrText(err))
	}
	if len(raws) == 0 {
		return nil, ErrBadRequest("Empty batch")
	}
	msgs := make([]*Message, len(raws))
	for i, raw := range raws {
		msgs[i] = decodeOne(raw)
	}
	return msgs, nil
}

// setSizes sets the Size of each message of a batch that json.Unmarshal
// decoded from body, replacing nil elements (null) by invalid messages.
// It reports false if body is not as expected (or nests deeper than the
// scanner goes).
func setSizes(body []byte, msgs []*Message) bool {
	s := scanner{b: body}
	if s.next() != '[' {
		return false
	}
	for i := 0; ; i++ {
		s.ws()
		start := s.i
		if i == len(msgs) || !s.skip(0) {
			return false
		}
		if msgs[i] == nil {
			msgs[i] = &Message{Invalid: ErrBadRequest("Message must be an object")}
		}
		msgs[i].Size = s.i - start
		s.ws()
		switch s.next() {
		case ',':
		case ']':
			return i+1 == len(msgs)
		default:
			return false
		}
	}
}

// decodeOne decodes one element of a request, raw JSON without white space
// around it.
func decodeOne(raw []byte) *Message {
	if raw[0] != '{' {
		return &Message{Invalid: ErrBadRequest("Message must be an object"), Size: len(raw)}
	}
	// Outside its strings JSON is ASCII, so this checks every string of the
	// message, field names included: encoding/json would replace invalid
	// UTF-8 in the strings it decodes and keep it in raw values.
	if !utf8.Valid(raw) {
		return invalidMessage(raw, ErrInvalidUTF8())
	}
	m := new(Message)
	if err := json.Unmarshal(raw, m); err != nil {
		return invalidMessage(raw, ErrBadRequest("Malformed message: "+jsonErrText(err)))
	}
	m.Size = len(raw)
	m.Invalid = m.validate()
	return m
}

// invalidMessage returns a message failing with why, with the channel and
// id of raw when they can be recovered, for the error reply to name them
// (an id only when it is valid UTF-8: the reply repeats it as it is).
func invalidMessage(raw []byte, why *Error) *Message {
	var head struct {
		Channel any             `json:"channel"`
		ID      json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal(raw, &head)
	bad := &Message{Invalid: why, Size: len(raw)}
	if s, ok := head.Channel.(string); ok {
		bad.Channel = s
	}
	if len(head.ID) > 0 && (head.ID[0] == '"' || (head.ID[0] >= '0' && head.ID[0] <= '9')) && utf8.Valid(head.ID) {
		bad.ID = head.ID
	}
	return bad
}

// jsonErrText shortens encoding/json's errors for a client-facing message,
// keeping the field and type names that help a client author.
func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case asErr(err, &te):
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type.String(), te.Value)
	case asErr(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
