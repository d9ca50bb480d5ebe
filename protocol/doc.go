// Package protocol holds the Bayeux 1.0 wire format: the message and reply
// types, channel names and their grammar, the error codes, and the fast JSON
// encoding of replies and deliveries.
//
// It knows nothing of actors or HTTP; both the actor core (package actors)
// and the transports (package transport) build on it.
package protocol
