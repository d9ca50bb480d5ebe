package actors

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// Defaults for Options, as in the Perl module where it had one.
const (
	DefaultAlias                 = "bayeux"
	DefaultConnectTimeout        = 120 * time.Second
	DefaultPollTimeout           = 30 * time.Second
	DefaultMaxQueue              = 10000
	DefaultMaxSubscriptions      = 1000
	DefaultMaxChannels           = 100000
	DefaultMaxMessageSize        = 64 << 10
	DefaultMaxSessionsPerIP      = 10000
	DefaultMultiSessionInterval  = 2 * time.Second
	DefaultMaxSessionsPerBrowser = 2
	DefaultAuthTimeout           = 5 * time.Second
	DefaultHookTimeout           = 5 * time.Second
	DefaultMaxEventBacklog       = 1 << 16
	// DrainRetryInterval is the interval (advice) a draining hub gives
	// with its connect replies, so that clients poll at that pace, not in
	// a loop, until the hub is gone.
	DrainRetryInterval = time.Second
)

// Defaults of the limits that bound what one session, one address and
// the whole hub may hold (limits.go), so that the worst case of each is
// known: a session keeps at most DefaultMaxSessionBytes, an address
// DefaultMaxBytesPerIP, the hub DefaultMaxTotalBytes.
const (
	DefaultMaxInterval             = 10 * time.Second
	DefaultMaxPendingSessionsPerIP = 5000
	DefaultMaxSubscriptionsPerIP   = 10000
	DefaultMaxSessionBytes         = 4 << 20
	DefaultMaxBytesPerIP           = 32 << 20
	DefaultMaxTotalBytes           = 1 << 30
	DefaultMaxHistoryBytes         = 64 << 20
	DefaultHistoryTimeout          = 2 * time.Second
)

// QueuePolicy says what a session does when its client falls so far behind
// that its queue reaches Options.MaxQueue.
type QueuePolicy string

// The queue policies.
const (
	// QueueDisconnect ends the session; the client's next request gets a
	// 402 with advice to re-handshake, so it knows it missed messages.
	QueueDisconnect QueuePolicy = "disconnect"
	// QueueDropOldest drops the oldest queued message to make room, and
	// counts it.
	QueueDropOldest QueuePolicy = "drop-oldest"
)

// Defaults of the bounds on a channel name (Options.MaxChannelLength and
// MaxChannelDepth): routing a publish costs its name's length times its
// depth.
const (
	DefaultMaxChannelLength = 1 << 10
	DefaultMaxChannelDepth  = 32
)

// Options configures a hub. The zero value is usable: every field has a
// default. The names follow the Perl module's spawn arguments.
type Options struct {
	// Alias is the hub actor's name in the actor system (Perl: Alias).
	Alias string
	// AnonPublish lets remote clients publish without a handshake
	// (Perl: AnonPublish).
	AnonPublish bool
	// ConnectTimeout is the Perl module's ConnectTimeout (default 120 s):
	// an upper bound on MaxInterval, which decides how long a remote
	// client may go without a /meta/connect outstanding.
	ConnectTimeout time.Duration
	// PollTimeout is how long a /meta/connect is held when there is nothing
	// to deliver (default 30 s, below common proxy limits).
	PollTimeout time.Duration
	// Services maps a service name to its handler: a publish to
	// /service/<name> is handled by Services[name], or by
	// Services["_handler"] when there is no such entry (Perl: Services).
	Services map[string]ServiceFunc
	// MessageACL, when set, is called for every message a remote client
	// sends; returning an error rejects the message (Perl: MessageACL).
	MessageACL ACLFunc
	// Callback, when set, is told of every hub event (Perl: Callback).
	// It runs on one goroutine of the hub's own, one event at a time, in
	// the order the events happened, after the fact: never on a session's
	// goroutine, so it may call any hub method (Drain and Shutdown too). A
	// Callback that falls MaxEventBacklog events behind loses the events
	// past that, counted in Stats.EventsDropped and logged. The same
	// events go to the actor system's event stream, from the same
	// goroutine.
	Callback func(Event)
	// MaxEventBacklog bounds the events waiting for the Callback (and the
	// event stream); default DefaultMaxEventBacklog, negative for no bound.
	MaxEventBacklog int

	// Rules are the channel rules: who may subscribe to and publish on
	// which channels (see package acl). They apply to remote clients; the
	// server's own publishes (Hub.Publish, local clients, the actor API)
	// are not subject to them. Nil means acl.Default(): anyone may
	// subscribe anywhere and publish anywhere but /bayeuxhub/**. MessageACL
	// runs after them.
	Rules *acl.Rules
	// Authenticator verifies the token a client presents at handshake (in
	// ext.auth.token, or an Authorization: Bearer header); package auth
	// verifies JWTs. Nil: tokens are not looked at and every client is
	// anonymous unless HandshakeHook names its user.
	Authenticator Authenticator
	// RequireUser refuses handshakes that end without a user id (no valid
	// token, and no user from HandshakeHook) with 403 "Authentication
	// required" and advice reconnect "none". False lets anonymous clients
	// in, subject to the channel rules.
	RequireUser bool
	// AuthTimeout bounds Authenticator.Authenticate (default
	// DefaultAuthTimeout); past it the handshake is refused.
	AuthTimeout time.Duration
	// HandshakeHook, SubscribeHook and PublishHook, when set, are asked
	// about each handshake, subscribe (per channel) and publish of a remote
	// client, after the channel rules and MessageACL allowed it (package
	// proxy asks the application's backend over HTTP). A handshake hook
	// may set the client's user id, info and granted channels.
	HandshakeHook, SubscribeHook, PublishHook Hook
	// HookTimeout bounds each hook call (default DefaultHookTimeout); past
	// it the request is refused with 503.
	HookTimeout time.Duration
	// Logger receives the hub's structured logs; nil means no logs.
	Logger *zerolog.Logger

	// Broker, when set, joins this hub to hubs on other machines (see
	// package broker); nil keeps the hub to one process.
	Broker Broker
	// NodeName names this node in logs, metrics and, with a Broker, as the
	// prefix of its client ids (so pushes find the node that holds a
	// client). Letters, digits and dashes; default "node" plus random.
	NodeName string

	// ConnectionTypes are the Bayeux connection types the hub's transports
	// serve, in order of preference: offered in handshake replies and
	// accepted in /meta/connect. Default: long-polling and callback-polling.
	// transport.Attach replaces it with the types of the transports it
	// mounts (see Hub.SetConnectionTypes), so an embedder need not set it.
	ConnectionTypes []string

	// MaxQueue bounds the messages a session keeps for its client (queued
	// and, with the ack extension, sent but unacknowledged); default
	// DefaultMaxQueue, negative for no bound.
	MaxQueue int
	// QueuePolicy applies when MaxQueue is reached; default QueueDisconnect.
	QueuePolicy QueuePolicy
	// MaxSubscriptions bounds one client's subscriptions; default
	// DefaultMaxSubscriptions, negative for no bound.
	MaxSubscriptions int
	// MaxChannels bounds the channel actors (names and patterns with
	// subscribers); default DefaultMaxChannels, negative for no bound.
	MaxChannels int
	// MaxMessageSize bounds a published message as a whole, in bytes: for
	// a remote client's, its JSON as received (channel, id, clientId,
	// data, ext and any other field); for the server's own, its channel,
	// data, id and ext. A larger one is refused with 413 "Message too
	// large". Default DefaultMaxMessageSize, negative for no bound.
	MaxMessageSize int
	// MaxChannelLength and MaxChannelDepth bound a channel name or pattern
	// in bytes and in segments (a wildcard is one): every name a client or
	// the server publishes, subscribes, unsubscribes or pushes to, before
	// the channel rules, routing or the broker see it. Past them the
	// operation is refused with 405 "Channel name too long" or "Channel
	// name too deep". Defaults DefaultMaxChannelLength and
	// DefaultMaxChannelDepth, negative for no bound.
	MaxChannelLength, MaxChannelDepth int
	// MaxSessionsPerIP bounds the sessions of one remote address that
	// have connected (had a /meta/connect answered); default
	// DefaultMaxSessionsPerIP, negative for no bound. A handshake past it
	// is refused, and so is the first connect of a session that would go
	// past it.
	MaxSessionsPerIP int
	// MaxPendingSessionsPerIP bounds the sessions of one remote address
	// that have handshaken and not connected yet; past it the oldest of
	// them is ended to make room, so a flood of handshakes from one
	// address (a proxy) cannot lock out its other users. Default
	// DefaultMaxPendingSessionsPerIP, negative for no bound.
	MaxPendingSessionsPerIP int
	// MaxSubscriptionsPerIP bounds the subscriptions the sessions of one
	// remote address hold together (and so the channels one address can
	// create); default DefaultMaxSubscriptionsPerIP, negative for no
	// bound.
	MaxSubscriptionsPerIP int
	// MaxSessionBytes bounds the bytes a remote session keeps for its
	// client: queued and, with the ack extension, sent but not yet
	// acknowledged (a WebSocket's unwritten output is bounded by the
	// transport). Past it, or past MaxQueue messages, QueuePolicy applies.
	// Default DefaultMaxSessionBytes, negative for no bound.
	MaxSessionBytes int
	// MaxBytesPerIP bounds the bytes the sessions of one remote address
	// keep together; past it the session that would go over applies its
	// QueuePolicy. Default DefaultMaxBytesPerIP, negative for no bound.
	MaxBytesPerIP int
	// MaxTotalBytes bounds the bytes all sessions keep for their clients;
	// past it, publishes and handshakes are refused (503, "Server over its
	// memory limit") until clients have fetched enough. Default
	// DefaultMaxTotalBytes, negative for no bound.
	MaxTotalBytes int64
	// History stores the messages of the channels whose rule keeps history
	// (acl.Rule.History), for replay; nil keeps them in this process's
	// memory, bounded by MaxHistoryBytes. broker.NewJetStreamHistory
	// keeps them in NATS JetStream, shared by the hubs of a cluster.
	History History
	// MaxHistoryBytes bounds what the in-memory history holds in total
	// (the oldest messages, whatever their channel, are evicted first);
	// default DefaultMaxHistoryBytes, negative for no bound.
	MaxHistoryBytes int64
	// HistoryTimeout bounds a History call (storing a publish, fetching a
	// replay); past it the publish or the subscribe is refused with 503.
	// Default DefaultHistoryTimeout.
	HistoryTimeout time.Duration
	// Presence bounds and paces presence, kept for the channels whose
	// rule has acl.Rule.Presence (see Hub.Presence).
	Presence PresenceOptions
	// MaxBatch bounds the messages of one request (one HTTP request, one
	// WebSocket frame, one HandleRemote call): a request's replies and the
	// memory it takes grow with its messages. A larger one is refused
	// whole with a 400 before it is decoded. Default
	// protocol.DefaultMaxBatch, negative for no bound.
	MaxBatch int
	// MaxInterval is how long a remote session may go without a
	// /meta/connect outstanding (after its handshake, or after its last
	// connect was answered) before it is removed, as CometD's maxInterval.
	// Default DefaultMaxInterval. ConnectTimeout, the Perl module's
	// option, is an upper bound on it kept for compatibility: the smaller
	// of the two applies.
	MaxInterval time.Duration
	// MaxSessionsPerBrowser bounds the long polls held at once for the
	// clients (tabs) of one browser, known by its BAYEUX_BROWSER cookie, so
	// that they cannot take all of the browser's connections to the server
	// (spec: multiple clients). The spec's figure is one (for browsers of two
	// connections per host); today's browsers allow six, so the default is
	// DefaultMaxSessionsPerBrowser; negative for no bound.
	MaxSessionsPerBrowser int
	// MultiSessionInterval is the polling interval advised to a browser's
	// further clients while it is at MaxSessionsPerBrowser; they get
	// "multiple-clients": true in the advice. Default
	// DefaultMultiSessionInterval.
	MultiSessionInterval time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Rules == nil {
		rules, err := acl.New(acl.Default())
		if err != nil {
			return o, fmt.Errorf("default channel rules: %w", err)
		}
		o.Rules = rules
	}
	if o.Alias == "" {
		o.Alias = DefaultAlias
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = DefaultPollTimeout
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	if o.NodeName == "" {
		o.NodeName = "node" + newClientID()[:6]
	}
	if len(o.ConnectionTypes) == 0 {
		o.ConnectionTypes = []string{protocol.LongPolling, protocol.CallbackPolling}
	}
	o.MaxQueue = limit(o.MaxQueue, DefaultMaxQueue)
	o.MaxEventBacklog = limit(o.MaxEventBacklog, DefaultMaxEventBacklog)
	o.MaxSubscriptions = limit(o.MaxSubscriptions, DefaultMaxSubscriptions)
	o.MaxChannels = limit(o.MaxChannels, DefaultMaxChannels)
	o.MaxMessageSize = limit(o.MaxMessageSize, DefaultMaxMessageSize)
	o.MaxChannelLength = limit(o.MaxChannelLength, DefaultMaxChannelLength)
	o.MaxChannelDepth = limit(o.MaxChannelDepth, DefaultMaxChannelDepth)
	o.MaxSessionsPerIP = limit(o.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	o.MaxSessionsPerBrowser = limit(o.MaxSessionsPerBrowser, DefaultMaxSessionsPerBrowser)
	o.MaxPendingSessionsPerIP = limit(o.MaxPendingSessionsPerIP, DefaultMaxPendingSessionsPerIP)
	o.MaxSubscriptionsPerIP = limit(o.MaxSubscriptionsPerIP, DefaultMaxSubscriptionsPerIP)
	o.MaxSessionBytes = limit(o.MaxSessionBytes, DefaultMaxSessionBytes)
	o.MaxBatch = limit(o.MaxBatch, protocol.DefaultMaxBatch)
	switch {
	case o.MaxHistoryBytes == 0:
		o.MaxHistoryBytes = DefaultMaxHistoryBytes
	case o.MaxHistoryBytes < 0:
		o.MaxHistoryBytes = 0
	}
	if o.HistoryTimeout <= 0 {
		o.HistoryTimeout = DefaultHistoryTimeout
	}
	o.MaxBytesPerIP = limit(o.MaxBytesPerIP, DefaultMaxBytesPerIP)
	switch {
	case o.MaxTotalBytes == 0:
		o.MaxTotalBytes = DefaultMaxTotalBytes
	case o.MaxTotalBytes < 0:
		o.MaxTotalBytes = 0
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = DefaultMaxInterval
	}
	o.MaxInterval = min(o.MaxInterval, o.ConnectTimeout)
	if o.QueuePolicy == "" {
		o.QueuePolicy = QueueDisconnect
	}
	if o.MultiSessionInterval <= 0 {
		o.MultiSessionInterval = DefaultMultiSessionInterval
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.HookTimeout <= 0 {
		o.HookTimeout = DefaultHookTimeout
	}
	return o, nil
}

// limit turns the zero value into the default and a negative value into
// "no bound" (0 inside the hub).
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// validate reports options that cannot work.
func (o Options) validate() error {
	switch o.QueuePolicy {
	case QueueDisconnect, QueueDropOldest:
	default:
		return fmt.Errorf("unknown queue policy %q (want %q or %q)", o.QueuePolicy, QueueDisconnect, QueueDropOldest)
	}
	return checkConnectionTypes(o.ConnectionTypes)
}

// Client is what hooks and service handlers see of one client session.
type Client struct {
	// ID is the client's Bayeux clientId.
	ID string
	// RemoteAddr is the address of the HTTP peer that handshook; empty for
	// local clients.
	RemoteAddr string
	// Local is true for in-process clients.
	Local bool
	// UserID is the user the client authenticated as (see Identity); empty
	// for an anonymous or local client.
	UserID string
	// Info is the user's public info from the handshake (see Identity), as
	// JSON, or nil.
	Info json.RawMessage
	// Flags is free for the application, as the Perl module's client flags:
	// the authorization hook may mark a client authenticated at handshake and
	// read the mark on later messages. It is only used on the session's own
	// goroutine, so it needs no lock.
	Flags map[string]any
}

// ACLFunc authorizes one message from a remote client (Perl: MessageACL).
// It is called for every message, the handshake included (then c is the
// client that will be created). A non-nil error rejects the message: the
// client gets a 403 Bayeux error carrying the error's text, and a rejected
// handshake gets advice reconnect "none".
type ACLFunc func(c *Client, m *protocol.Message) error

// ServiceFunc handles a message published to a /service channel. The
// replies it returns go to the publishing client only, never broadcast; an
// error becomes a Bayeux error for that message.
type ServiceFunc func(c *Client, m *protocol.Message) ([]ServiceReply, error)

// ServiceReply is one message a service handler sends back to its caller.
type ServiceReply struct {
	// Channel defaults to the request's channel.
	Channel string
	// Data is encoded as JSON; a json.RawMessage is sent as it is.
	Data any
}

// Event is one hub event, with the keys of the Perl module's callback hash.
type Event struct {
	Type     EventType
	ClientID string
	Channel  string          // subscribe, unsubscribe, publish, client_push
	Data     json.RawMessage // publish, client_push
	ID       json.RawMessage // publish: the message id, when given
	Ext      json.RawMessage // publish: the message ext, when given
	IP       string          // client_connect of a remote client
	Local    bool            // client_connect of an in-process client
}
