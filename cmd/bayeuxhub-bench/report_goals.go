package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/internal/loadgen"
)

// The "Goals of issue 14" section. test/bench/run leaves every run as
// DIR/<scenario>/<server>-<transport>-<n>.json (or .err when it failed),
// n counting from 1; each goal compares bayeuxhub's runs of one scenario
// and transport with a baseline's (Centrifugo over WebSocket, floor over
// long-polling) or with an absolute bound. With several runs the figures
// compared are the medians; the goals about every run (nothing lost, no
// delivery slower than 100 ms) look at each run.

// runKey names the runs of one scenario against one server over one
// transport.
type runKey struct{ sc, srv, tr string }

func (k runKey) String() string { return serverTitle(k.srv) + " " + transportShort[k.tr] }

func serverTitle(s string) string {
	if t, ok := serverTitles[s]; ok {
		return t
	}
	return s
}

var transportShort = map[string]string{loadgen.TransportLongPolling: "long-polling", loadgen.TransportWebSocket: "WS"}

// resultExtra holds the fields of a result file the open-loop load tool
// adds (late publishes, the loop), read apart from loadgen.Result so that
// the report reads files with and without them.
type resultExtra struct {
	Late      *uint64  `json:"late"`
	LateMaxMS *float64 `json:"late_max_ms"`
	Unsent    *uint64  `json:"unsent"`
	Config    struct {
		Loop     string `json:"loop"`
		Protocol string `json:"protocol"`
	} `json:"config"`
}

// loadExtra reads the extra fields of base.json; zero when there are none.
func loadExtra(base string) resultExtra {
	var x resultExtra
	if data, err := os.ReadFile(base + ".json"); err == nil {
		_ = json.Unmarshal(data, &x)
	}
	return x
}

// runRes is one run of a runKey: its result, or why it failed.
type runRes struct {
	n    int
	r    *loadgen.Result
	x    resultExtra
	fail string
}

// maxRuns bounds the runs of one key the report looks for.
const maxRuns = 50

// loadRuns reads dir/<sc>/<srv>-<tr>-<n>.json|.err for n = 1, 2, ...
// up to the first n with neither.
func loadRuns(dir string, k runKey) []runRes {
	var out []runRes
	for n := 1; n <= maxRuns; n++ {
		base := filepath.Join(dir, k.sc, fmt.Sprintf("%s-%s-%d", k.srv, k.tr, n))
		r, fail, ok := load(base)
		if !ok {
			break
		}
		x := resultExtra{}
		if r != nil {
			x = loadExtra(base)
		}
		out = append(out, runRes{n: n, r: r, x: x, fail: fail})
	}
	return out
}

// goalMetric is a figure of a run; ok is false when the run does not
// know it (no server process to read CPU from, no deliveries).
type goalMetric struct {
	name   string
	value  func(*loadgen.Result) (v float64, ok bool)
	format func(float64) string
}

func usPerDelivery(v float64) string { return fmt.Sprintf("%.2f µs", v) }

var (
	gDelivered = goalMetric{"delivered/s", func(r *loadgen.Result) (float64, bool) { return r.DeliverRate, true }, count}
	gP99       = goalMetric{"latency p99", func(r *loadgen.Result) (float64, bool) { return r.Latency.P99, r.Latency.Count > 0 }, loadgen.FmtMS}
	gMax       = goalMetric{"latency max", func(r *loadgen.Result) (float64, bool) { return r.Latency.Max, r.Latency.Count > 0 }, loadgen.FmtMS}
	gLost      = goalMetric{"lost", func(r *loadgen.Result) (float64, bool) { return float64(r.Lost), true }, count}
	gCPU       = goalMetric{"server CPU", func(r *loadgen.Result) (float64, bool) { return r.ServerCPU, r.ServerCPU >= 0 }, pct}
	// gCPUPerDelivery is the server's CPU time per delivery: CPU % / 100
	// (cores busy) over deliveries per second, in microseconds.
	gCPUPerDelivery = goalMetric{"server CPU per delivery", func(r *loadgen.Result) (float64, bool) {
		if r.ServerCPU < 0 || r.DeliverRate <= 0 {
			return 0, false
		}
		return r.ServerCPU / 100 / r.DeliverRate * 1e6, true
	}, usPerDelivery}
	gRSSPerClient = goalMetric{"server RSS per connection", func(r *loadgen.Result) (float64, bool) {
		return r.RSSPerClient, r.Held > 0 && r.ServerRSSAfter >= 0 && r.ServerRSSBefore >= 0
	}, loadgen.FmtBytes}
)

// How a goal is judged.
type goalKind int

const (
	// ratioAtLeast: median(bayeuxhub) / median(baseline) ≥ target.
	ratioAtLeast goalKind = iota
	// ratioAtMost: median(bayeuxhub) / median(baseline) ≤ target.
	ratioAtMost
	// absAtMost: median(bayeuxhub) ≤ target.
	absAtMost
	// everyRunAtMost: bayeuxhub's figure ≤ target in every run, and at
	// least minRuns runs measured.
	everyRunAtMost
)

type goal struct {
	what    string // the goal, as the issue words it
	hub     runKey
	base    runKey // baseline; for absAtMost / everyRunAtMost shown for information only (may be zero)
	metric  goalMetric
	kind    goalKind
	target  float64
	minRuns int    // everyRunAtMost: runs needed
	targetT string // the target as written in the table
	noRatio bool   // no ratio column (lost: a ratio of counts says nothing)
	// offered: met too when every bayeuxhub run delivered all that the
	// schedule offered (see deliveredAllOffered): no server delivers
	// more, and a ratio a hair under the target is then the runs' timing.
	offered bool
}

// deliveredAllOffered reports whether a run delivered everything its
// schedule offered: the publishers at 99.5 % of the rate asked or more,
// no publish of the window left unsent, and every publish delivered to
// every subscriber (nothing lost).
func deliveredAllOffered(r *loadgen.Result, x resultExtra) bool {
	c := r.Config
	return r.Lost == 0 && r.Expected > 0 && (x.Unsent == nil || *x.Unsent == 0) &&
		c.Rate > 0 && r.PublishRate >= 0.995*c.Rate
}

// allOffered reports whether every run of runs (at least one) delivered
// all it was offered.
func allOffered(runs []runRes) bool {
	return len(runs) > 0 && !slices.ContainsFunc(runs, func(x runRes) bool {
		return x.r == nil || !deliveredAllOffered(x.r, x.x)
	})
}

var (
	wsFan200  = runKey{"fanout-latency", "bayeuxhub", loadgen.TransportWebSocket}
	cfFan200  = runKey{"fanout-latency", "centrifugo", loadgen.TransportWebSocket}
	wsFan1000 = runKey{"fanout", "bayeuxhub", loadgen.TransportWebSocket}
	cfFan1000 = runKey{"fanout", "centrifugo", loadgen.TransportWebSocket}
	wsChat    = runKey{"chat", "bayeuxhub", loadgen.TransportWebSocket}
	cfChat    = runKey{"chat", "centrifugo", loadgen.TransportWebSocket}
	wsIdle    = runKey{"idle", "bayeuxhub", loadgen.TransportWebSocket}
	cfIdle    = runKey{"idle", "centrifugo", loadgen.TransportWebSocket}
	lpIdle    = runKey{"idle", "bayeuxhub", loadgen.TransportLongPolling}
	floorIdle = runKey{"idle", "floor", loadgen.TransportLongPolling}
	lpFan200  = runKey{"fanout-latency", "bayeuxhub", loadgen.TransportLongPolling}
	floor200  = runKey{"fanout-latency", "floor", loadgen.TransportLongPolling}
)

// issue14Goals are the goals of issue 14 a run of test/bench/run measures
// (the 100,000 connections are test/bench/c100k's).
var issue14Goals = func() []goal {
	var gs []goal
	for _, f := range []struct {
		rate      string
		hub, base runKey
	}{{"200", wsFan200, cfFan200}, {"1,000", wsFan1000, cfFan1000}} {
		what := "fan-out over WebSocket, 1,000 subscribers, " + f.rate + " publishes/s: "
		gs = append(gs,
			goal{what: what + "delivered/s", hub: f.hub, base: f.base, metric: gDelivered, kind: ratioAtLeast, target: 1.0, targetT: "≥ 1.0× Centrifugo, or all offered delivered", offered: true},
			goal{what: what + "latency p99", hub: f.hub, base: f.base, metric: gP99, kind: ratioAtMost, target: 1.0, targetT: "≤ 1.0× Centrifugo"},
			goal{what: what + "server CPU per delivery", hub: f.hub, base: f.base, metric: gCPUPerDelivery, kind: ratioAtMost, target: 0.9, targetT: "≤ 0.9× Centrifugo"},
			goal{what: what + "lost", hub: f.hub, base: f.base, metric: gLost, kind: everyRunAtMost, target: 0, minRuns: 1, targetT: "0 in every run", noRatio: true},
		)
	}
	return append(gs,
		goal{what: "chat over WebSocket: latency p99", hub: wsChat, base: cfChat, metric: gP99, kind: ratioAtMost, target: 1.0, targetT: "≤ 1.0× Centrifugo"},
		goal{what: "chat over WebSocket: no delivery slower than 100 ms over 5 runs", hub: wsChat, base: cfChat, metric: gMax, kind: everyRunAtMost, target: 100, minRuns: 5, targetT: "≤ 100ms in each of 5 runs"},
		goal{what: "chat over WebSocket: server CPU", hub: wsChat, base: cfChat, metric: gCPU, kind: ratioAtMost, target: 0.9, targetT: "≤ 0.9× Centrifugo"},
		goal{what: "idle: server RSS per subscribed WebSocket connection", hub: wsIdle, base: cfIdle, metric: gRSSPerClient, kind: absAtMost, target: 24 << 10, targetT: "≤ 24 KiB"},
		goal{what: "idle: server RSS per held long poll", hub: lpIdle, base: floorIdle, metric: gRSSPerClient, kind: absAtMost, target: 30 << 10, targetT: "≤ 30 KiB"},
		goal{what: "long-polling, 1,000 subscribers, 200 publishes/s: latency p99", hub: lpFan200, base: floor200, metric: gP99, kind: ratioAtMost, target: 1.2, targetT: "≤ 1.2× floor"},
	)
}()

// Verdicts.
const (
	verdictMet         = "**met**"
	verdictNotMet      = "**not met**"
	verdictNotMeasured = "not measured"
)

// judged is one row of the goals table.
type judged struct {
	hub, base, ratio, verdict string
}

// values returns the metric of the runs that measured it, and how many
// runs failed and how many did not know the figure.
func values(runs []runRes, m goalMetric) (vs []float64, failed, unknown int) {
	for _, x := range runs {
		if x.r == nil {
			failed++
			continue
		}
		v, ok := m.value(x.r)
		if !ok {
			unknown++
			continue
		}
		vs = append(vs, v)
	}
	return vs, failed, unknown
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// cell formats a figure over runs: the median, then each run's figure
// when there are several (worst instead of median for everyRunAtMost),
// and the runs that did not measure it.
func cell(runs []runRes, m goalMetric, worst bool) string {
	vs, failed, unknown := values(runs, m)
	var b strings.Builder
	switch {
	case len(vs) == 0 && failed > 0:
		b.WriteString("failed")
	case len(vs) == 0 && unknown > 0:
		b.WriteString("n/a")
	case len(vs) == 0:
		return "—"
	case len(vs) == 1:
		b.WriteString(m.format(vs[0]))
	case worst:
		fmt.Fprintf(&b, "worst %s", m.format(slices.Max(vs)))
	default:
		fmt.Fprintf(&b, "median %s", m.format(median(vs)))
	}
	if len(vs) > 1 {
		parts := make([]string, len(vs))
		for i, v := range vs {
			parts[i] = m.format(v)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, " / "))
	}
	if len(vs) > 0 && failed > 0 {
		fmt.Fprintf(&b, "; %d run%s failed", failed, plural(failed))
	}
	if len(vs) > 0 && unknown > 0 {
		fmt.Fprintf(&b, "; %d run%s without it", unknown, plural(unknown))
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// judge judges g on bayeuxhub's runs and the baseline's.
func (g goal) judge(hubRuns, baseRuns []runRes) judged {
	worst := g.kind == everyRunAtMost
	j := judged{hub: cell(hubRuns, g.metric, worst), base: cell(baseRuns, g.metric, worst)}
	hv, _, _ := values(hubRuns, g.metric)
	bv, _, _ := values(baseRuns, g.metric)
	if len(hv) > 0 && len(bv) > 0 && !g.noRatio {
		if hm, bm := median(hv), median(bv); bm > 0 {
			j.ratio = fmt.Sprintf("%.2f×", hm/bm)
		}
	}
	notMeasured := func(why string) judged {
		j.verdict = verdictNotMeasured + " (" + why + ")"
		return j
	}
	if why := unmeasured(g.hub, hubRuns, hv); why != "" {
		return notMeasured(why)
	}
	met := false
	switch g.kind {
	case ratioAtLeast, ratioAtMost:
		if why := unmeasured(g.base, baseRuns, bv); why != "" {
			return notMeasured(why)
		}
		bm := median(bv)
		if bm <= 0 {
			return notMeasured(g.base.String() + "'s figure is 0")
		}
		ratio := median(hv) / bm
		if g.kind == ratioAtLeast {
			met = ratio >= g.target
			if !met && g.offered && allOffered(hubRuns) {
				j.verdict = verdictMet + " (every run delivered all that was offered)"
				return j
			}
		} else {
			met = ratio <= g.target
		}
	case absAtMost:
		met = median(hv) <= g.target
	case everyRunAtMost:
		if slices.Max(hv) > g.target {
			j.verdict = verdictNotMet
			return j
		}
		if len(hv) < g.minRuns {
			return notMeasured(fmt.Sprintf("%d of %d runs", len(hv), g.minRuns))
		}
		met = true
	}
	if met {
		j.verdict = verdictMet
	} else {
		j.verdict = verdictNotMet
	}
	return j
}

// unmeasured says why k's runs give no figure; "" when they give one.
func unmeasured(k runKey, runs []runRes, vs []float64) string {
	switch {
	case len(vs) > 0:
		return ""
	case len(runs) == 0:
		return "no " + k.String() + " run"
	case !slices.ContainsFunc(runs, func(x runRes) bool { return x.r != nil }):
		return k.String() + " failed"
	default:
		return k.String() + " did not measure it"
	}
}

// goalsScenarios are the scenarios of the per-run tables, in order, with
// the keys shown for each.
var goalsScenarios = []struct {
	sc   string
	what string
	keys []runKey
}{
	{"fanout-latency", "fan-out at 200 publishes/s", []runKey{wsFan200, cfFan200, lpFan200, floor200,
		{"fanout-latency", "faye", loadgen.TransportLongPolling}}},
	{"fanout", "fan-out at 1,000 publishes/s", []runKey{wsFan1000, cfFan1000,
		{"fanout", "bayeuxhub", loadgen.TransportLongPolling}, {"fanout", "floor", loadgen.TransportLongPolling},
		{"fanout", "faye", loadgen.TransportLongPolling}}},
	{"chat", "chat", []runKey{wsChat, cfChat, {"chat", "bayeuxhub", loadgen.TransportLongPolling},
		{"chat", "floor", loadgen.TransportLongPolling}, {"chat", "faye", loadgen.TransportLongPolling}}},
	{"idle", "idle", []runKey{wsIdle, cfIdle, {"idle", "faye", loadgen.TransportWebSocket}, lpIdle, floorIdle,
		{"idle", "faye", loadgen.TransportLongPolling}}},
}

// runMetrics are the columns of the per-run tables.
var (
	runPubSubCols = []metric{mDelivered, mP50, mP99, mP999, mMax, mLost, mLate, mSrvCPU, mCPUPerDelivery, mRSSAfter, mGenCPU}
	runIdleCols   = []metric{mHeld, mRSSClient, mRSSAfter, mErrors, mSrvCPU, mGenCPU}
)

var (
	mLate           = metric{"late publishes", nil, count, false} // value from resultExtra, see runCell
	mCPUPerDelivery = metric{"server CPU per delivery", func(r *loadgen.Result) float64 {
		v, ok := gCPUPerDelivery.value(r)
		if !ok {
			return -1
		}
		return v
	}, func(v float64) string {
		if v < 0 {
			return "n/a"
		}
		return usPerDelivery(v)
	}, false}
)

func runCell(m metric, x runRes) string {
	if m.name == mLate.name {
		if x.x.Late == nil {
			return "—"
		}
		return count(float64(*x.x.Late))
	}
	return m.format(m.value(x.r))
}

// writeGoalsSection writes "Goals of issue 14" from dir (see above): the
// goals table, then each scenario's runs; it writes nothing when dir
// holds no run of any goal's scenario.
func writeGoalsSection(b *strings.Builder, dir string) {
	runs := map[runKey][]runRes{}
	get := func(k runKey) []runRes {
		if rs, ok := runs[k]; ok {
			return rs
		}
		rs := loadRuns(dir, k)
		runs[k] = rs
		return rs
	}
	found := false
	short := false
	for _, s := range goalsScenarios {
		for _, k := range s.keys {
			for _, x := range get(k) {
				found = true
				if x.r != nil && x.r.WindowSeconds > 0 && x.r.WindowSeconds < 20 {
					short = true
				}
			}
		}
	}
	if !found {
		return
	}
	b.WriteString("## Goals of issue 14\n\n")
	b.WriteString("Measured in this run, on this machine, with the same load generator for every server. " +
		"With several runs of a figure, the table gives the median and each run's figure in brackets, and judges on the median; " +
		"\"lost\" and the chat's slowest delivery are judged on every run (each must meet the target). " +
		"Server CPU per delivery is the server's CPU time (its CPU % / 100) divided by its deliveries per second. " +
		"A goal whose runs are missing or failed is \"not measured\", never met. " +
		"The 100,000 connections goal is measured by `test/bench/c100k/run` (its figures in `test/bench/c100k/RESULTS.md`), not here.")
	if short {
		b.WriteString(" **These runs are short (`--quick`): the verdicts are indicative only.**")
	}
	b.WriteString("\n\n| goal | bayeuxhub | baseline | ratio | target | verdict |\n|---|---:|---:|---:|---|---|\n")
	var notes []string
	for _, g := range issue14Goals {
		j := g.judge(get(g.hub), get(g.base))
		baseT := ""
		if g.base.srv != "" {
			baseT = g.base.String() + ": "
		}
		fmt.Fprintf(b, "| %s | %s | %s%s | %s | %s | %s |\n", g.what, j.hub, baseT, j.base, j.ratio, g.targetT, j.verdict)
		if d := configDiff(get(g.hub), get(g.base)); d != "" {
			notes = append(notes, fmt.Sprintf("%s: %s and %s ran with different parameters (%s).", g.what, g.hub, g.base, d))
		}
	}
	fmt.Fprintf(b, "| 100,000 concurrent WebSocket connections, several hubs joined by NATS, one publish reaching all | | | | all reached, 0 lost | %s (`test/bench/c100k/run`) |\n",
		verdictNotMeasured+" here")
	for _, n := range slices.Compact(notes) {
		fmt.Fprintf(b, "\n%s\n", n)
	}
	b.WriteString("\n")
	for _, s := range goalsScenarios {
		writeRunsTable(b, s.sc, s.what, s.keys, get)
	}
}

// configDiff says how the first results of a and b were configured
// differently; "" when alike or when either has none.
func configDiff(a, b []runRes) string {
	first := func(rs []runRes) *loadgen.Result {
		for _, x := range rs {
			if x.r != nil {
				return x.r
			}
		}
		return nil
	}
	ra, rb := first(a), first(b)
	if ra == nil || rb == nil {
		return ""
	}
	ca, cb := ra.Config, rb.Config
	var d []string
	if ca.Subscribers != cb.Subscribers {
		d = append(d, fmt.Sprintf("subscribers %d / %d", ca.Subscribers, cb.Subscribers))
	}
	if ca.Rate != cb.Rate {
		d = append(d, fmt.Sprintf("rate %.0f / %.0f", ca.Rate, cb.Rate))
	}
	if ca.Channels != cb.Channels || ca.SubsPerClient != cb.SubsPerClient {
		d = append(d, fmt.Sprintf("channels %d×%d / %d×%d", ca.Channels, ca.SubsPerClient, cb.Channels, cb.SubsPerClient))
	}
	if ca.Size != cb.Size {
		d = append(d, fmt.Sprintf("size %d / %d B", ca.Size, cb.Size))
	}
	if ca.Duration != cb.Duration {
		d = append(d, fmt.Sprintf("duration %s / %s", ca.Duration, cb.Duration))
	}
	return strings.Join(d, ", ")
}

// writeRunsTable writes one scenario's runs, a row per run and a median
// row per server and transport with several runs.
func writeRunsTable(b *strings.Builder, sc, what string, keys []runKey, get func(runKey) []runRes) {
	var first *loadgen.Result
	have := false
	for _, k := range keys {
		for _, x := range get(k) {
			have = true
			if first == nil && x.r != nil {
				first = x.r
			}
		}
	}
	if !have {
		return
	}
	cols := runPubSubCols
	if sc == "idle" || first != nil && first.Config.Kind == loadgen.KindIdle {
		cols = runIdleCols
	}
	fmt.Fprintf(b, "### Runs: %s (`%s`)\n\n", what, sc)
	if first != nil {
		c := first.Config
		if c.Kind == loadgen.KindIdle {
			fmt.Fprintf(b, "%d connections, each subscribed to one channel, held %.0fs.", c.Subscribers, first.WindowSeconds)
		} else {
			fmt.Fprintf(b, "%d subscribers, %d publishers, rate %s, %d channels × %d per client, %d B payload, %.0fs measured after %s warmup.",
				c.Subscribers, c.Publishers, rateText(c.Rate), c.Channels, c.SubsPerClient, c.Size, first.WindowSeconds, c.Warmup)
		}
		b.WriteString("\n\n")
	}
	writeMetricHeader(b, "| server | run |", cols)
	var notes []string
	for _, k := range keys {
		rs := get(k)
		var ok []runRes
		for _, x := range rs {
			fmt.Fprintf(b, "| %s | %d |", k, x.n)
			if x.r == nil {
				b.WriteString(strings.Repeat(" failed |", len(cols)) + "\n")
				notes = append(notes, fmt.Sprintf("%s run %d failed: `%s`", k, x.n, strings.ReplaceAll(x.fail, "`", "'")))
				continue
			}
			ok = append(ok, x)
			for _, m := range cols {
				fmt.Fprintf(b, " %s |", runCell(m, x))
			}
			b.WriteString("\n")
			if x.r.DrainTimedOut {
				notes = append(notes, fmt.Sprintf("%s run %d: deliveries were still arriving when the drain time ran out; \"lost\" includes messages in flight.", k, x.n))
			}
			if len(x.r.FirstErrors) > 0 {
				notes = append(notes, fmt.Sprintf("%s run %d errors (first): `%s`", k, x.n, strings.ReplaceAll(x.r.FirstErrors[0], "`", "'")))
			}
		}
		if len(ok) > 1 {
			fmt.Fprintf(b, "| %s | median |", k)
			for _, m := range cols {
				var vs []float64
				for _, x := range ok {
					if m.name == mLate.name {
						if x.x.Late != nil {
							vs = append(vs, float64(*x.x.Late))
						}
					} else if v := m.value(x.r); v >= 0 {
						vs = append(vs, v)
					}
				}
				if len(vs) == 0 {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(b, " %s |", m.format(median(vs)))
				}
			}
			b.WriteString("\n")
		}
	}
	for _, n := range notes {
		fmt.Fprintf(b, "\n%s\n", n)
	}
	b.WriteString("\n")
}
