package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency summarizes a latency histogram in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Point is one second of a run.
type Point struct {
	T         int     `json:"t"`
	Published uint64  `json:"published"`
	Delivered uint64  `json:"delivered"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
}

// Result is everything one run measured. Rates are per second over the
// measured window; "Total" counts include warmup and drain. CPU figures
// are percentages of one core (200 = two cores busy); ServerCPU is -1
// when unknown.
type Result struct {
	Config Config `json:"config"`
	Date   string `json:"date"`

	SetupSeconds  float64 `json:"setup_seconds"`
	SetupFailed   uint64  `json:"setup_failed"`
	WindowSeconds float64 `json:"window_seconds"`
	DrainSeconds  float64 `json:"drain_seconds"`
	// DrainTimedOut is true when deliveries were still arriving when the
	// drain time ran out: Lost then includes messages still in flight.
	DrainTimedOut bool `json:"drain_timed_out"`

	Published      uint64  `json:"published"`
	PublishRate    float64 `json:"publish_rate"`
	PublishedTotal uint64  `json:"published_total"`
	SentTotal      uint64  `json:"sent_total"`
	PublishErrors  uint64  `json:"publish_errors"`
	// Late counts the messages of the measured window sent more than
	// LateThreshold (1 ms) after their scheduled time: in an open loop
	// because the publisher's in-flight bound was reached (or the
	// generator itself fell behind), in a closed loop because the
	// acknowledgement of the previous publish came late. LateMax is the
	// largest such delay. Unsent counts the messages scheduled in the
	// window that were never sent because the window ended first. All
	// three are 0 for rate 0.
	Late           uint64  `json:"late"`
	LateMaxMS      float64 `json:"late_max_ms"`
	Unsent         uint64  `json:"unsent"`
	Delivered      uint64  `json:"delivered"`
	DeliverRate    float64 `json:"deliver_rate"`
	DeliveredTotal uint64  `json:"delivered_total"`

	Expected   uint64 `json:"expected"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	OutOfOrder uint64 `json:"out_of_order"`
	Unacked    uint64 `json:"unacked_delivered"`
	Stray      uint64 `json:"stray"`

	Latency Latency `json:"latency"`
	// PublishAck is the round trip of publish requests (send to
	// acknowledgement) sent in the measured window.
	PublishAck Latency `json:"publish_ack"`

	Handshakes    uint64  `json:"handshakes"`
	HandshakeRate float64 `json:"handshake_rate"`
	Rehandshakes  uint64  `json:"rehandshakes"`
	Connects      uint64  `json:"connects"`
	Sessions      uint64  `json:"sessions"`
	SessionRate   float64 `json:"session_rate"`

	Held               uint64  `json:"held"`
	IdleConnectReplies uint64  `json:"idle_connect_replies"`
	ServerRSSBefore    int64   `json:"server_rss_before"`
	ServerRSSAfter     int64   `json:"server_rss_after"`
	RSSPerClient       float64 `json:"rss_per_client"`
	GenRSS             int64   `json:"gen_rss"`

	GenCPU    float64 `json:"gen_cpu_pct"`
	ServerCPU float64 `json:"server_cpu_pct"`

	Errors      uint64   `json:"errors"`
	FirstErrors []string `json:"first_errors,omitempty"`

	// Replay holds the replay scenario's figures (nil for the others).
	Replay *ReplayStats `json:"replay,omitempty"`
	// Reach holds the reach scenario's figures (nil for the others).
	Reach *ReachStats `json:"reach,omitempty"`

	Series []Point      `json:"series,omitempty"`
	Hist   []HistBucket `json:"histogram,omitempty"`
}

func newResult(cfg *Config) *Result {
	c := *cfg
	c.Progress, c.OnReady = nil, nil
	return &Result{Config: c, Date: time.Now().UTC().Format(time.RFC3339), ServerCPU: -1,
		ServerRSSBefore: -1, ServerRSSAfter: -1}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(h *Histogram) Latency {
	return Latency{
		Count: h.Count(),
		Mean:  ms(h.Mean()),
		P50:   ms(h.Quantile(0.5)),
		P90:   ms(h.Quantile(0.9)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2fms", ms(d))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", ms(d))
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// FmtMS formats a millisecond figure compactly.
func FmtMS(v float64) string { return fmtDur(time.Duration(v * float64(time.Millisecond))) }

func fmtBytes(b int64) string {
	switch {
	case b < 0:
		return "n/a"
	case b < 10<<10:
		return fmt.Sprintf("%d B", b)
	case b < 10<<20:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
}

// FmtBytes formats a byte count with a binary unit.
func FmtBytes(b float64) string { return fmtBytes(int64(b)) }

// WriteSummary writes a human-readable table of the result.
func (r *Result) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	c := &r.Config
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	proto := cmp.Or(c.Transport, "local")
	if c.Protocol == ProtocolCentrifugo {
		proto = "centrifugo over " + proto
	}
	fmt.Fprintf(tw, "bayeuxhub-bench  scenario %s  (%s)  %s  %s\n", c.Scenario, c.Kind, c.URL, proto)
	row("config", fmt.Sprintf("subscribers %d, publishers %d, rate %s, channels %d, subs/client %d, size %d B, batch %d, %s loop",
		c.Subscribers, c.Publishers, rateStr(c.Rate), c.Channels, c.SubsPerClient, c.Size, c.Batch, cmp.Or(c.Loop, LoopClosed)))
	row("window", fmt.Sprintf("%.1fs measured after %s warmup (setup %.1fs, drain %.1fs)",
		r.WindowSeconds, c.Warmup, r.SetupSeconds, r.DrainSeconds))
	if c.PublishersSubscribe {
		row("publishers", fmt.Sprintf("the first %d subscribers publish, each over its own channels", c.Publishers))
	}
	cpu := fmt.Sprintf("gen cpu %.0f%%", r.GenCPU)
	if c.InProc {
		cpu += " (includes the in-process server)"
	} else if r.ServerCPU >= 0 {
		cpu += fmt.Sprintf(", server cpu %.0f%%", r.ServerCPU)
	}
	switch c.Kind {
	case KindPubSub, KindReplay:
		row("published", fmt.Sprintf("%.0f msg/s  (%d in window, %d total, %d errors)\t%s",
			r.PublishRate, r.Published, r.PublishedTotal, r.PublishErrors, cpu))
		if c.Rate > 0 {
			what := fmt.Sprintf("(open loop: at most %d in flight per publisher)", c.MaxInflight)
			if c.Loop != LoopOpen {
				what = "(closed loop: each publisher waits for its acknowledgements)"
			}
			row("schedule", fmt.Sprintf("late %d (sent > %s after their time, max %s)  unsent %d  %s",
				r.Late, LateThreshold, FmtMS(r.LateMaxMS), r.Unsent, what))
		}
		if c.Rate > 0 && r.PublishRate < 0.95*c.Rate {
			why := "the server acknowledges too slowly (closed loop)"
			if c.Loop == LoopOpen {
				why = "publishes were held back by the in-flight bound (--max-inflight) or acknowledged too slowly"
			}
			row("WARNING", fmt.Sprintf("publishers reached %.0f%% of the %.0f msg/s asked: %s",
				100*r.PublishRate/c.Rate, c.Rate, why))
		}
		row("publish ack", fmt.Sprintf("p50 %s  p99 %s  max %s  (round trip of a publish request)",
			FmtMS(r.PublishAck.P50), FmtMS(r.PublishAck.P99), FmtMS(r.PublishAck.Max)))
		if c.Subscribers > 0 {
			row("delivered", fmt.Sprintf("%.0f msg/s  (%d in window, %d total)\t%s", r.DeliverRate, r.Delivered, r.DeliveredTotal, cpu))
			live := ""
			if c.Kind == KindReplay {
				live = ", live deliveries only"
			}
			row("latency", fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d%s)",
				FmtMS(r.Latency.P50), FmtMS(r.Latency.P90), FmtMS(r.Latency.P99), FmtMS(r.Latency.P999), FmtMS(r.Latency.Max), r.Latency.Count, live))
			row("accounting", fmt.Sprintf("expected %d  lost %d  duplicated %d  out-of-order %d  unacked-delivered %d  stray %d",
				r.Expected, r.Lost, r.Duplicated, r.OutOfOrder, r.Unacked, r.Stray))
			if r.DrainTimedOut {
				row("WARNING", fmt.Sprintf("deliveries were still arriving after the %s drain: \"lost\" includes messages in flight (raise --drain)", c.Drain))
			}
		}
		if r.Replay != nil {
			r.writeReplay(row)
		}
	case KindIdle:
		row("held", fmt.Sprintf("%d long-polls (%d failed setup), %d connect replies while idle", r.Held, r.SetupFailed, r.IdleConnectReplies))
		row("server rss", fmt.Sprintf("%s before, %s after, %s per client\t%s",
			fmtBytes(r.ServerRSSBefore), fmtBytes(r.ServerRSSAfter), FmtBytes(r.RSSPerClient), cpu))
		row("generator rss", fmtBytes(r.GenRSS))
	case KindReach:
		r.writeReach(row)
	case KindChurn:
		row("sessions", fmt.Sprintf("%.0f sessions/s  (%d in window)\t%s", r.SessionRate, r.Sessions, cpu))
		row("handshakes", fmt.Sprintf("%.0f /s", r.HandshakeRate))
		row("session time", fmt.Sprintf("p50 %s  p99 %s  max %s", FmtMS(r.Latency.P50), FmtMS(r.Latency.P99), FmtMS(r.Latency.Max)))
	}
	if c.Kind != KindIdle && r.ServerRSSAfter > 0 {
		row("server rss", fmtBytes(r.ServerRSSAfter))
	}
	row("sessions", fmt.Sprintf("handshakes %d  re-handshakes %d  connects %d", r.Handshakes, r.Rehandshakes, r.Connects))
	row("errors", fmt.Sprintf("%d", r.Errors))
	tw.Flush()
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "    %s\n", strings.TrimSpace(e))
	}
}

func rateStr(r float64) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f/s", r)
}
