// Package transport carries Bayeux messages between HTTP clients and the
// actor hub (package actors). It decodes requests, hands each batch to
// Hub.HandleRemote and writes the replies; it keeps no session state.
//
// The long-polling transport serves the spec's "long-polling" connection
// type (JSON POST, form-encoded POST and GET with a "message" parameter)
// and "callback-polling" (JSONP over GET).
package transport
