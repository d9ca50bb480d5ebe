package actors

import (
	"errors"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// The errors of the hub's Go API, in one place. Methods wrap them with
// what was asked (errors.Is finds them); a refusal a Bayeux client would
// get as well is a *protocol.Error (errors.As finds it), whatever way the
// action was asked for.
var (
	// ErrClosed is returned by hub operations after Shutdown has begun,
	// by a publish while the hub drains, and by a LocalClient's methods
	// once its session has ended.
	ErrClosed = errors.New("bayeuxhub: hub is shut down")
	// ErrClientExists is returned by NewLocalClient for an id already in
	// use.
	ErrClientExists = errors.New("bayeuxhub: client id already in use")
	// ErrUnknownClient is returned when a client id names no live session.
	ErrUnknownClient = errors.New("bayeuxhub: unknown client")
	// ErrNotSubscribed is returned by Unsubscribe for a channel the client
	// is not subscribed to.
	ErrNotSubscribed = errors.New("bayeuxhub: not subscribed")
	// ErrHookUnavailable marks a hook's error as "could not decide" rather
	// than "refused": wrap it (fmt.Errorf("...: %w",
	// actors.ErrHookUnavailable)).
	ErrHookUnavailable = errors.New("backend unavailable")
)

// Refusals of the server's own requests (Hub.Publish, Hub.Push and their
// actor messages) that a remote client never gets.
var (
	// errServiceChannel refuses a server-side publish to a /service
	// channel: services answer remote clients only.
	errServiceChannel = protocol.ErrDenied("", "Service channels answer remote clients only")
)

// errTooManyChannels refuses a subscribe that would create a channel past
// Options.MaxChannels.
func errTooManyChannels(pattern string) *protocol.Error {
	return protocol.ErrDenied(pattern, "Too many channels")
}
