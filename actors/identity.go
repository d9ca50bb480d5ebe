package actors

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Identity is who a client is, as its handshake established it: from a
// verified token (Options.Authenticator), from the handshake hook
// (Options.HandshakeHook), or neither (an anonymous client, UserID empty).
// A session's identity does not change.
type Identity struct {
	// UserID is the application's id of the user (a token's "sub"); empty
	// for an anonymous client. Channel rules give "authenticated" access to
	// clients with a UserID, and "owner" access to the channels whose
	// {sub} segment is their UserID.
	UserID string
	// Info is the application's public data about the user (a token's
	// "info" claim, or what the handshake hook returned), as JSON; nil for
	// none. It is kept with the session and shown to the backend API and
	// the hooks.
	Info json.RawMessage
	// Channels are channel names and patterns the user is granted (a
	// token's "channels" claim): channel rules give "granted" access to
	// them.
	Channels []string
	// ExpiresAt, when not zero, ends the session when it passes (a token's
	// "exp"): the client is told to handshake again, with a fresh token.
	ExpiresAt time.Time
}

// Authenticator verifies the token a client presents at handshake. The hub
// calls it only when there is a token: in the handshake's ext as
// {"auth": {"token": "..."}}, or else in the HTTP request's
// "Authorization: Bearer ..." header. Package auth provides one for JWTs.
type Authenticator interface {
	// Authenticate returns the identity the token proves, or an error that
	// says why it does not; the error's text is sent to the client, so it
	// must not contain secrets. ctx carries the hub's deadline
	// (Options.AuthTimeout); an implementation that fetches keys must give
	// up when it ends.
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// HookEvent names the client request a Hook is asked about.
type HookEvent string

// The requests a hook can be asked about.
const (
	HookHandshake HookEvent = "handshake"
	HookSubscribe HookEvent = "subscribe"
	HookPublish   HookEvent = "publish"
)

// HookRequest describes a client's request to a Hook. It is the hook's to
// read only.
type HookRequest struct {
	Event HookEvent
	// ClientID is the client's id; for a handshake, the id the client will
	// get if it is allowed.
	ClientID string
	// UserID and Info are the client's identity so far (for a handshake:
	// what its token proved, if anything).
	UserID string
	Info   json.RawMessage
	// Channel is the channel subscribed to or published on (one request per
	// channel of a multi-channel subscribe); empty for a handshake.
	Channel string
	// Data is the published data (publish only).
	Data json.RawMessage
	// Ext is the message's ext object, as the client sent it.
	Ext json.RawMessage
	// RemoteAddr is the address of the client's HTTP peer.
	RemoteAddr string
	// Header holds the headers of the HTTP request that carried the message
	// (for WebSocket, of the upgrade request); nil for none.
	Header http.Header
}

// HookResult is what an allowing hook may say about the client. Only a
// handshake hook's result is used: a non-empty UserID replaces the
// client's user id, a non-nil Info its info and a non-nil Channels its
// granted channels.
type HookResult struct {
	UserID   string
	Info     json.RawMessage
	Channels []string
}

// Hook lets the application allow or refuse a client's handshake,
// subscribe or publish, typically by asking its own backend (package proxy
// does that over HTTP). Hooks run after the channel rules and MessageACL
// have allowed the request.
//
// Check returns nil or a result to allow. An error refuses the request:
// one that wraps ErrHookUnavailable means the hook could not decide (its
// backend timed out, failed or answered nonsense) and is refused with a
// 503 error; a *protocol.Error (wrapped or not) is sent as it is; any
// other error is a 403 with the error's text as the reason. ctx carries
// the hub's deadline (Options.HookTimeout). A hook may call the hub's
// methods.
type Hook interface {
	Check(ctx context.Context, req *HookRequest) (*HookResult, error)
}

// HookFunc adapts a function to Hook.
type HookFunc func(ctx context.Context, req *HookRequest) (*HookResult, error)

// Check calls f.
func (f HookFunc) Check(ctx context.Context, req *HookRequest) (*HookResult, error) {
	return f(ctx, req)
}
