package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// Compile-time check: *NATS is an actors.Broker.
var _ actors.Broker = (*NATS)(nil)

// Defaults for NATSOptions.
const (
	// DefaultPendingMessages is the default capacity of the channel that
	// carries received NATS messages to the delivering goroutine.
	DefaultPendingMessages = 1 << 16
	// DefaultReconnectWait is the default pause between reconnect attempts
	// to the same server.
	DefaultReconnectWait = 2 * time.Second
	// DefaultMaxControlLine is nats-server's default max_control_line: the
	// longest protocol line (verb arguments: subject, reply subject, size)
	// a server reads from a client before it closes the connection.
	DefaultMaxControlLine = 4096
	// DefaultMaxPayload is nats-server's default max_payload, the bound the
	// broker applies to a message until a server has announced its own.
	DefaultMaxPayload = 1 << 20
	// controlLineReserve is what a protocol line holds besides its
	// subject: a reply subject (an inbox, under 100 bytes), the sizes and
	// the spaces. Subjects stay this far below MaxControlLine.
	controlLineReserve = 256
	// minSubjectLimit is the lowest the broker lowers its subject bound to
	// after a server refused a subject as too long.
	minSubjectLimit = 64
	// maxPrefixLength bounds NATSOptions.SubjectPrefix, so that the
	// broker's own subjects are always short.
	maxPrefixLength = 128
	// maxRedialWait bounds the pause between fresh connections after
	// nats.go gave one up.
	maxRedialWait = 30 * time.Second
	// originTTL is how long an origin's high-water mark is kept after its
	// last message; copies of one publish arrive back to back, so any
	// time longer than a network hiccup is safe.
	originTTL = 10 * time.Minute
)

// ErrNotStarted is returned by a NATS broker's methods before Start.
var ErrNotStarted = errors.New("broker: not started")

// ErrClosed is returned by a NATS broker's methods after Close.
var ErrClosed = errors.New("broker: closed")

// ErrSubjectTooLong is returned (wrapped) by Publish, Subscribe, Push and
// Query when the NATS subject is longer than a NATS server takes
// (NATSOptions.MaxControlLine less a reserve): nats-server would close the
// connection over it, so nothing is sent.
var ErrSubjectTooLong = errors.New("NATS subject too long")

// ErrPayloadTooLarge is returned (wrapped) by Publish, Push and Query when
// the message is larger than the NATS server's max_payload (or, before any
// server has announced one, DefaultMaxPayload); nothing is sent.
var ErrPayloadTooLarge = errors.New("NATS message too large")

// NATSOptions configures a NATS broker. Only URLs is required.
type NATSOptions struct {
	// URLs are the NATS servers to connect to ("nats://host:4222"); the
	// client picks one and fails over to the others (and to servers the
	// cluster announces).
	URLs []string
	// SubjectPrefix is the first token(s) of every subject the broker
	// uses (default DefaultSubjectPrefix, "bayeux"): messages go to
	// <prefix>.msg.<channel tokens>, pushes to <prefix>.ctl.<node>. Hubs
	// that should form one Bayeux space must share it; distinct prefixes
	// keep separate spaces apart on one NATS system.
	SubjectPrefix string
	// Logger receives connection events (NATS unreachable at Start and
	// disconnects at warn, joins and reconnects at info, with the server's
	// URL less any credentials) and errors; nil means no logs.
	Logger *zerolog.Logger
	// MaxReconnects bounds the reconnect attempts nats.go makes on one
	// connection; zero or negative means try forever
	// (nats.MaxReconnects(-1)), which is what a hub wants: it keeps
	// serving its local clients meanwhile. When nats.go gives a connection
	// up (these attempts used up, or the server closed it over a protocol
	// error), the broker makes a fresh one after a pause (ReconnectWait,
	// doubling up to 30 s) and subscribes again: it never stops trying
	// until Close.
	MaxReconnects int
	// ReconnectWait is the pause between attempts to reconnect to one
	// server (default DefaultReconnectWait).
	ReconnectWait time.Duration
	// ReconnectBufSize is how many bytes of publishes the client keeps
	// while reconnecting and sends once reconnected (default nats.go's
	// 8 MiB); beyond it Publish fails. Negative keeps nothing: every
	// publish fails while the connection is down.
	ReconnectBufSize int
	// PendingMessages is the capacity of the channel between the NATS
	// connection and the goroutine handing messages to the hub (default
	// DefaultPendingMessages). When it is full, NATS drops messages (a
	// slow consumer); Stats counts them.
	PendingMessages int
	// MaxControlLine is the NATS servers' max_control_line (default
	// DefaultMaxControlLine, nats-server's default; at least 512). A
	// server closes the connection of a client that sends a longer
	// protocol line, so the broker refuses, with ErrSubjectTooLong, any
	// operation whose subject is longer than MaxControlLine less 256
	// bytes. Set it when the servers are configured otherwise. Should a
	// server still refuse a subject, the broker lowers its bound below
	// the longest subject it had sent, forgets the subscriptions above it
	// (logging each) and connects again.
	MaxControlLine int
	// HeartbeatInterval is how often the node announces itself to the
	// others (default DefaultHeartbeatInterval); a node silent for three
	// intervals is no longer waited for by Query.
	HeartbeatInterval time.Duration
	// OnDisconnect, when set, is called (on a nats.go goroutine) when the
	// connection to NATS is lost, after the broker has logged it.
	OnDisconnect func(err error)
	// OnReconnect, when set, is called when the broker has (re)joined NATS
	// after being without it: a reconnect, a fresh connection after
	// nats.go gave one up, or the first connect after a Start that found
	// no server. It gets the server's URL, less any credentials.
	OnReconnect func(url string)
	// Options are further nats.go options (credentials, TLS, timeouts),
	// applied after the broker's own (nats.RetryOnFailedConnect(false)
	// makes Start fail when no server is reachable).
	Options []nats.Option
}

// NATSStats is a snapshot of a NATS broker's counters.
type NATSStats struct {
	// Published counts messages sent to NATS; PublishErrors those that
	// were not (connection closed, reconnect buffer full, subject too
	// long, too large).
	Published, PublishErrors uint64
	// Refused counts the operations (publishes, subscribes, pushes,
	// queries, query answers) the broker did not send because a NATS
	// server would refuse them: ErrSubjectTooLong, ErrPayloadTooLarge.
	Refused uint64
	// Received counts message copies received from NATS, duplicates
	// included; Duplicates the copies dropped because a message from the
	// same origin had already been delivered; Delivered the messages
	// handed to the hub; Malformed envelopes that could not be decoded.
	Received, Duplicates, Delivered, Malformed uint64
	// PushesSent and PushesReceived count client pushes between nodes.
	PushesSent, PushesReceived uint64
	// SlowConsumerDropped counts messages NATS dropped because the
	// delivering goroutine fell PendingMessages behind.
	SlowConsumerDropped uint64
	// Disconnects and Reconnects count connection losses and nats.go's
	// recoveries; Redials the fresh connections the broker made after
	// nats.go gave one up.
	Disconnects, Reconnects, Redials uint64
	// Subscriptions is the number of message subjects this node is
	// subscribed to: one per channel or pattern with local subscribers
	// (while NATS is unreachable, those it will subscribe to on joining).
	Subscriptions int
	// Connected reports whether the connection to NATS is up now.
	Connected bool
}

// NATS is an actors.Broker over NATS core publish/subscribe. Create it with
// NewNATS and put it in actors.Options.Broker (or set server.Config.NATS);
// the hub starts and closes it. See the package documentation for how it
// keeps messages once-only and in order.
type NATS struct {
	opts       NATSOptions
	log        zerolog.Logger
	msgPrefix  string // "<prefix>.msg"
	ctlPrefix  string // "<prefix>.ctl."
	ctlSubject string // "<prefix>.ctl.<node>", set by Start

	startMu sync.Mutex // serialises Start and Close
	started atomic.Bool
	closed  atomic.Bool
	node    string
	origin  string // node + "/" + random: this instance's envelope origin
	inbox   actors.BrokerInbox

	// nc is the current connection. It is replaced (under connMu and
	// subMu) only when nats.go has given the previous one up.
	nc     atomic.Pointer[nats.Conn]
	connMu sync.Mutex    // orders installing a fresh connection against Close
	redial chan struct{} // a connection was closed under the broker; capacity 1

	server      atomic.Pointer[string] // URL (no credentials) of the server last joined
	subjectMax  atomic.Int64           // longest subject the broker sends
	longestSent atomic.Int64           // longest subject sent on the current connection
	maxPayload  atomic.Int64           // the max_payload a server announced last

	msgs chan *nats.Msg // every subscription's messages, in arrival order
	quit chan struct{}
	wg   sync.WaitGroup

	// subs holds the subscription of every pattern this node wants; nil
	// while it has none (nats.go gave the connection up, and the next one
	// subscribes).
	subMu   sync.Mutex
	subs    map[string]*nats.Subscription // pattern -> subscription
	dropped uint64                        // slow-consumer drops of removed subscriptions; under subMu

	// sharedHistory is set when a JetStream history uses this broker
	// (NewJetStreamHistory): envelopes then carry replay ids.
	sharedHistory atomic.Bool

	// pubMu makes sequence order and NATS write order the same.
	pubMu sync.Mutex
	seq   uint64

	// origins is the per-origin high-water mark; the delivering
	// goroutine owns it.
	origins map[string]*originState

	// Membership and queries (cluster.go).
	nodeSubject, querySubject string
	members                   members
	answering                 chan struct{} // semaphore of queries being answered
	answerMu                  sync.Mutex    // orders answers.Add before Close's Wait
	answers                   sync.WaitGroup

	stats struct {
		published, publishErrors                   atomic.Uint64
		received, duplicates, delivered, malformed atomic.Uint64
		pushesSent, pushesReceived                 atomic.Uint64
		disconnects, reconnects, redials           atomic.Uint64
		refused                                    atomic.Uint64
	}
}

// originState is what the delivering goroutine remembers of one origin.
type originState struct {
	seq  uint64    // highest sequence number delivered
	seen time.Time // last message from it
}

// NewNATS checks opts and returns a broker that connects when the hub
// starts it.
func NewNATS(opts NATSOptions) (*NATS, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("broker: NATS: no server URLs")
	}
	for _, u := range opts.URLs {
		if strings.TrimSpace(u) == "" || strings.Contains(u, ",") {
			return nil, fmt.Errorf("broker: NATS: server URL %q: want one URL per entry", redactURL(u))
		}
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if !subjectPrefix.MatchString(opts.SubjectPrefix) || len(opts.SubjectPrefix) > maxPrefixLength {
		return nil, fmt.Errorf("broker: NATS: subject prefix %q: want at most %d bytes of dot-separated tokens of letters, digits, - and _",
			shorten(opts.SubjectPrefix), maxPrefixLength)
	}
	if opts.MaxReconnects <= 0 {
		opts.MaxReconnects = -1
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = DefaultReconnectWait
	}
	if opts.PendingMessages <= 0 {
		opts.PendingMessages = DefaultPendingMessages
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	switch {
	case opts.MaxControlLine == 0:
		opts.MaxControlLine = DefaultMaxControlLine
	case opts.MaxControlLine < 2*controlLineReserve:
		return nil, fmt.Errorf("broker: NATS: max control line %d: want at least %d", opts.MaxControlLine, 2*controlLineReserve)
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = *opts.Logger
	}
	b := &NATS{
		opts:      opts,
		log:       log.With().Str("component", "broker").Logger(),
		msgPrefix: opts.SubjectPrefix + ".msg",
		ctlPrefix: opts.SubjectPrefix + ".ctl.",
		subs:      make(map[string]*nats.Subscription),
		origins:   make(map[string]*originState),
	}
	b.subjectMax.Store(int64(opts.MaxControlLine - controlLineReserve))
	return b, nil
}

// Start connects to NATS as node, subscribes to the node's control subject
// and starts handing other nodes' messages to in. The hub calls it once.
// When no NATS server is reachable, Start returns all the same (after one
// attempt at each URL) and the broker joins as soon as one is: meanwhile
// the hub serves its local clients, Connected reports false, and
// subscriptions and (within ReconnectBufSize) publishes are kept for then.
// Start fails only for a configuration nats.go rejects.
func (b *NATS) Start(node string, in actors.BrokerInbox) error {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	switch {
	case b.closed.Load():
		return fmt.Errorf("broker: NATS: start: %w", ErrClosed)
	case b.started.Load():
		return errors.New("broker: NATS: already started")
	case !nodeName.MatchString(node):
		return fmt.Errorf("broker: NATS: node name %q: want 1 to 32 letters, digits and dashes", node)
	case in == nil:
		return errors.New("broker: NATS: nil inbox")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	b.node, b.origin, b.inbox = node, node+"/"+hex.EncodeToString(rnd[:]), in
	b.ctlSubject = b.ctlPrefix + node
	b.nodeSubject = b.opts.SubjectPrefix + ".node"
	b.querySubject = b.opts.SubjectPrefix + ".query"
	b.answering = make(chan struct{}, maxAnswering)
	b.msgs = make(chan *nats.Msg, b.opts.PendingMessages)
	b.quit = make(chan struct{})
	b.redial = make(chan struct{}, 1)

	if err := b.connect(false); err != nil {
		return err
	}
	if nc := b.nc.Load(); nc.IsConnected() {
		// One round trip, so that pushes and queries to this node work
		// once Start returns.
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			b.log.Warn().Err(err).Str("node", node).Msg("NATS did not answer a flush at start")
		}
	} else {
		b.log.Warn().Str("node", node).Strs("servers", redactURLs(b.opts.URLs)).
			Msg("NATS is not reachable; serving local clients only, and joining as soon as it is")
	}
	b.wg.Add(3)
	go b.deliverLoop()
	go b.heartbeatLoop()
	go b.redialLoop()
	b.started.Store(true)
	return nil
}

// connect makes a connection (a fresh one after nats.go gave the previous
// one up, when redial is set), subscribes it to everything this node wants
// and makes it the broker's. With RetryOnFailedConnect nats.Connect
// returns even when no server is reachable: the connection keeps trying,
// and sends the subscriptions once it is through.
func (b *NATS) connect(redial bool) error {
	discarded := new(atomic.Bool)
	nc, err := nats.Connect(strings.Join(b.opts.URLs, ","), b.natsOptions(redial, discarded)...)
	if err != nil {
		return fmt.Errorf("broker: connect to NATS %s: %w", strings.Join(redactURLs(b.opts.URLs), ","), err)
	}
	discard := func() {
		discarded.Store(true)
		nc.Close()
	}
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if b.closed.Load() {
		discard()
		return ErrClosed
	}
	for _, s := range []struct {
		subject string
		cb      nats.MsgHandler
	}{{b.ctlSubject, nil}, {b.nodeSubject, b.onHeartbeat}, {b.querySubject, b.onQuery}} {
		var err error
		if s.cb == nil {
			_, err = nc.ChanSubscribe(s.subject, b.msgs)
		} else {
			_, err = nc.Subscribe(s.subject, s.cb)
		}
		if err != nil {
			discard()
			return fmt.Errorf("broker: subscribe %s: %w", s.subject, err)
		}
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.longestSent.Store(0)
	for pattern, old := range b.subs {
		if old != nil {
			if n, err := old.Dropped(); err == nil {
				b.dropped += uint64(n)
			}
		}
		subj, _ := appendSubject([]byte(b.msgPrefix), pattern, true) // it was valid when subscribed
		if err := b.checkSubject(string(subj)); err != nil {
			delete(b.subs, pattern)
			b.stats.refused.Add(1)
			b.log.Error().Err(err).Str("pattern", shorten(pattern)).
				Msg("dropping a subscription the NATS server would refuse; other nodes' messages on it no longer reach this one")
			continue
		}
		sub, err := nc.ChanSubscribe(string(subj), b.msgs)
		if err != nil {
			b.log.Error().Err(err).Str("pattern", shorten(pattern)).Msg("NATS subscription not restored")
		}
		b.subs[pattern] = sub // nil on error: tried again on the next connection
	}
	if old := b.nc.Swap(nc); old != nil {
		old.Close() // given up by nats.go already
	}
	if nc.IsConnected() {
		// Subscribed to heartbeats now: the others' answers reach this
		// node (joined's Hello may have gone before).
		b.announce(nc, heartbeat{Hello: true})
	}
	return nil
}

// redialLoop makes a fresh connection whenever nats.go has given the
// current one up, after a pause that doubles (up to maxRedialWait) while
// connections keep failing.
func (b *NATS) redialLoop() {
	defer b.wg.Done()
	wait := b.opts.ReconnectWait
	var last time.Time
	for {
		select {
		case <-b.quit:
			return
		case <-b.redial:
		}
		if nc := b.nc.Load(); nc != nil && !nc.IsClosed() {
			continue // a late signal for a connection replaced already
		}
		if time.Since(last) > 2*maxRedialWait {
			wait = b.opts.ReconnectWait
		}
		pause := time.NewTimer(wait)
		select {
		case <-b.quit:
			pause.Stop()
			return
		case <-pause.C:
		}
		last, wait = time.Now(), min(2*wait, maxRedialWait)
		if err := b.connect(true); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			b.log.Error().Err(err).Str("node", b.node).Dur("retry_in", wait).Msg("no fresh NATS connection")
			b.signalRedial()
			continue
		}
		b.stats.redials.Add(1)
	}
}

// signalRedial tells redialLoop that the current connection may be closed.
func (b *NATS) signalRedial() {
	select {
	case b.redial <- struct{}{}:
	default:
	}
}

// heartbeatLoop announces this node every HeartbeatInterval while the
// connection is up (heartbeats buffered during an outage would be stale,
// and would fill the reconnect buffer).
func (b *NATS) heartbeatLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(b.opts.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if nc := b.nc.Load(); nc.IsConnected() {
				b.announce(nc, heartbeat{})
			}
		case <-b.quit:
			return
		}
	}
}

// joined records and logs that nc has reached a server.
func (b *NATS) joined(nc *nats.Conn, msg string) string {
	url := redactURL(nc.ConnectedUrl())
	b.server.Store(&url)
	if m := nc.MaxPayload(); m > 0 {
		b.maxPayload.Store(m)
	}
	b.log.Info().Str("node", b.node).Str("server", url).Str("prefix", b.opts.SubjectPrefix).Msg(msg)
	b.announce(nc, heartbeat{Hello: true}) // the others answer at once
	return url
}

// serverURL returns the URL of the server last joined, or the configured
// ones before any; without credentials either way.
func (b *NATS) serverURL() string {
	if u := b.server.Load(); u != nil {
		return *u
	}
	return strings.Join(redactURLs(b.opts.URLs), ",")
}

// natsOptions returns the nats.go options for a connection; redial says
// it is a fresh one after nats.go gave one up, discarded is set when the
// broker closes it itself before using it.
func (b *NATS) natsOptions(redial bool, discarded *atomic.Bool) []nats.Option {
	o := b.opts
	ignore := func() bool { return b.closed.Load() || discarded.Load() }
	opts := []nats.Option{
		nats.Name("bayeuxhub " + b.node),
		nats.NoEcho(), // a node's own publishes are delivered locally by the hub
		nats.MaxReconnects(o.MaxReconnects),
		nats.ReconnectWait(o.ReconnectWait),
		nats.RetryOnFailedConnect(true), // a hub starts without NATS and joins later
		nats.ConnectHandler(func(nc *nats.Conn) {
			if ignore() {
				return
			}
			url := b.joined(nc, "joined NATS")
			// The first connect of Start is no rejoin; a late one is.
			if (redial || nc.Stats().Reconnects > 0) && o.OnReconnect != nil {
				o.OnReconnect(url)
			}
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if ignore() {
				return
			}
			b.stats.disconnects.Add(1)
			b.log.Warn().Err(err).Str("node", b.node).Str("server", b.serverURL()).
				Msg("lost the NATS connection; serving local clients only until it is back")
			if o.OnDisconnect != nil {
				o.OnDisconnect(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			if ignore() {
				return
			}
			b.stats.reconnects.Add(1)
			url := b.joined(nc, "NATS connection back; subscriptions restored")
			if o.OnReconnect != nil {
				o.OnReconnect(url)
			}
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if ignore() {
				return
			}
			// nats.go gave the connection up: the server closed it over
			// a protocol error, or MaxReconnects ran out. The broker
			// makes a fresh one.
			err := nc.LastError()
			ev := b.log.Error().Err(err).Str("node", b.node).Str("server", b.serverURL())
			if err != nil && strings.Contains(strings.ToLower(err.Error()), "maximum control line") {
				// The server takes shorter lines than MaxControlLine says:
				// stay below the longest subject sent.
				if n := b.longestSent.Load() - 1; n >= minSubjectLimit && n < b.subjectMax.Load() {
					b.subjectMax.Store(n)
					ev = ev.Int64("max_subject", n)
				}
				ev.Msg("the NATS server refused a subject as too long (its max_control_line is below NATSOptions.MaxControlLine) and closed the connection; subjects are bounded lower now; making a fresh connection")
			} else {
				ev.Msg("NATS connection given up; making a fresh one")
			}
			b.signalRedial()
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := b.log.Error().Err(err).Str("node", b.node)
			if sub != nil {
				ev = ev.Str("subject", shorten(sub.Subject))
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				ev.Msg("NATS messages dropped: the hub is not taking them fast enough")
				return
			}
			ev.Msg("NATS error")
		}),
	}
	if o.ReconnectBufSize != 0 {
		opts = append(opts, nats.ReconnectBufSize(o.ReconnectBufSize))
	}
	return append(opts, o.Options...)
}

// conn returns the current connection once started and until closed.
func (b *NATS) conn() (*nats.Conn, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if !b.started.Load() {
		return nil, ErrNotStarted
	}
	return b.nc.Load(), nil
}

// checkSubject returns ErrSubjectTooLong, wrapped, when a NATS server
// would refuse subject; otherwise it notes its length.
func (b *NATS) checkSubject(subject string) error {
	n, limit := int64(len(subject)), b.subjectMax.Load()
	if n > limit {
		return fmt.Errorf("%w: %d bytes, more than the %d a NATS server takes (max_control_line %d)",
			ErrSubjectTooLong, n, limit, b.opts.MaxControlLine)
	}
	for {
		longest := b.longestSent.Load()
		if n <= longest || b.longestSent.CompareAndSwap(longest, n) {
			return nil
		}
	}
}

// checkPayload returns ErrPayloadTooLarge, wrapped, when a message of n
// bytes is more than the server takes.
func (b *NATS) checkPayload(nc *nats.Conn, n int) error {
	limit := nc.MaxPayload() // 0 before the connection first reached a server
	if limit > 0 {
		b.maxPayload.Store(limit)
	} else if limit = b.maxPayload.Load(); limit <= 0 {
		limit = DefaultMaxPayload
	}
	if int64(n) > limit {
		return fmt.Errorf("%w: %d bytes, more than the NATS server's max_payload of %d", ErrPayloadTooLarge, n, limit)
	}
	return nil
}

// refuse counts an operation not sent because NATS would refuse it.
func (b *NATS) refuse(err error) error {
	b.stats.refused.Add(1)
	return err
}

// Publish sends a message published on this node to the nodes subscribed
// to its channel. It returns an error when NATS cannot take it (closed,
// reconnect buffer full) or would refuse it (subject too long, message
// too large: nothing is sent); a message NATS takes may still be lost if
// the connection fails before it is written (at most once).
func (b *NATS) Publish(m *actors.Message) error {
	if _, err := b.conn(); err != nil {
		return fmt.Errorf("broker: publish %s: %w", shorten(m.Channel), err)
	}
	subj, err := appendSubject([]byte(b.msgPrefix), m.Channel, false)
	if err != nil {
		return fmt.Errorf("broker: publish: %w", err)
	}
	subject := string(subj)
	if err := b.checkSubject(subject); err != nil {
		b.stats.publishErrors.Add(1)
		return b.refuse(fmt.Errorf("broker: publish %s: %w", shorten(m.Channel), err))
	}
	tail := appendEnvelopeBody(make([]byte, 0, 96+len(m.Channel)+len(m.ClientID)+len(m.ID)+len(m.Ext)+len(m.Epoch)+len(m.Data)), m,
		b.sharedHistory.Load())

	// Sequence numbers must reach NATS in order: a receiver drops any
	// sequence not above the last it delivered from this origin.
	b.pubMu.Lock()
	nc := b.nc.Load()
	buf := appendEnvelopeHead(make([]byte, 0, len(b.origin)+32+len(tail)), b.origin, b.seq+1)
	buf = append(buf, tail...)
	if err = b.checkPayload(nc, len(buf)); err == nil {
		b.seq++
		err = nc.Publish(subject, buf)
	} else {
		err = b.refuse(err)
	}
	b.pubMu.Unlock()
	if err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("broker: publish %s to NATS: %w", shorten(m.Channel), err)
	}
	b.stats.published.Add(1)
	return nil
}

// Subscribe subscribes this node to the subject of pattern (a channel name
// or a /* or /** pattern). Subscribing twice to one pattern is a no-op. It
// does not wait for the server: a message another node publishes right
// now may miss this node (see Flush). While NATS is unreachable the
// subscription is kept and made when the broker joins; a pattern whose
// subject a server would refuse is an error (ErrSubjectTooLong) and is not
// kept.
func (b *NATS) Subscribe(pattern string) error {
	if _, err := b.conn(); err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", shorten(pattern), err)
	}
	subj, err := appendSubject([]byte(b.msgPrefix), pattern, true)
	if err != nil {
		return fmt.Errorf("broker: subscribe: %w", err)
	}
	if err := b.checkSubject(string(subj)); err != nil {
		return b.refuse(fmt.Errorf("broker: subscribe %s: %w", shorten(pattern), err))
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if _, ok := b.subs[pattern]; ok {
		return nil
	}
	// Under subMu the connection is the one the subscriptions are on: a
	// fresh one is installed under it too.
	sub, err := b.nc.Load().ChanSubscribe(string(subj), b.msgs)
	switch {
	case err == nil:
		b.log.Debug().Str("pattern", shorten(pattern)).Str("subject", shorten(sub.Subject)).Msg("subscribed")
	case errors.Is(err, nats.ErrConnectionClosed) && !b.closed.Load():
		// nats.go gave the connection up; the fresh one subscribes.
		sub = nil
	default:
		return fmt.Errorf("broker: subscribe %s to NATS: %w", shorten(pattern), err)
	}
	b.subs[pattern] = sub
	return nil
}

// Unsubscribe ends this node's subscription for pattern; messages already
// received for it are still delivered (the hub drops those nobody wants).
// Only a pattern Subscribe took has anything to end: nothing else reaches
// NATS.
func (b *NATS) Unsubscribe(pattern string) error {
	if b.closed.Load() {
		return nil // Close has unsubscribed everything
	}
	if _, err := b.conn(); err != nil {
		return fmt.Errorf("broker: unsubscribe %s: %w", shorten(pattern), err)
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	sub, ok := b.subs[pattern]
	if !ok {
		return nil
	}
	delete(b.subs, pattern)
	if sub == nil {
		return nil // never made on the current connection
	}
	if n, err := sub.Dropped(); err == nil {
		b.dropped += uint64(n)
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("broker: unsubscribe %s from NATS %s: %w", shorten(pattern), shorten(sub.Subject), err)
	}
	b.log.Debug().Str("pattern", shorten(pattern)).Str("subject", shorten(sub.Subject)).Msg("unsubscribed")
	return nil
}

// Push sends a client push to the node that holds the client.
func (b *NATS) Push(node string, p *actors.Push) error {
	nc, err := b.conn()
	if err != nil {
		return fmt.Errorf("broker: push to node %s: %w", node, err)
	}
	if !nodeName.MatchString(node) {
		return fmt.Errorf("broker: push to node %q: not a node name", shorten(node))
	}
	data, err := encodePush(p)
	if err != nil {
		return fmt.Errorf("broker: push to %s: %w", p.ClientID, err)
	}
	subject := b.ctlPrefix + node
	if err := b.checkSubject(subject); err != nil {
		return b.refuse(fmt.Errorf("broker: push to node %s: %w", node, err))
	}
	if err := b.checkPayload(nc, len(data)); err != nil {
		return b.refuse(fmt.Errorf("broker: push to node %s: %w", node, err))
	}
	if err := nc.Publish(subject, data); err != nil {
		return fmt.Errorf("broker: push to node %s over NATS: %w", node, err)
	}
	b.stats.pushesSent.Add(1)
	return nil
}

// Flush waits until the NATS server has processed every subscription
// change and publish this node has sent so far, or ctx ends. After it, a
// message another node publishes to the same server reaches this node's
// new subscriptions (servers of a cluster learn of them a little later).
func (b *NATS) Flush(ctx context.Context) error {
	nc, err := b.conn()
	if err != nil {
		return fmt.Errorf("broker: flush: %w", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("broker: flush NATS connection: %w", err)
	}
	return nil
}

// Close unsubscribes, sends what is still buffered (waiting up to a
// second), closes the connection and stops the delivering goroutine. The
// hub calls it at Shutdown; later calls do nothing.
func (b *NATS) Close() error {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed.Swap(true) || !b.started.Load() {
		return nil
	}
	b.connMu.Lock() // waits for a fresh connection being installed; none is after this
	nc := b.nc.Load()
	b.connMu.Unlock()
	b.subMu.Lock()
	for pattern, sub := range b.subs {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		delete(b.subs, pattern)
	}
	b.subMu.Unlock()
	var err error
	if nc.IsConnected() {
		b.announce(nc, heartbeat{Bye: true})
		if ferr := nc.FlushTimeout(time.Second); ferr != nil {
			err = fmt.Errorf("broker: flush before close: %w", ferr)
		}
	}
	nc.Close()
	close(b.quit)
	b.wg.Wait()
	b.answerMu.Lock() // no answer starts after this: closed is set
	//lint:ignore SA2001 the empty critical section is a barrier
	b.answerMu.Unlock()
	b.answers.Wait()
	b.log.Info().Str("node", b.node).Msg("left NATS")
	return err
}

// Connected reports whether the broker is joined to NATS now: false before
// Start, while no server is reachable (at Start or later), between nats.go
// giving a connection up and the fresh one reaching a server, and after
// Close. /readyz reports it.
func (b *NATS) Connected() bool {
	nc, err := b.conn()
	return err == nil && nc.IsConnected()
}

// Stats returns the broker's counters.
func (b *NATS) Stats() NATSStats {
	s := NATSStats{
		Published:      b.stats.published.Load(),
		PublishErrors:  b.stats.publishErrors.Load(),
		Received:       b.stats.received.Load(),
		Duplicates:     b.stats.duplicates.Load(),
		Delivered:      b.stats.delivered.Load(),
		Malformed:      b.stats.malformed.Load(),
		PushesSent:     b.stats.pushesSent.Load(),
		PushesReceived: b.stats.pushesReceived.Load(),
		Disconnects:    b.stats.disconnects.Load(),
		Reconnects:     b.stats.reconnects.Load(),
		Redials:        b.stats.redials.Load(),
		Refused:        b.stats.refused.Load(),
	}
	b.subMu.Lock()
	s.Subscriptions = len(b.subs)
	s.SlowConsumerDropped = b.dropped
	for _, sub := range b.subs {
		if sub == nil {
			continue
		}
		if n, err := sub.Dropped(); err == nil {
			s.SlowConsumerDropped += uint64(n)
		}
	}
	b.subMu.Unlock()
	s.Connected = b.Connected()
	return s
}

// deliverLoop is the one goroutine that takes messages off the shared
// channel, in the order the connection received them.
func (b *NATS) deliverLoop() {
	defer b.wg.Done()
	prune := time.NewTicker(originTTL / 2)
	defer prune.Stop()
	for {
		select {
		case m := <-b.msgs:
			b.handle(m)
		case now := <-prune.C:
			for o, st := range b.origins {
				if now.Sub(st.seen) > originTTL {
					delete(b.origins, o)
				}
			}
		case <-b.quit:
			return
		}
	}
}

// handle delivers one NATS message to the hub, unless it is a copy of a
// message already delivered.
func (b *NATS) handle(m *nats.Msg) {
	if m.Subject == b.ctlSubject {
		p, err := decodePush(m.Data)
		if err != nil {
			b.stats.malformed.Add(1)
			b.log.Warn().Err(err).Msg("dropping a malformed push from NATS")
			return
		}
		b.stats.pushesReceived.Add(1)
		b.inbox.Push(p)
		return
	}
	b.stats.received.Add(1)
	e, err := decodeEnvelope(m.Data)
	if err != nil {
		b.stats.malformed.Add(1)
		b.log.Warn().Err(err).Str("subject", m.Subject).Msg("dropping a malformed message from NATS")
		return
	}
	st := b.origins[e.Origin]
	if st == nil {
		st = &originState{}
		b.origins[e.Origin] = st
	}
	if e.Seq <= st.seq {
		// A second subscription of this node matched the same publish
		// (its copies arrive back to back), or a stale redelivery.
		b.stats.duplicates.Add(1)
		return
	}
	st.seq, st.seen = e.Seq, time.Now()
	b.stats.delivered.Add(1)
	dm := &actors.Message{Channel: e.Channel, Data: e.Data, ID: e.ID, Ext: e.Ext, ClientID: e.ClientID}
	if e.ReplayID > 0 && b.sharedHistory.Load() {
		// Stamped by the history every node shares: delivered with the
		// same id everywhere. A node keeping its own history stamps
		// the message itself instead.
		dm.ReplayID, dm.Epoch = e.ReplayID, e.Epoch
	}
	b.inbox.Deliver(dm)
}

// redactURL returns a NATS server URL without its user information (user
// name and password, or token), for logs and errors.
func redactURL(s string) string {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "nats://" + s
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: whatever precedes an @ may be credentials.
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "…@" + s[i+1:]
		}
		return s
	}
	u.User = nil
	if raw != s {
		return u.Host
	}
	return u.String()
}

func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return out
}

// shorten cuts s for an error or a log line: a channel name may be long.
func shorten(s string) string {
	const max = 96
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:max], len(s))
}
