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
	src                                                 func() Snapshot
	clients, channels, published, delivered, handshakes *prometheus.Desc
}

var _ prometheus.Collector = (*hubCollector)(nil)

func newHubCollector(src func() Snapshot) *hubCollector {
	return &hubCollector{
		src: src,
		clients: prometheus.NewDesc("bayeuxhub_clients",
			"Number of open client sessions, remote and local.", nil, nil),
		channels: prometheus.NewDesc("bayeuxhub_channels",
			"Number of channel actors alive.", nil, nil),
		published: prometheus.NewDesc("bayeuxhub_messages_published_total",
			"Messages accepted for publish since the server started.", nil, nil),
		delivered: prometheus.NewDesc("bayeuxhub_messages_delivered_total",
			"Messages delivered to subscribers since the server started.", nil, nil),
		handshakes: prometheus.NewDesc("bayeuxhub_handshakes_total",
			"Successful handshakes since the server started.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.clients
	ch <- c.channels
	ch <- c.published
	ch <- c.delivered
	ch <- c.handshakes
}

// Collect implements prometheus.Collector, calling src once.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(s.Clients))
	ch <- prometheus.MustNewConstMetric(c.channels, prometheus.GaugeValue, float64(s.Channels))
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(s.Delivered))
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.Handshakes))
}
