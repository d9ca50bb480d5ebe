// Package broker joins bayeuxhub hubs on several machines into one Bayeux
// space over NATS (https://nats.io): a message published on any node
// reaches the subscribers of every node, and a client push reaches the
// node that holds the client. It implements actors.Broker; the hub calls
// it, the application only creates it:
//
//	b, err := broker.NewNATS(broker.NATSOptions{URLs: []string{"nats://10.0.0.5:4222"}})
//	hub, err := actors.Start(system, actors.Options{Broker: b, NodeName: "web-1"})
//
// or sets server.Config.NATS (the --nats flag of cmd/bayeuxhub). Without a
// broker a hub is a single process and needs no external service.
//
// # Subjects
//
// A channel maps to a subject under <prefix>.msg (prefix "bayeux" by
// default), one token per segment, and the Bayeux wildcards map to NATS's:
//
//	/a/b/c -> bayeux.msg.a.b.c
//	/a/*   -> bayeux.msg.a.*     (one more segment, as in Bayeux)
//	/a/**  -> bayeux.msg.a.>     (one or more segments)
//	/**    -> bayeux.msg.>
//
// Bayeux channel segments are alphanumerics and "-_!~()$@", none of which
// NATS treats specially; any other byte (there should be none, the hub
// checks channel names) is %-escaped, so the mapping is one to one.
//
// A node subscribes to a subject only while it has a local subscriber for
// that channel or pattern: the hub calls Subscribe when it creates the
// channel actor for its first local subscriber and Unsubscribe when the
// last one leaves. NATS therefore sends a message only to the nodes that
// want it. Each node also subscribes to its control subject
// <prefix>.ctl.<node>, where other nodes send client pushes (Hub.Push for a
// client whose id carries this node's name). Service requests need no
// cross-node path: a service runs on the node that holds its caller.
//
// # Once and in order per origin
//
// The hub promises each subscriber every message once, in its publisher's
// order. Across nodes two things threaten that:
//
//   - Overlapping subscriptions. A node subscribed to both /a/** and /a/b
//     holds two NATS subscriptions that match a publish to /a/b, and NATS
//     sends it two copies. The hub must get one: it routes a delivered
//     message to all its local channel actors for the name and its
//     patterns itself.
//   - Concurrency. Copies arriving on different goroutines could be
//     delivered in any order.
//
// The broker therefore does this:
//
//  1. Every publish carries its origin (the publishing broker instance:
//     node name plus a random suffix, so a restarted node starts afresh)
//     and a per-origin sequence number. Numbers are taken and written to
//     the connection under one lock, so they reach NATS in increasing
//     order.
//  2. All of a node's subscriptions, the control subject included, feed
//     one Go channel (nats.Conn.ChanSubscribe with the same channel), in
//     the order the connection received them, and one goroutine consumes
//     it. NATS delivers one publisher connection's messages to one
//     subscriber connection in the order they were published (the server
//     handles a client's publishes one after another, and a cluster
//     forwards them over one route per account), and it writes all the
//     copies of one publish for one connection while handling that
//     publish, before the next publish of the same origin. So, per origin,
//     the node sees copies of message n, then copies of n+1, never an
//     earlier message after a later one.
//  3. The goroutine keeps, per origin, the highest sequence number it has
//     delivered (the high-water mark) and drops any message whose number is
//     not above it: the second copy of a publish, and nothing else. A gap
//     (a message NATS lost or that went only to nodes with other
//     subscriptions) is fine: later numbers are still above the mark.
//
// Messages from different origins interleave freely, as messages from two
// publishers do on one hub. The copies are dropped before they reach any
// actor. A node's own publishes never come back (nats.NoEcho): the hub has
// already delivered them locally.
//
// The goroutine hands each message to the hub with BrokerInbox.Deliver,
// which only sends to channel actors' mailboxes, so it keeps up with the
// connection. If it ever falls NATSOptions.PendingMessages behind, NATS
// drops messages for this node (a slow consumer); NATSStats counts them and
// the broker logs it.
//
// # Guarantees between nodes
//
// NATS core is at most once. A message is lost for another node when the
// publishing node's connection is down and its reconnect buffer full (the
// publish fails: the hub counts it in Stats().BrokerErrors and logs it),
// when a connection drops with the message unsent or unread, or when the
// receiving node's subscription is not yet known to the NATS server (a
// subscription takes effect across nodes after a round trip; Flush waits
// for it). Per-publisher order and once-per-subscriber still hold for what
// is delivered. The CometD ack extension covers only the hop from a hub to
// its own client.
//
// # The link to NATS
//
// While NATS is unreachable a hub keeps serving its local clients and
// Connected reports false (server's /readyz says 503). That includes the
// start: Start returns at once when no server answers
// (nats.RetryOnFailedConnect) and the broker joins when one does, making
// then the subscriptions asked for meanwhile. After a loss, nats.go
// reconnects (forever by default), re-subscribes every subject by itself
// and sends the publishes it buffered. nats.go gives a connection up for
// good when the server closes it over a protocol error (an -ERR such as
// "maximum control line exceeded") or when NATSOptions.MaxReconnects runs
// out; the broker then makes a fresh connection, after a pause that
// doubles from ReconnectWait up to 30 s, and subscribes it to everything
// this node wants.
//
// So that the server has no cause to close it, the broker checks every
// subject and message before it reaches the connection: a subject longer
// than NATSOptions.MaxControlLine less 256 bytes (the reply subject and
// sizes share the protocol line) is ErrSubjectTooLong, a message over the
// server's max_payload (DefaultMaxPayload until a server has announced
// one) ErrPayloadTooLarge; nothing is sent and the hub counts the error.
// Should a server take shorter lines than MaxControlLine says and close
// the connection over one, the broker bounds subjects below the longest it
// had sent on that connection and drops the subscriptions above the bound
// (logging each) before connecting again.
package broker
