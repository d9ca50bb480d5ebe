// Package transport carries Bayeux messages between HTTP clients and the
// actor hub (package actors). It decodes requests, hands each batch to
// Hub.HandleRemote and writes the replies; it keeps no session state.
//
// The long-polling transport serves the spec's "long-polling" connection
// type (JSON POST, form-encoded POST and GET with a "message" parameter)
// and "callback-polling" (JSONP over GET).
//
// The WebSocket transport serves "websocket" on the same path: an upgrade
// request to it (WebSocket.Wrap puts it in front of long-polling) becomes a
// socket whose text frames carry Bayeux messages (gorilla/websocket). It
// hands them to the hub through Hub.SubmitFunc, the callback form of
// Hub.Submit that long-polling uses, so a client may switch between the two
// with the same clientId; deliveries are pushed as soon as they are queued,
// through a bounded write queue per connection. An idle connection holds
// one goroutine (its reader) and a 1 KiB read buffer: the writer runs
// while there is output, write buffers are pooled, pings come from a timer
// and held connects are answered through the callback (wsconn.go).
//
// Attach is the way to wire them: it builds the transports a Config
// enables, mounts them on a gorilla/mux router at one path and below it,
// and makes the hub offer exactly the connection types they serve
// (Hub.SetConnectionTypes). Its Endpoint closes the WebSocket connections
// at shutdown. NewLongPolling, NewWebSocket, Wrap and Mount remain for
// programs that arrange the handlers themselves; those must call
// Hub.SetConnectionTypes with the types they serve.
package transport
