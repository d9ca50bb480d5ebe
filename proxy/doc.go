// Package proxy lets an application's own backend allow or refuse a
// client's handshake, subscribe and publish over HTTP, in the manner of
// Centrifugo's connect, subscribe and publish proxies.
//
// An operator configures a URL per event (Options.HandshakeURL,
// SubscribeURL, PublishURL). For each client request of a configured
// event, the hub's hook (Proxy.Handshake, Subscribe, Publish, each an
// actors.Hook) POSTs a JSON description of the request to that URL and
// the backend's answer allows or refuses it; a handshake answer may also
// set the client's user id, info and granted channels. Events without a
// URL are not proxied: their hook is nil.
//
//	p, err := proxy.New(proxy.Options{
//		HandshakeURL: "http://app.internal/bayeux/handshake",
//		SubscribeURL: "http://app.internal/bayeux/subscribe",
//		Headers:      []string{"Cookie", "Authorization"},
//	})
//	// hub options: HandshakeHook: p.Handshake(), SubscribeHook: p.Subscribe()
//
// # Request
//
// For every call the proxy sends
//
//	POST <url>
//	Content-Type: application/json
//	Accept: application/json
//	User-Agent: bayeuxhub-proxy
//
// (plus Host, Content-Length and Accept-Encoding from Go's HTTP client;
// the client's own headers are never sent as HTTP headers) with a JSON
// object body, for example for a subscribe:
//
//	{"event":"subscribe","client_id":"…","user":"alice","info":{…},"channel":"/chat/demo","ext":{…},"remote_addr":"127.0.0.1:5555","headers":{"Cookie":["a=b"]}}
//
// Its fields, in this order, each omitted when empty (or JSON null):
//
//	event        "handshake", "subscribe" or "publish"
//	client_id    the client's id (for a handshake: the id it will get if allowed)
//	user         the client's user id so far (for a handshake: what its token proved)
//	info         the client's info so far, any JSON value
//	channel      the channel subscribed to or published on; never for a handshake
//	             (a subscribe to several channels is one call per channel)
//	data         the published data, any JSON value; publish only
//	ext          the message's ext object, as the client sent it
//	remote_addr  the address of the client's HTTP peer ("host:port")
//	headers      the client's HTTP request headers named in Options.Headers and
//	             present, as {"Canonical-Name": ["value", ...]}; no others
//
// Asking is idempotent: when a kept-alive connection turns out to have
// been closed by the backend, the request may be sent again on a fresh
// one, within the same deadline.
//
// # Answer
//
// The backend answers HTTP 200 with a JSON object. To allow:
//
//	{"allow": true}
//
// To refuse:
//
//	{"allow": false, "reason": "Banned from this room"}
//
// A handshake answer that allows may add
//
//	{"allow": true, "user": "alice", "info": {…}, "channels": ["/user/alice/**"]}
//
// where "user" (a non-empty string) replaces the client's user id, "info"
// (any JSON value) its info and "channels" (a list of non-empty strings,
// possibly empty) its granted channels. These fields are ignored in a
// subscribe or publish answer and in a refusal; other fields are ignored
// always, and a field that is JSON null counts as absent. The answer's
// Content-Type is not checked.
//
// A refusal makes Check return an error, not wrapping
// actors.ErrHookUnavailable, whose text is the reason, or "Refused by
// backend" when there is none; the hub sends it to the client as a
// "403:<channel>:<reason>" error. The reason is cleaned first: invalid
// UTF-8 and control characters (newlines and tabs included) are dropped,
// surrounding spaces trimmed and the rest cut to 200 bytes.
//
// # Failures
//
// Anything else is a failure: the backend could not decide, and Check
// returns an error wrapping actors.ErrHookUnavailable (the hub answers
// 503). Its text is one of the following, short and safe to show a
// client; the backend's URL and the underlying error are logged at warn
// level instead.
//
//	backend unavailable: timeout after 1s          the deadline passed (the effective
//	                                               budget: Timeout or the ctx's, if earlier)
//	backend unavailable: timeout                   the http.Client's own timeout fired
//	backend unavailable: deadline already passed   ctx had expired before the call
//	backend unavailable: request canceled          ctx was canceled
//	backend unavailable: too many requests in flight
//	                                               no slot free (MaxConcurrency) before the deadline
//	backend unavailable: connection refused
//	backend unavailable: connection reset
//	backend unavailable: connection closed before the answer
//	backend unavailable: host not found
//	backend unavailable: host unreachable
//	backend unavailable: TLS handshake failed
//	backend unavailable: request failed            any other transport error
//	backend unavailable: HTTP 500                  any status but 200 (redirects are not followed: "HTTP 302")
//	backend unavailable: answer is too large       over Options.MaxResponseBytes (64 KiB by default)
//	backend unavailable: answer is not JSON
//	backend unavailable: answer is not a JSON object
//	backend unavailable: answer has no allow field
//	backend unavailable: answer's allow field is not a boolean
//	backend unavailable: answer's reason field is not a string
//	backend unavailable: answer's user field is not a string
//	backend unavailable: answer's user field is empty
//	backend unavailable: answer's channels field is not a list of strings
//	backend unavailable: answer's channels field has an empty name
//	backend unavailable: cannot encode request     the request's info, data or ext is not valid JSON
//
// # Limits
//
// A call never takes longer than Options.Timeout (1s by default) or the
// deadline of the ctx it is given, whichever is earlier, waiting for a slot
// included. At most Options.MaxConcurrency calls (64 by default), over all
// events, are in flight at once. A Proxy is safe for concurrent use;
// Proxy.Stats counts each event's outcomes.
package proxy
