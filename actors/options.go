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

// Options configures a hub. The zero value is usable: every field has a
// default. The names follow the Perl module's spawn arguments.
type Options struct {
	// Alias is the hub actor's name in the actor system (Perl: Alias).
	Alias string
	// AnonPublish lets remote clients publish without a handshake
	// (Perl: AnonPublish).
	AnonPublish bool
	// ConnectTimeout is how long a remote client may go without a
	// /meta/connect outstanding before its session is removed
	// (Perl: ConnectTimeout, default 120 s).
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
	// MaxMessageSize bounds a published message's data plus ext, in bytes;
	// default DefaultMaxMessageSize, negative for no bound.
	MaxMessageSize int
	// MaxSessionsPerIP bounds the open sessions handshaken from one remote
	// address; default DefaultMaxSessionsPerIP, negative for no bound.
	MaxSessionsPerIP int
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
	o.MaxSessionsPerIP = limit(o.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	o.MaxSessionsPerBrowser = limit(o.MaxSessionsPerBrowser, DefaultMaxSessionsPerBrowser)
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
