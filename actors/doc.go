// Package actors is the core of bayeuxhub: a Bayeux 1.0 hub built from
// protoactor-go actors, in the shape of the POE sessions of the Perl module
// POE::Component::Server::Bayeux.
//
// # Actors
//
//   - The hub actor, named after Options.Alias ("bayeux" by default), is the
//     root everything hangs from. It owns the channel registry: it creates a
//     channel actor the first time a name or pattern is subscribed to and
//     removes it when its last subscriber leaves.
//   - One channel actor per channel name and per wildcard pattern holds that
//     channel's subscribers and fans each publish out to them.
//   - The supervisor actor is the parent of every session actor. It expires
//     sessions whose client has not had a /meta/connect outstanding for
//     Options.ConnectTimeout, and when a session ends for any reason (expiry,
//     disconnect, panic) it completes the session's held connect and forgets
//     it. Channel actors watch their subscribers, so a session that ends is
//     unsubscribed everywhere without a scan.
//   - One session actor per client, remote (HTTP) or local (in-process),
//     holds its subscriptions, its outbound queue and its held /meta/connect.
//
// # Routing
//
// A publish to /a/b/c is sent only to the channel actors registered for
// /a/b/c, /a/b/*, /a/b/**, /a/** and /**. A session subscribed through
// several of those patterns accepts each message only from the oldest of its
// matching subscriptions, so it gets each message once and, since one channel
// actor keeps its senders' order, in each publisher's order.
//
// # Who asks whom
//
// No actor waits on another: every exchange is one-way messages, and the
// only goroutines that block are callers outside the actor system (an HTTP
// request waiting for its replies, a LocalClient call), which wait on a Go
// channel that the session answers or that closes when the session ends.
//
//	transport --batch--> session --subscribe--> hub --add--> channel --ack--> session
//	session/local --publish--> channel --delivery--> session
//	supervisor --expire--> session;  session --terminated--> supervisor, channel
package actors
