package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// LocalClient is an in-process Bayeux client (the Perl module's local POE
// sessions). It needs no handshake and never times out; it sees the
// messages of remote clients and they see its own. Its methods are safe for
// concurrent use; Subscribe and Unsubscribe return once the subscription is
// in effect.
type LocalClient struct {
	hub *Hub
	ref *sessionRef
}

// NewLocalClient creates a local client with the given client id, or a
// fresh random one when id is empty.
func (h *Hub) NewLocalClient(id string) (*LocalClient, error) {
	if id == "" {
		id = h.newClientID()
	}
	if h.lookupSession(id) != nil {
		return nil, fmt.Errorf("new local client %q: %w", id, ErrClientExists)
	}
	ref := newSessionRef(id, true, "")
	c := &Client{ID: id, Local: true, Flags: map[string]any{}}
	if err := h.spawnSession(ref, c); err != nil {
		return nil, fmt.Errorf("new local client %q: %w", id, err)
	}
	return &LocalClient{hub: h, ref: ref}, nil
}

// ID returns the client's id; it is the ClientID of the messages it
// publishes, so a subscriber can tell its own messages apart.
func (c *LocalClient) ID() string { return c.ref.id }

// PID returns the client's session actor.
func (c *LocalClient) PID() *actor.PID { return c.ref.pid }

// Subscribe subscribes to a channel name or pattern; fn is called for each
// message. A client's callbacks run one at a time, in delivery order, on
// a goroutine of the client's own (not the session's): a callback may
// call any hub method, this client's Subscribe and Unsubscribe included.
// A slow callback holds up only this client's other callbacks; past
// Options.MaxQueue waiting messages the queue policy applies, as for a
// remote client. A message on a channel several of the client's
// subscriptions match goes to the subscription of that exact channel, else
// to the oldest pattern that matches.
func (c *LocalClient) Subscribe(channel string, fn func(*Message)) error {
	if fn == nil {
		return fmt.Errorf("subscribe %s: nil callback", channel)
	}
	return c.subscribe(channel, sink{fn: fn})
}

// SubscribePID subscribes to a channel name or pattern; each message is
// sent to pid as a *Message.
func (c *LocalClient) SubscribePID(channel string, pid *actor.PID) error {
	if pid == nil {
		return fmt.Errorf("subscribe %s: nil PID", channel)
	}
	return c.subscribe(channel, sink{pid: pid})
}

func (c *LocalClient) subscribe(channel string, k sink) error {
	reply := make(chan error, 1)
	c.hub.root.Send(c.ref.pid, &localSubscribe{pattern: channel, sink: k, reply: reply})
	return c.wait(reply)
}

// Unsubscribe ends a subscription; no callback (or message to a PID)
// through it starts after Unsubscribe returns. It returns ErrNotSubscribed
// (wrapped) for a channel the client is not subscribed to.
func (c *LocalClient) Unsubscribe(channel string) error {
	reply := make(chan error, 1)
	c.hub.root.Send(c.ref.pid, &localUnsubscribe{pattern: channel, reply: reply})
	return c.wait(reply)
}

func (c *LocalClient) wait(reply chan error) error {
	select {
	case err := <-reply:
		return err
	case <-c.ref.done:
		return ErrClosed
	}
}

// PublishOption sets an optional field of a published message.
type PublishOption func(*Message) error

// WithID sets the message id, passed through to subscribers.
func WithID(id string) PublishOption {
	return func(m *Message) error {
		m.ID = protocol.AppendString(nil, id)
		return nil
	}
}

// WithExt sets the message ext object, passed through to subscribers.
func WithExt(ext any) PublishOption {
	return func(m *Message) (err error) {
		m.Ext, err = encodeJSON(ext)
		return err
	}
}

// Publish publishes data (encoded as JSON; a json.RawMessage is sent as it
// is) on channel. Messages one goroutine publishes reach every subscriber
// in the order they were published.
func (c *LocalClient) Publish(channel string, data any, opts ...PublishOption) error {
	m, err := c.hub.newLocalMessage(channel, data, opts)
	if err != nil {
		return err
	}
	select {
	case <-c.ref.done:
		return ErrClosed
	default:
	}
	m.ClientID = c.ref.id
	return c.hub.publishLocal(c.hub.root, m)
}

// publishLocal routes a message from Go code or the actor API, unless the
// hub is draining.
func (h *Hub) publishLocal(sender actor.SenderContext, m *Message) error {
	if err := h.publish(sender, m); err != nil {
		if h.draining.Load() {
			return fmt.Errorf("publish %s: %w", m.Channel, ErrClosed)
		}
		return fmt.Errorf("publish %s: %w", m.Channel, err)
	}
	return nil
}

func (h *Hub) newLocalMessage(channel string, data any, opts []PublishOption) (*Message, error) {
	raw, err := encodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", channel, err)
	}
	if err := h.CheckPublishChannel(channel); err != nil {
		return nil, err
	}
	m := &Message{Channel: channel, Data: raw}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, fmt.Errorf("publish %s: %w", channel, err)
		}
	}
	// The channel stays the one checked above; the rest is checked as the
	// options left it (WithID and WithExt make valid UTF-8, an option of
	// the application's may not), its id and ext counting towards
	// MaxMessageSize.
	m.Channel = channel
	if err := checkOptionFields(m, raw); err != nil {
		return nil, fmt.Errorf("publish %s: %w", channel, err)
	}
	if _, perr := h.checkPublish(&protocol.Message{Channel: channel, Data: m.Data, ID: m.ID, Ext: m.Ext, ClientID: m.ClientID}); perr != nil {
		return nil, fmt.Errorf("publish %s: %w", channel, perr)
	}
	return m, nil
}

// Publish publishes data on channel from the server itself, with no client
// (Perl: publish without client_id). Options such as WithID and WithExt
// apply.
func (h *Hub) Publish(channel string, data any, opts ...PublishOption) error {
	m, err := h.newLocalMessage(channel, data, opts)
	if err != nil {
		return err
	}
	return h.publishLocal(h.root, m)
}

// Disconnect ends the client: its subscriptions end and it is forgotten.
// Operations already sent complete first.
func (c *LocalClient) Disconnect() {
	c.hub.root.Poison(c.ref.pid)
	select {
	case <-c.ref.done:
	case <-time.After(10 * time.Second):
	}
}

// encodeJSON encodes a value the server sends (data, ext): a
// json.RawMessage as it is, anything else with json.Marshal. Either must
// be valid JSON in valid UTF-8 (see validUTF8).
func encodeJSON(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, errors.New("data is not valid JSON")
		}
		if err := validUTF8(d); err != nil {
			return nil, err
		}
		return d, nil
	case nil:
		return json.RawMessage("null"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	if err := validUTF8(b); err != nil {
		return nil, err
	}
	return b, nil
}
