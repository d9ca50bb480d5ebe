package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

// Config configures Attach: which connection types to serve and the
// options of the transports that serve them. The zero value serves
// websocket, long-polling and callback-polling with their defaults and
// allows no cross-origin page.
type Config struct {
	// Types lists the connection types to serve, in order of preference
	// (the order handshake replies offer them in): any of websocket,
	// long-polling and callback-polling, each once (see CheckTypes). Empty
	// means DefaultTypes(). A request over a type not listed is refused: an
	// upgrade request, when websocket is not listed, goes to the
	// long-polling handler, which answers HTTP 400 with a Bayeux 400 error;
	// a long-polling or callback-polling request of a type not listed gets
	// HTTP 400 with a Bayeux 400 "Transport disabled" error.
	Types []string
	// AllowedOrigins lists the origins whose pages may make cross-origin
	// long-polling requests (CORS, with credentials) and open WebSockets;
	// "*" allows any. Same-origin pages and clients that send no Origin
	// always may. Empty allows no other origin. It is also
	// WebSocket.AllowedOrigins when that is nil.
	AllowedOrigins []string
	// LongPolling configures the long-polling and callback-polling
	// transport. Its Types field is ignored: Types decides.
	LongPolling Options
	// WebSocket configures the WebSocket transport, built only when Types
	// lists websocket.
	WebSocket WebSocketOptions
}

// Endpoint is the Bayeux endpoint that Attach mounted: the transports
// serving one path (and the paths below it) for one hub.
type Endpoint struct {
	path  string
	types []string
	lp    *LongPolling
	ws    *WebSocket // nil when websocket is not served
}

// Attach builds the transports that c.Types lists, mounts them on r at
// path (for example "/cometd") and at every path below it, as Mount does,
// and makes the hub offer exactly those types in handshake replies and
// accept them in /meta/connect (Hub.SetConnectionTypes), replacing
// actors.Options.ConnectionTypes. WebSocket upgrade requests go to the
// WebSocket transport, every other request to the long-polling one behind
// CORS(c.AllowedOrigins).
//
// A hub offers one set of connection types: attach it once, or on several
// paths with the same Types. Attach mounts nothing when it returns an
// error (a nil router or hub, a path that does not start with "/", or a
// bad Types list).
//
// When the program stops, close the returned Endpoint after Hub.Drain and
// before http.Server.Shutdown, which neither closes nor waits for
// WebSocket connections.
func Attach(r *mux.Router, path string, hub *actors.Hub, c Config) (*Endpoint, error) {
	switch {
	case r == nil:
		return nil, errors.New("transport: Attach: nil router")
	case hub == nil:
		return nil, errors.New("transport: Attach: nil hub")
	case !strings.HasPrefix(path, "/"):
		return nil, fmt.Errorf("transport: Attach: path %q does not start with /", path)
	}
	types := slices.Clone(c.Types)
	if len(types) == 0 {
		types = DefaultTypes()
	}
	if err := CheckTypes(types); err != nil {
		return nil, fmt.Errorf("transport: Attach: %w", err)
	}
	if err := hub.SetConnectionTypes(types); err != nil {
		return nil, fmt.Errorf("transport: Attach: %w", err)
	}
	lpOpts := c.LongPolling
	lpOpts.Types = types
	e := &Endpoint{path: path, types: types, lp: NewLongPolling(hub, lpOpts)}
	h := CORS(c.AllowedOrigins, e.lp)
	if slices.Contains(types, WebSocketType) {
		wsOpts := c.WebSocket
		if wsOpts.AllowedOrigins == nil {
			wsOpts.AllowedOrigins = c.AllowedOrigins
		}
		e.ws = NewWebSocket(hub, wsOpts)
		h = e.ws.Wrap(h)
	}
	Mount(r, path, h)
	return e, nil
}

// Path returns the path the endpoint is mounted at.
func (e *Endpoint) Path() string { return e.path }

// Types returns the connection types the endpoint serves, in order of
// preference: those the hub offers.
func (e *Endpoint) Types() []string { return slices.Clone(e.types) }

// Close closes the endpoint's WebSocket connections with status 1001
// (going away) and refuses new ones, as WebSocket.Close does: call it
// after Hub.Drain, so that the replies to the connects the hub has just
// answered are written first, and before http.Server.Shutdown. It does
// nothing when websocket is not served; long-polling requests end with
// http.Server.Shutdown.
func (e *Endpoint) Close(ctx context.Context) error {
	if e.ws == nil {
		return nil
	}
	return e.ws.Close(ctx)
}
