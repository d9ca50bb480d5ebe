// Package metrics serves bayeuxhub's Prometheus metrics at /metrics.
//
// [NewHandler] builds a handler on a private registry (never the global
// default one) holding the Go runtime and process collectors and the
// bayeuxhub series, which are read from a [Snapshot] function once per
// scrape, so the hub need not update Prometheus objects on its hot paths:
//
//	bayeuxhub_clients                    gauge    open client sessions (remote and local)
//	bayeuxhub_channels                   gauge    channel actors alive
//	bayeuxhub_messages_published_total   counter  messages accepted for publish
//	bayeuxhub_messages_delivered_total   counter  messages delivered to subscribers
//	bayeuxhub_handshakes_total           counter  successful handshakes
package metrics
