package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
	// originTTL is how long an origin's high-water mark is kept after its
	// last message; copies of one publish arrive back to back, so any
	// time longer than a network hiccup is safe.
	originTTL = 10 * time.Minute
)

// ErrNotStarted is returned by a NATS broker's methods before Start.
var ErrNotStarted = errors.New("broker: not started")

// ErrClosed is returned by a NATS broker's methods after Close.
var ErrClosed = errors.New("broker: closed")

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
	// Logger receives connection events (disconnect at warn, reconnect at
	// info) and errors; nil means no logs.
	Logger *zerolog.Logger
	// MaxReconnects bounds reconnect attempts after a connection loss;
	// zero or negative means try forever (nats.MaxReconnects(-1)), which
	// is what a hub wants: it keeps serving its local clients meanwhile.
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
	// HeartbeatInterval is how often the node announces itself to the
	// others (default DefaultHeartbeatInterval); a node silent for three
	// intervals is no longer waited for by Query.
	HeartbeatInterval time.Duration
	// OnDisconnect, when set, is called (on a nats.go goroutine) when the
	// connection to NATS is lost, after the broker has logged it.
	OnDisconnect func(err error)
	// OnReconnect, when set, is called when the connection is back, with
	// the URL of the server it reached.
	OnReconnect func(url string)
	// Options are further nats.go options (credentials, TLS, timeouts),
	// applied after the broker's own.
	Options []nats.Option
}

// NATSStats is a snapshot of a NATS broker's counters.
type NATSStats struct {
	// Published counts messages sent to NATS; PublishErrors those NATS
	// refused (connection closed, reconnect buffer full, too large).
	Published, PublishErrors uint64
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
	// Disconnects and Reconnects count connection losses and recoveries.
	Disconnects, Reconnects uint64
	// Subscriptions is the number of message subjects this node is
	// subscribed to: one per channel or pattern with local subscribers.
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
	nc      *nats.Conn
	inbox   actors.BrokerInbox

	msgs chan *nats.Msg // every subscription's messages, in arrival order
	quit chan struct{}
	wg   sync.WaitGroup

	subMu   sync.Mutex
	subs    map[string]*nats.Subscription // pattern -> subscription
	dropped uint64                        // slow-consumer drops of removed subscriptions; under subMu

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
		disconnects, reconnects                    atomic.Uint64
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
			return nil, fmt.Errorf("broker: NATS: server URL %q: want one URL per entry", u)
		}
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if !subjectPrefix.MatchString(opts.SubjectPrefix) {
		return nil, fmt.Errorf("broker: NATS: subject prefix %q: want dot-separated tokens of letters, digits, - and _", opts.SubjectPrefix)
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
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = *opts.Logger
	}
	return &NATS{
		opts:      opts,
		log:       log.With().Str("component", "broker").Logger(),
		msgPrefix: opts.SubjectPrefix + ".msg",
		ctlPrefix: opts.SubjectPrefix + ".ctl.",
		subs:      make(map[string]*nats.Subscription),
		origins:   make(map[string]*originState),
	}, nil
}

// Start connects to NATS as node, subscribes to the node's control subject
// and starts handing other nodes' messages to in. The hub calls it once.
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
	b.msgs = make(chan *nats.Msg, b.opts.PendingMessages)
	b.quit = make(chan struct{})

	nc, err := nats.Connect(strings.Join(b.opts.URLs, ","), b.natsOptions()...)
	if err != nil {
		return fmt.Errorf("broker: connect to NATS %s: %w", strings.Join(b.opts.URLs, ","), err)
	}
	if _, err := nc.ChanSubscribe(b.ctlSubject, b.msgs); err != nil {
		nc.Close()
		return fmt.Errorf("broker: subscribe %s: %w", b.ctlSubject, err)
	}
	b.nc = nc
	if err := b.startCluster(nc); err != nil {
		nc.Close()
		return err
	}
	// One round trip, so that pushes and queries to this node work once
	// Start returns.
	if err := nc.Flush(); err != nil {
		nc.Close()
		close(b.quit)
		b.wg.Wait()
		return fmt.Errorf("broker: flush NATS connection: %w", err)
	}
	b.wg.Add(1)
	go b.deliverLoop()
	b.started.Store(true)
	b.log.Info().Str("node", node).Str("server", nc.ConnectedUrlRedacted()).
		Str("prefix", b.opts.SubjectPrefix).Msg("joined NATS")
	return nil
}

// natsOptions returns the nats.go options for the connection.
func (b *NATS) natsOptions() []nats.Option {
	o := b.opts
	opts := []nats.Option{
		nats.Name("bayeuxhub " + b.node),
		nats.NoEcho(), // a node's own publishes are delivered locally by the hub
		nats.MaxReconnects(o.MaxReconnects),
		nats.ReconnectWait(o.ReconnectWait),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if b.closed.Load() {
				return
			}
			b.stats.disconnects.Add(1)
			b.log.Warn().Err(err).Str("node", b.node).
				Msg("lost the NATS connection; serving local clients only until it is back")
			if o.OnDisconnect != nil {
				o.OnDisconnect(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.stats.reconnects.Add(1)
			url := nc.ConnectedUrlRedacted()
			b.log.Info().Str("node", b.node).Str("server", url).
				Msg("NATS connection back; subscriptions restored")
			if o.OnReconnect != nil {
				o.OnReconnect(url)
			}
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if !b.closed.Load() {
				b.log.Error().Err(nc.LastError()).Str("node", b.node).
					Msg("NATS connection closed for good; other nodes are out of reach")
			}
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := b.log.Error().Err(err).Str("node", b.node)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
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

// conn returns the connection once started and until closed.
func (b *NATS) conn() (*nats.Conn, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if !b.started.Load() {
		return nil, ErrNotStarted
	}
	return b.nc, nil
}

// Publish sends a message published on this node to the nodes subscribed
// to its channel. It returns an error when NATS cannot take it (closed,
// reconnect buffer full); a message NATS takes may still be lost if the
// connection fails before it is written (at most once).
func (b *NATS) Publish(m *actors.Message) error {
	nc, err := b.conn()
	if err != nil {
		return fmt.Errorf("broker: publish %s: %w", m.Channel, err)
	}
	subj, err := appendSubject([]byte(b.msgPrefix), m.Channel, false)
	if err != nil {
		return fmt.Errorf("broker: publish: %w", err)
	}
	tail := appendEnvelopeTail(make([]byte, 0, 64+len(m.Channel)+len(m.ClientID)+len(m.ID)+len(m.Ext)+len(m.Data)), m)
	subject := string(subj)

	// Sequence numbers must reach NATS in order: a receiver drops any
	// sequence not above the last it delivered from this origin.
	b.pubMu.Lock()
	b.seq++
	buf := appendEnvelopeHead(make([]byte, 0, len(b.origin)+32+len(tail)), b.origin, b.seq)
	err = nc.Publish(subject, append(buf, tail...))
	b.pubMu.Unlock()
	if err != nil {
		b.stats.publishErrors.Add(1)
		return fmt.Errorf("broker: publish %s to NATS: %w", m.Channel, err)
	}
	b.stats.published.Add(1)
	return nil
}

// Subscribe subscribes this node to the subject of pattern (a channel name
// or a /* or /** pattern). Subscribing twice to one pattern is a no-op. It
// does not wait for the server: a message another node publishes right
// now may miss this node (see Flush).
func (b *NATS) Subscribe(pattern string) error {
	nc, err := b.conn()
	if err != nil {
		return fmt.Errorf("broker: subscribe %s: %w", pattern, err)
	}
	subj, err := appendSubject([]byte(b.msgPrefix), pattern, true)
	if err != nil {
		return fmt.Errorf("broker: subscribe: %w", err)
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	if _, ok := b.subs[pattern]; ok {
		return nil
	}
	sub, err := nc.ChanSubscribe(string(subj), b.msgs)
	if err != nil {
		return fmt.Errorf("broker: subscribe %s to NATS %s: %w", pattern, subj, err)
	}
	b.subs[pattern] = sub
	b.log.Debug().Str("pattern", pattern).Str("subject", sub.Subject).Msg("subscribed")
	return nil
}

// Unsubscribe ends this node's subscription for pattern; messages already
// received for it are still delivered (the hub drops those nobody wants).
func (b *NATS) Unsubscribe(pattern string) error {
	if b.closed.Load() {
		return nil // Close has unsubscribed everything
	}
	if _, err := b.conn(); err != nil {
		return fmt.Errorf("broker: unsubscribe %s: %w", pattern, err)
	}
	b.subMu.Lock()
	defer b.subMu.Unlock()
	sub, ok := b.subs[pattern]
	if !ok {
		return nil
	}
	delete(b.subs, pattern)
	if n, err := sub.Dropped(); err == nil {
		b.dropped += uint64(n)
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("broker: unsubscribe %s from NATS %s: %w", pattern, sub.Subject, err)
	}
	b.log.Debug().Str("pattern", pattern).Str("subject", sub.Subject).Msg("unsubscribed")
	return nil
}

// Push sends a client push to the node that holds the client.
func (b *NATS) Push(node string, p *actors.Push) error {
	nc, err := b.conn()
	if err != nil {
		return fmt.Errorf("broker: push to node %s: %w", node, err)
	}
	if !nodeName.MatchString(node) {
		return fmt.Errorf("broker: push to node %q: not a node name", node)
	}
	data, err := encodePush(p)
	if err != nil {
		return fmt.Errorf("broker: push to %s: %w", p.ClientID, err)
	}
	if err := nc.Publish(b.ctlPrefix+node, data); err != nil {
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
	b.subMu.Lock()
	for pattern, sub := range b.subs {
		_ = sub.Unsubscribe()
		delete(b.subs, pattern)
	}
	b.subMu.Unlock()
	b.announce(b.nc, heartbeat{Bye: true})
	var err error
	if b.nc.IsConnected() {
		if ferr := b.nc.FlushTimeout(time.Second); ferr != nil {
			err = fmt.Errorf("broker: flush before close: %w", ferr)
		}
	}
	b.nc.Close()
	close(b.quit)
	b.wg.Wait()
	b.answerMu.Lock() // no answer starts after this: closed is set
	//lint:ignore SA2001 the empty critical section is a barrier
	b.answerMu.Unlock()
	b.answers.Wait()
	b.log.Info().Str("node", b.node).Msg("left NATS")
	return err
}

// Connected reports whether the connection to NATS is up now (false
// before Start and after Close).
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
	}
	b.subMu.Lock()
	s.Subscriptions = len(b.subs)
	s.SlowConsumerDropped = b.dropped
	for _, sub := range b.subs {
		if n, err := sub.Dropped(); err == nil {
			s.SlowConsumerDropped += uint64(n)
		}
	}
	b.subMu.Unlock()
	if nc, err := b.conn(); err == nil {
		s.Connected = nc.IsConnected()
	}
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
	b.inbox.Deliver(&actors.Message{Channel: e.Channel, Data: e.Data, ID: e.ID, Ext: e.Ext, ClientID: e.ClientID})
}
