package protocol

import (
	"errors"
	"strconv"
	"strings"
)

// Error is a Bayeux error, written on the wire in the spec's
// "code:args:message" form, for example "402:abc123:Unknown client".
type Error struct {
	Code    int      // three-digit code
	Args    []string // optional arguments, joined with ","
	Message string   // human-readable text
	// Advice, when non-nil, is sent with the failed reply (for example
	// reconnect "handshake" for an unknown client).
	Advice *Advice
}

// Error returns the wire form of e.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Code))
	b.WriteByte(':')
	for i, a := range e.Args {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a)
	}
	b.WriteByte(':')
	b.WriteString(e.Message)
	return b.String()
}

// Error codes used by bayeuxhub. The spec fixes only the format; these
// follow its examples and CometD's usage.
const (
	CodeBadRequest         = 400 // malformed message or wrong field type
	CodeNoClientID         = 401 // a clientId is required and missing
	CodeUnknownClient      = 402 // unknown or expired clientId
	CodeDenied             = 403 // refused: reserved channel, authorization hook, limit
	CodeUnknownService     = 404 // no handler for a /service channel
	CodeInvalidChannel     = 405 // the name does not follow the channel grammar
	CodeUnsupported        = 406 // version or connection type not supported
	CodeTooLarge           = 413 // request or message over a size limit
	CodeServerError        = 500 // a handler failed; the hub keeps running
	CodeServiceUnavailable = 503 // the hub is shutting down
)

// ErrBadRequest reports a malformed message.
func ErrBadRequest(why string) *Error {
	return &Error{Code: CodeBadRequest, Message: why}
}

// ErrNoClientID reports a message that needs a clientId and has none.
func ErrNoClientID() *Error {
	return &Error{Code: CodeNoClientID, Message: "No client ID"}
}

// ErrUnknownClient reports an unknown or expired client and advises a new
// handshake, as the spec's connection negotiation requires.
func ErrUnknownClient(clientID string) *Error {
	return &Error{
		Code: CodeUnknownClient, Args: []string{clientID}, Message: "Unknown client",
		Advice: &Advice{Reconnect: ReconnectHandshake, Interval: Int(0)},
	}
}

// ErrDenied reports a refused operation on channel with a reason.
func ErrDenied(channel, why string) *Error {
	var args []string
	if channel != "" {
		args = []string{channel}
	}
	return &Error{Code: CodeDenied, Args: args, Message: why}
}

// ErrInvalidChannel reports a name that is not a valid channel.
func ErrInvalidChannel(name string) *Error {
	return &Error{Code: CodeInvalidChannel, Args: []string{name}, Message: "Invalid channel"}
}

// ErrInvalidUTF8 reports a message with a string (anywhere in it: a field
// name, a value, in data or ext at any depth) that is not valid UTF-8.
// Such a message is never passed on: a WebSocket client must close the
// connection on a text frame that is not UTF-8.
func ErrInvalidUTF8() *Error {
	return &Error{Code: CodeBadRequest, Message: "Invalid UTF-8 in message"}
}

// ErrChannelTooLong reports a channel name (or pattern) of more than max
// bytes. The name is not repeated in the error.
func ErrChannelTooLong(max int) *Error {
	return &Error{Code: CodeInvalidChannel, Message: "Channel name too long: over " + strconv.Itoa(max) + " bytes"}
}

// ErrChannelTooDeep reports a channel name (or pattern) of more than max
// segments.
func ErrChannelTooDeep(name string, max int) *Error {
	return &Error{Code: CodeInvalidChannel, Args: []string{name}, Message: "Channel name too deep: over " + strconv.Itoa(max) + " segments"}
}

// ErrUnknownService reports a publish to a /service channel with no handler.
func ErrUnknownService(name string) *Error {
	return &Error{Code: CodeUnknownService, Args: []string{name}, Message: "Unknown service"}
}

// ErrAuthenticationFailed refuses a handshake whose token does not verify
// (why says what is wrong with it) with advice not to retry: the same
// token would fail again.
func ErrAuthenticationFailed(why string) *Error {
	return &Error{Code: CodeDenied, Message: "Authentication failed: " + why, Advice: &Advice{Reconnect: ReconnectNone}}
}

// ErrAuthenticationRequired refuses an anonymous handshake on a hub that
// requires a user, with advice not to retry.
func ErrAuthenticationRequired() *Error {
	return &Error{Code: CodeDenied, Message: "Authentication required", Advice: &Advice{Reconnect: ReconnectNone}}
}

// ErrTokenExpired ends a session whose token has expired, with advice to
// handshake again (with a fresh token).
func ErrTokenExpired(clientID string) *Error {
	return &Error{
		Code: CodeUnknownClient, Args: []string{clientID}, Message: "Token expired",
		Advice: &Advice{Reconnect: ReconnectHandshake, Interval: Int(0)},
	}
}

// ErrRateLimited refuses a publish over its channel rule's rate limit.
func ErrRateLimited(channel string) *Error {
	return ErrDenied(channel, "Rate limit exceeded")
}

// ErrDisconnected tells a client that the server ended its session and
// that it must not come back (advice reconnect "none").
func ErrDisconnected(clientID string) *Error {
	return &Error{Code: CodeDenied, Args: []string{clientID}, Message: "Disconnected by the server",
		Advice: &Advice{Reconnect: ReconnectNone}}
}

// ErrShuttingDown refuses a request because the server is shutting down,
// advising the client to come back (reconnect is ReconnectRetry for a
// publish, ReconnectHandshake for a handshake) after a second, when the
// server or another one behind the same address may serve it.
func ErrShuttingDown(reconnect string) *Error {
	return &Error{Code: CodeServiceUnavailable, Message: "Server shutting down",
		Advice: &Advice{Reconnect: reconnect, Interval: Int(1000)}}
}

// AsError returns the *Error that err is or wraps, or, for any other
// error, a 500 with its text. Code that passes on an error from user code
// (an ACL, a service, a hook) uses it, so that a wrapped *Error keeps its
// code.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeServerError, Message: err.Error()}
}
