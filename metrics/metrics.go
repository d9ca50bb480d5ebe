package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the state of the hub at one instant, as reported to Prometheus.
// The counters only grow while the process runs.
type Snapshot struct {
	Clients    int    // open client sessions (remote + local)
	Channels   int    // channel actors alive
	Published  uint64 // messages accepted for publish since start (counter)
	Delivered  uint64 // messages delivered to subscribers since start (counter)
	Handshakes uint64 // successful handshakes since start (counter)

	Held         int    // /meta/connect requests held open
	Queued       int    // messages waiting in sessions' queues
	Overflows    uint64 // sessions that reached the queue limit (counter)
	Dropped      uint64 // messages dropped by drop-oldest (counter)
	BrokerErrors uint64 // cluster broker failures (counter)
	Expired      uint64 // sessions ended because their token expired (counter)

	QueuedBytes    int64  // bytes sessions keep for their clients
	Evicted        uint64 // sessions that never connected, ended to make room (counter)
	EventsDropped  uint64 // events the callback missed (counter)
	HistoryBytes   int64  // bytes the in-memory history holds
	HistoryEvicted uint64 // history messages dropped by their bounds (counter)

	PresenceChannels  int    // presence channels with members
	PresenceMembers   int    // members of presence channels, summed
	PresenceUntracked uint64 // joins past the presence limits, not tracked (counter)
	PresenceDropped   uint64 // join and leave events not published (counter)
	PresenceSyncs     uint64 // other hubs' presence fetched whole (counter)

	// Refusals counts refused requests by action, channel rule and reason.
	Refusals []Refusal
	// Hooks counts the backend proxy's calls per event.
	Hooks []HookCounts
}

// Refusal is the number of requests refused for one action, rule and
// reason (see actors.Refusal).
type Refusal struct {
	Action, Rule, Reason string
	Count                uint64
}

// HookCounts are the backend proxy's counters for one event (see
// proxy.EventStats).
type HookCounts struct {
	Event                                                string
	Calls, Allowed, Refused, Unavailable, Timeouts, Busy uint64
}

// NewHandler returns an http.Handler serving the Prometheus text format for a
// private registry with the Go runtime collector, the process collector and
// the bayeuxhub metrics, which are read by calling src once per scrape. src
// must be safe to call from any goroutine; NewHandler panics if it is nil.
func NewHandler(src func() Snapshot) http.Handler {
	if src == nil {
		panic("metrics: NewHandler with a nil Snapshot function")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newHubCollector(src),
	)
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry: reg, // counts promhttp_metric_handler_errors_total
	}))
}

// hubCollector turns one Snapshot per scrape into constant metrics.
type hubCollector struct {
	src     func() Snapshot
	metrics []hubMetric

	refusals, hookCalls, hookFailures *prometheus.Desc
}

// hubMetric is one bayeuxhub figure: its description, kind and value.
type hubMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Snapshot) float64
}

var _ prometheus.Collector = (*hubCollector)(nil)

func newHubCollector(src func() Snapshot) *hubCollector {
	gauge := func(name, help string, v func(Snapshot) float64) hubMetric {
		return hubMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
	}
	counter := func(name, help string, v func(Snapshot) float64) hubMetric {
		return hubMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v}
	}
	return &hubCollector{src: src,
		refusals: prometheus.NewDesc("bayeuxhub_refusals_total",
			"Requests refused, by action (handshake, subscribe, publish), channel rule (none: no rule involved) and reason (rule, rate-limit, acl, hook, hook-unavailable, token, anonymous, limit, memory).",
			[]string{"action", "rule", "reason"}, nil),
		hookCalls: prometheus.NewDesc("bayeuxhub_proxy_requests_total",
			"Calls to the application's backend (the proxy hooks), by event and result (allowed, refused, unavailable).",
			[]string{"event", "result"}, nil),
		hookFailures: prometheus.NewDesc("bayeuxhub_proxy_failures_total",
			"Unavailable backend calls that timed out or found no free slot, by event and kind (timeout, busy).",
			[]string{"event", "kind"}, nil),
		metrics: []hubMetric{
			gauge("bayeuxhub_clients", "Number of open client sessions, remote and local.",
				func(s Snapshot) float64 { return float64(s.Clients) }),
			gauge("bayeuxhub_channels", "Number of channel actors alive.",
				func(s Snapshot) float64 { return float64(s.Channels) }),
			gauge("bayeuxhub_connects_held", "Number of /meta/connect requests held open.",
				func(s Snapshot) float64 { return float64(s.Held) }),
			gauge("bayeuxhub_messages_queued", "Messages waiting in client sessions' queues.",
				func(s Snapshot) float64 { return float64(s.Queued) }),
			counter("bayeuxhub_messages_published_total", "Messages accepted for publish since the server started.",
				func(s Snapshot) float64 { return float64(s.Published) }),
			counter("bayeuxhub_messages_delivered_total", "Messages delivered to subscribers since the server started.",
				func(s Snapshot) float64 { return float64(s.Delivered) }),
			counter("bayeuxhub_handshakes_total", "Successful handshakes since the server started.",
				func(s Snapshot) float64 { return float64(s.Handshakes) }),
			counter("bayeuxhub_queue_overflows_total", "Sessions whose queue reached the --max-queue limit.",
				func(s Snapshot) float64 { return float64(s.Overflows) }),
			counter("bayeuxhub_messages_dropped_total", "Messages dropped by the drop-oldest queue policy.",
				func(s Snapshot) float64 { return float64(s.Dropped) }),
			counter("bayeuxhub_broker_errors_total", "Publishes and subscription changes the cluster broker could not pass on.",
				func(s Snapshot) float64 { return float64(s.BrokerErrors) }),
			counter("bayeuxhub_sessions_expired_total", "Sessions ended because their token expired.",
				func(s Snapshot) float64 { return float64(s.Expired) }),
			gauge("bayeuxhub_queued_bytes", "Bytes sessions keep for their clients (queued and unacknowledged); bounded by --max-total-bytes.",
				func(s Snapshot) float64 { return float64(s.QueuedBytes) }),
			counter("bayeuxhub_sessions_evicted_total", "Sessions that never connected, ended to make room under --max-pending-sessions-per-ip.",
				func(s Snapshot) float64 { return float64(s.Evicted) }),
			counter("bayeuxhub_events_dropped_total", "Events the event callback missed because it was too far behind.",
				func(s Snapshot) float64 { return float64(s.EventsDropped) }),
			gauge("bayeuxhub_history_bytes", "Bytes the in-memory history holds; bounded by its total limit.",
				func(s Snapshot) float64 { return float64(s.HistoryBytes) }),
			counter("bayeuxhub_history_evicted_total", "History messages dropped by their channel rule's bounds or the total, oldest first.",
				func(s Snapshot) float64 { return float64(s.HistoryEvicted) }),
			gauge("bayeuxhub_presence_channels", "Presence channels with members, as this hub sees them (every hub's members).",
				func(s Snapshot) float64 { return float64(s.PresenceChannels) }),
			gauge("bayeuxhub_presence_members", "Members of presence channels, summed over the channels, as this hub sees them.",
				func(s Snapshot) float64 { return float64(s.PresenceMembers) }),
			counter("bayeuxhub_presence_untracked_total", "Joins not tracked: past --max-presence-members or --max-presence-channels.",
				func(s Snapshot) float64 { return float64(s.PresenceUntracked) }),
			counter("bayeuxhub_presence_events_dropped_total", "Presence join and leave events not published (the hub was draining or too far behind).",
				func(s Snapshot) float64 { return float64(s.PresenceDropped) }),
			counter("bayeuxhub_presence_syncs_total", "Times another hub's presence was fetched whole (at its start or after a lost change).",
				func(s Snapshot) float64 { return float64(s.PresenceSyncs) }),
		}}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	ch <- c.refusals
	ch <- c.hookCalls
	ch <- c.hookFailures
}

// Collect implements prometheus.Collector, calling src once.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
	for _, r := range s.Refusals {
		ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(r.Count), r.Action, r.Rule, r.Reason)
	}
	for _, h := range s.Hooks {
		for result, n := range map[string]uint64{"allowed": h.Allowed, "refused": h.Refused, "unavailable": h.Unavailable} {
			ch <- prometheus.MustNewConstMetric(c.hookCalls, prometheus.CounterValue, float64(n), h.Event, result)
		}
		for kind, n := range map[string]uint64{"timeout": h.Timeouts, "busy": h.Busy} {
			ch <- prometheus.MustNewConstMetric(c.hookFailures, prometheus.CounterValue, float64(n), h.Event, kind)
		}
	}
}
