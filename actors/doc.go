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
//   - One channel actor per channel name and per wildcard pattern owns that
//     channel's subscriber list and publishes an immutable copy of it after
//     every change, for routing.
//   - The supervisor actor is the parent of every session actor. It
//     spawns sessions, expires those whose client has not had a
//     /meta/connect outstanding for Options.MaxInterval, and forgets a
//     session when it ends for any reason (expiry, disconnect, panic). The
//     session itself answers its held connect as it stops. Channel actors
//     watch their subscribers, so a session that ends is unsubscribed
//     everywhere without a scan.
//   - One session actor per client, remote (HTTP) or local (in-process),
//     holds its subscriptions and runs its jobs in order: the batches of a
//     remote client's requests (batch.go), a local client's subscribes and
//     unsubscribes (localop.go). What the client receives goes to its
//     outbox: for a remote client the queue, the held /meta/connect and the
//     pushing socket (outbox_remote.go); for a local client its PIDs and
//     the goroutine that runs its callbacks (outbox.go).
//
// # Where things are
//
//	hub.go          Hub, Start, Drain, Shutdown, routing, the hub actor
//	api.go          the actor API (Publish, Subscribe, Push, ...), Push, Disconnect
//	local.go        LocalClient, Hub.Publish
//	admin.go        listings and per-user operations, cluster-wide
//	submit.go       HandleRemote and Submit: a transport's requests to sessions
//	handshake.go    handshakes, identity, connection types, advice
//	authorize.go    channel rules, MessageACL, hooks, refusal counts
//	session.go      the session actor and its subscriptions
//	job.go          the session's job loop; batch.go, localop.go: the jobs
//	outbox*.go      where a session's deliveries go
//	channel.go      the channel actor; supervisor.go: the supervisor
//	events.go       Options.Callback and the event stream, on one goroutine
//	gate.go         how Drain waits for publishes in flight
//	messages.go     every message the actors send each other
//	errors.go       the API's errors
//	inputlimits.go  what a message may contain: channel name bounds, size, UTF-8
//	limits.go       per-address and whole-hub limits (sessions, subscriptions, bytes)
//	history.go      what the hub needs of a history store; history_memory.go: its own
//	replay.go       stamping publishes with replay ids, replaying on subscribe
//	presence.go     who is subscribed to presence channels: events, queries,
//	                the view of the other hubs' members
//	ordering.txt    every send, every blocking wait, every lock, and the
//	                rule that keeps them acyclic
//
// # Routing
//
// A publish to /a/b/c consults only the channels /a/b/c, /a/b/*, /a/b/**,
// /a/** and /**. The publisher's own actor (or goroutine, for a local
// client) reads their subscriber lists, takes the union and sends each
// subscriber session one copy, so a session gets each message once and, as
// one sender's messages arrive in order, in each publisher's order across
// channels.
//
// # Who may do what
//
// A remote client's handshake establishes its Identity: a token verified
// by Options.Authenticator, then Options.HandshakeHook (which may name the
// user); Options.RequireUser refuses one left anonymous. Every channel
// name in its messages (and in every publish, subscribe, unsubscribe and
// push of the server's own) is first held to Options.MaxChannelLength and
// MaxChannelDepth (inputlimits.go). Its subscribes
// and publishes then go through Options.Rules (package acl) and their
// publish rate limits, MessageACL, and the subscribe and publish hooks, in
// that order (authorize.go). Hooks run on goroutines of their own, bounded
// by Options.HookTimeout: the session waits for the answer without
// blocking, delivering to its client meanwhile. The server's own
// publishes (Hub.Publish, local clients, the actor API, package api) are
// not subject to the rules.
//
// # Who asks whom
//
// No actor waits on another: every exchange is one-way messages, and the
// only goroutines that block are callers outside the actor system (an HTTP
// request waiting for its replies, a LocalClient call, Drain), which wait
// on a Go channel that the session answers or that closes when the session
// ends. User code runs where it cannot hold up what it may call: local
// callbacks on their client's callback goroutine, Options.Callback on the
// hub's event goroutine, hooks on goroutines of their own. ordering.txt
// lists every send and wait.
//
//	transport --batch--> session --subscribe--> hub --add--> channel --ack--> session
//	session/local --message--> subscriber sessions (lists read from the channels)
//	supervisor --expire, drain--> session;  session --terminated--> supervisor, channel
package actors
