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
	return &hubCollector{src: src, metrics: []hubMetric{
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
	}}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector, calling src once.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
}
