package actors

import (
	"context"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
)

// Broker joins hubs running on several machines into one Bayeux space: a
// message published on any node reaches subscribers on all of them. Each
// node keeps only its own clients; the broker carries publishes to the
// nodes that have subscribers for their channel, and client pushes to the
// node that holds the client. Package broker provides one on NATS; without
// a broker the hub is a single process.
//
// The hub calls Subscribe and Unsubscribe from its hub actor, in order, and
// Publish and Push from whichever actor or goroutine publishes; all must be
// safe for concurrent use and must not block for long (queue and return).
type Broker interface {
	// Start begins handing other nodes' traffic to the hub through in. The
	// hub calls it once, from Start.
	Start(node string, in BrokerInbox) error
	// Publish sends a message published on this node to the other nodes
	// with subscribers to its channel.
	Publish(m *Message) error
	// Subscribe says this node has gained its first local subscriber to
	// pattern (a channel name or a /* or /** pattern); Unsubscribe that it
	// has lost its last one.
	Subscribe(pattern string) error
	Unsubscribe(pattern string) error
	// Push sends a push to the node named node, which holds p.ClientID.
	Push(node string, p *Push) error
	// Query asks every other node op (with body, both opaque to the
	// broker) and returns their answers, waiting until each node known to
	// be alive has answered or ctx ends; missing names the nodes known to
	// be alive that did not answer in time. The hub uses it for its
	// cluster-wide listings and per-user operations (see ListSessions).
	Query(ctx context.Context, op string, body []byte) (answers []NodeAnswer, missing []string, err error)
	// Close leaves the cluster; the hub calls it at Shutdown.
	Close() error
}

// BrokerInbox is how a broker hands other nodes' traffic to this hub.
type BrokerInbox interface {
	// Deliver routes a message published on another node to this node's
	// subscribers (and not back to the broker). Messages from one node
	// must be delivered in the order that node published them, once each.
	Deliver(m *Message)
	// Push delivers a client push for a client held by this node.
	Push(p *Push)
	// Answer answers another node's Query; it does not block for long.
	Answer(op string, body []byte) ([]byte, error)
}

// NodeAnswer is one node's answer to a Broker.Query: its body, or the
// error it reported.
type NodeAnswer struct {
	Node string
	Body []byte
	Err  string
}

// nodeName is what a node name may look like: it becomes the prefix of the
// node's client ids and part of broker subjects.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)

// nodeIDSep separates a node name from the random part of a client id
// when the hub has a broker.
const nodeIDSep = "_"

// nodeOf returns the node a client id was issued by, or "".
func nodeOf(clientID string) string {
	node, _, ok := strings.Cut(clientID, nodeIDSep)
	if !ok {
		return ""
	}
	return node
}

// hubInbox is the hub's BrokerInbox.
type hubInbox struct{ h *Hub }

func (in hubInbox) Deliver(m *Message) {
	if m.Channel == presenceWire { // between hubs only (presence.go)
		in.h.presenceReceive(m)
		return
	}
	m.fromBroker = true
	if m.ReplayID != 0 { // stamped by a history all nodes share
		_, m.salesforce, _ = in.h.historyOf(m.Channel)
		in.h.routeLocal(in.h.root, m)
		return
	}
	// This node's own history keeps other nodes' messages too, so that
	// its clients replay the channel's whole traffic.
	if err := in.h.routeStamped(m, func(m *Message) { in.h.routeLocal(in.h.root, m) }); err != nil {
		in.h.log.Warn().Str("channel", m.Channel).Msg("message from another node not stored in history; delivered without a replay id")
		in.h.routeLocal(in.h.root, m)
	}
}

func (in hubInbox) Answer(op string, body []byte) ([]byte, error) { return in.h.answer(op, body) }

func (in hubInbox) Push(p *Push) {
	if ref := in.h.lookupSession(p.ClientID); ref != nil {
		in.h.root.Send(ref.pid, p)
		return
	}
	in.h.log.Debug().Str("client", p.ClientID).Msg("broker push for a client this node does not hold")
}

// startBroker starts the configured broker, if any.
func (h *Hub) startBroker() error {
	b := h.opts.Broker
	if b == nil {
		return nil
	}
	if !nodeName.MatchString(h.opts.NodeName) {
		return fmt.Errorf("bayeuxhub: node name %q: want 1 to 32 letters, digits and dashes", h.opts.NodeName)
	}
	if err := b.Start(h.opts.NodeName, hubInbox{h}); err != nil {
		return fmt.Errorf("bayeuxhub: start broker: %w", err)
	}
	return nil
}

// brokerPublish forwards a message published on this node.
func (h *Hub) brokerPublish(m *Message) {
	if h.opts.Broker == nil || m.fromBroker {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			h.stats.brokerErrors.Add(1)
			h.log.Error().Interface("panic", r).Str("channel", m.Channel).Bytes("stack", debug.Stack()).
				Msg("broker publish panicked; other nodes miss this message")
		}
	}()
	if err := h.opts.Broker.Publish(m); err != nil {
		h.stats.brokerErrors.Add(1)
		h.log.Warn().Err(err).Str("channel", m.Channel).Msg("broker publish failed; other nodes miss this message")
	}
}

// brokerSubscription tells the broker about a channel actor coming or going.
func (h *Hub) brokerSubscription(pattern string, on bool) {
	b := h.opts.Broker
	if b == nil {
		return
	}
	var err error
	if on {
		err = b.Subscribe(pattern)
	} else {
		err = b.Unsubscribe(pattern)
	}
	if err != nil {
		h.stats.brokerErrors.Add(1)
		h.log.Warn().Err(err).Str("pattern", pattern).Bool("subscribe", on).Msg("broker subscription change failed")
	}
}
