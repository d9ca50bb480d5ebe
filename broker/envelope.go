package broker

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// envelope is a published message on the wire between nodes, a compact
// JSON object:
//
//	{"o":"node1/5f2a9c01","s":42,"c":"/chat/demo","k":"node1_abc…","i":"7","e":{…},"d":{…}}
//
// o is the publishing broker instance (node name and a random suffix, so a
// node that restarts with the same name starts a fresh sequence), s its
// sequence number, c the channel, k the publisher's client id, i and e
// the message id and ext (omitted when absent) and d the data. When the
// hubs share a history (a JetStream history on the broker,
// NewJetStreamHistory), r and p are the message's replay id and epoch
// in it, so that every node delivers the ids the publishing node stamped
// (actors.BrokerInbox.Deliver routes a message with a replay id as it is).
// It is JSON so that `nats sub 'bayeux.>'` shows readable traffic.
//
// A JetStream history stores a message as the same object less o, s, r
// and p, with "v":1 first (a history record; the stream sequence is the
// replay id).
type envelope struct {
	Version  int             `json:"v,omitempty"`
	Origin   string          `json:"o"`
	Seq      uint64          `json:"s"`
	Channel  string          `json:"c"`
	ClientID string          `json:"k,omitempty"`
	ID       json.RawMessage `json:"i,omitempty"`
	Ext      json.RawMessage `json:"e,omitempty"`
	ReplayID int64           `json:"r,omitempty"`
	Epoch    string          `json:"p,omitempty"`
	Data     json.RawMessage `json:"d"`
}

// historyRecordVersion is the "v" of a history record.
const historyRecordVersion = 1

// appendEnvelopeTail appends everything of m's envelope after the sequence
// number, so the part that must be built under the publish lock is short;
// m's replay id and epoch are left out.
func appendEnvelopeTail(buf []byte, m *actors.Message) []byte {
	return appendEnvelopeBody(buf, m, false)
}

// appendEnvelopeBody is appendEnvelopeTail with m's replay id and epoch,
// when withReplay is set and m has them.
func appendEnvelopeBody(buf []byte, m *actors.Message, withReplay bool) []byte {
	buf = append(buf, `,"c":`...)
	buf = protocol.AppendString(buf, m.Channel)
	if m.ClientID != "" {
		buf = append(buf, `,"k":`...)
		buf = protocol.AppendString(buf, m.ClientID)
	}
	if len(m.ID) > 0 {
		buf = append(buf, `,"i":`...)
		buf = append(buf, m.ID...)
	}
	if len(m.Ext) > 0 {
		buf = append(buf, `,"e":`...)
		buf = append(buf, m.Ext...)
	}
	if withReplay && m.ReplayID != 0 {
		buf = append(buf, `,"r":`...)
		buf = strconv.AppendInt(buf, m.ReplayID, 10)
		buf = append(buf, `,"p":`...)
		buf = protocol.AppendString(buf, m.Epoch)
	}
	buf = append(buf, `,"d":`...)
	if len(m.Data) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, m.Data...)
	}
	return append(buf, '}')
}

// appendEnvelopeHead appends the envelope's origin and sequence number.
func appendEnvelopeHead(buf []byte, origin string, seq uint64) []byte {
	buf = append(buf, `{"o":`...)
	buf = protocol.AppendString(buf, origin)
	buf = append(buf, `,"s":`...)
	return strconv.AppendUint(buf, seq, 10)
}

// decodeEnvelope parses an envelope and checks its required fields.
func decodeEnvelope(data []byte) (*envelope, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode message envelope: %w", err)
	}
	if e.Origin == "" || e.Seq == 0 || e.Channel == "" {
		return nil, fmt.Errorf("decode message envelope: origin, sequence or channel missing")
	}
	return &e, nil
}

// appendHistoryRecord appends m as a JetStream history stores it.
func appendHistoryRecord(buf []byte, m *actors.Message) []byte {
	buf = append(buf, `{"v":`...)
	buf = strconv.AppendInt(buf, historyRecordVersion, 10)
	return appendEnvelopeBody(buf, m, false)
}

// decodeHistoryRecord parses a history record into the message it
// stores (without its replay id and epoch).
func decodeHistoryRecord(data []byte) (*actors.Message, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode history record: %w", err)
	}
	if e.Version != historyRecordVersion || e.Channel == "" {
		return nil, fmt.Errorf("decode history record: version %d (want %d) or channel missing", e.Version, historyRecordVersion)
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("null")
	}
	return &actors.Message{Channel: e.Channel, Data: e.Data, ID: e.ID, Ext: e.Ext, ClientID: e.ClientID}, nil
}

// pushEnvelope is a client push on the wire, sent to the control subject
// of the node that holds the client.
type pushEnvelope struct {
	ClientID string          `json:"k"`
	Channel  string          `json:"c"`
	Data     json.RawMessage `json:"d"`
}

// encodePush encodes a push; its data is encoded as JSON (a
// json.RawMessage is sent as it is, once checked).
func encodePush(p *actors.Push) ([]byte, error) {
	var data json.RawMessage
	switch d := p.Data.(type) {
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("encode push data: not valid JSON")
		}
		data = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("encode push data: %w", err)
		}
		data = b
	}
	b, err := json.Marshal(pushEnvelope{ClientID: p.ClientID, Channel: p.Channel, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode push: %w", err)
	}
	return b, nil
}

// decodePush parses a push envelope.
func decodePush(data []byte) (*actors.Push, error) {
	var e pushEnvelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode push envelope: %w", err)
	}
	if e.ClientID == "" || e.Channel == "" {
		return nil, fmt.Errorf("decode push envelope: client id or channel missing")
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("null")
	}
	return &actors.Push{ClientID: e.ClientID, Channel: e.Channel, Data: e.Data}, nil
}
