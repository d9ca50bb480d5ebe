package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bayeuxhub/bayeuxhub/internal/loadgen"
)

// servers are the columns of BENCHMARKS.md, the first being the one
// compared with the others; optionalServers get a column only in the
// tables of scenarios they have a result (or a failed run) for.
var servers = []string{"bayeuxhub", "floor", "faye"}

var optionalServers = []string{"centrifugo"}

var serverTitles = map[string]string{"bayeuxhub": "bayeuxhub", "floor": "floor", "faye": "Faye", "centrifugo": "Centrifugo"}

// scenarioOrder is the order of the tables.
var scenarioOrder = []string{"publish", "fanout", "fanout-latency", "chat", "idle", "churn"}

type metric struct {
	name   string
	value  func(*loadgen.Result) float64
	format func(float64) string
	ratio  bool // print hub/other ratios
}

func count(v float64) string { return fmt.Sprintf("%.0f", v) }
func pct(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", v)
}

var (
	mPublished = metric{"published/s", func(r *loadgen.Result) float64 { return r.PublishRate }, count, true}
	mDelivered = metric{"delivered/s", func(r *loadgen.Result) float64 { return r.DeliverRate }, count, true}
	mP50       = metric{"latency p50", func(r *loadgen.Result) float64 { return r.Latency.P50 }, loadgen.FmtMS, true}
	mP99       = metric{"latency p99", func(r *loadgen.Result) float64 { return r.Latency.P99 }, loadgen.FmtMS, true}
	mP999      = metric{"latency p99.9", func(r *loadgen.Result) float64 { return r.Latency.P999 }, loadgen.FmtMS, true}
	mMax       = metric{"latency max", func(r *loadgen.Result) float64 { return r.Latency.Max }, loadgen.FmtMS, false}
	mAckP99    = metric{"publish ack p99", func(r *loadgen.Result) float64 { return r.PublishAck.P99 }, loadgen.FmtMS, true}
	mDrain     = metric{"drain after last publish", func(r *loadgen.Result) float64 { return r.DrainSeconds * 1000 }, loadgen.FmtMS, false}
	mLost      = metric{"lost", func(r *loadgen.Result) float64 { return float64(r.Lost) }, count, false}
	mDup       = metric{"duplicated", func(r *loadgen.Result) float64 { return float64(r.Duplicated) }, count, false}
	mOOO       = metric{"out of order", func(r *loadgen.Result) float64 { return float64(r.OutOfOrder) }, count, false}
	mExpected  = metric{"expected deliveries", func(r *loadgen.Result) float64 { return float64(r.Expected) }, count, false}
	mErrors    = metric{"errors", func(r *loadgen.Result) float64 { return float64(r.Errors) }, count, false}
	mGenCPU    = metric{"generator CPU", func(r *loadgen.Result) float64 { return r.GenCPU }, pct, false}
	mSrvCPU    = metric{"server CPU", func(r *loadgen.Result) float64 { return r.ServerCPU }, pct, false}
	mRSSClient = metric{"server RSS per client", func(r *loadgen.Result) float64 { return r.RSSPerClient }, loadgen.FmtBytes, true}
	mRSSAfter  = metric{"server RSS", func(r *loadgen.Result) float64 { return float64(r.ServerRSSAfter) }, loadgen.FmtBytes, true}
	mHeld      = metric{"clients held", func(r *loadgen.Result) float64 { return float64(r.Held) }, count, false}
	mSessions  = metric{"sessions/s", func(r *loadgen.Result) float64 { return r.SessionRate }, count, true}
	mSessP99   = metric{"session time p99", func(r *loadgen.Result) float64 { return r.Latency.P99 }, loadgen.FmtMS, true}
)

var scenarioMetrics = map[string][]metric{
	"publish":        {mPublished, mAckP99, mErrors, mGenCPU, mSrvCPU, mRSSAfter},
	"fanout":         {mDelivered, mPublished, mP50, mP99, mAckP99, mDrain, mLost, mDup, mOOO, mExpected, mErrors, mGenCPU, mSrvCPU, mRSSAfter},
	"fanout-latency": {mP50, mP99, mP999, mMax, mAckP99, mDrain, mDelivered, mLost, mDup, mOOO, mErrors, mGenCPU, mSrvCPU},
	"chat":           {mP50, mP99, mP999, mAckP99, mDrain, mDelivered, mLost, mDup, mOOO, mErrors, mGenCPU, mSrvCPU, mRSSAfter},
	"idle":           {mRSSClient, mRSSAfter, mHeld, mErrors, mGenCPU, mSrvCPU},
	"churn":          {mSessions, mSessP99, mErrors, mGenCPU, mSrvCPU, mRSSAfter},
}

var scenarioDesc = map[string]string{
	"publish":        "64 HTTP publishers, 1 message per request, no subscribers: publishes/s.",
	"fanout":         "1,000 long-poll subscribers on one channel, 1,000 publishes/s: delivered/s, lost.",
	"fanout-latency": "1,000 subscribers on one channel, 200 publishes/s: end-to-end latency, lost.",
	"chat":           "1,000 clients in 10 of 100 rooms each, 10 publishes/s per room: latency, lost.",
	"idle":           "10,000 long-poll clients held idle: server RSS per client.",
	"churn":          "handshake + subscribe + disconnect loops: sessions/s.",
}

// reportMain implements "bayeuxhub-bench report": it reads
// DIR/<scenario>/<server>.json (and <server>.err for failed runs) and
// writes a Markdown comparison; with --goals GDIR it puts the section
// "Goals of issue 14" from GDIR/<scenario>/<server>-<transport>-<n>.json
// first (report_goals.go); with --ws-compare CDIR it appends the
// long-polling / WebSocket section from CDIR/<scenario>/<transport>.json,
// with --history-compare HDIR the replay / cost of history section from
// HDIR/fanout/{off,on}.json and HDIR/replay/<transport>.json.
func reportMain(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	out := fs.String("out", "BENCHMARKS.md", "Markdown file to write (- for stdout)")
	header := fs.String("header", "", "Markdown `FILE` to put before the tables (machine, commit, date)")
	wsCompare := fs.String("ws-compare", "", "`DIR` of <scenario>/<transport>.json results of bayeuxhub to add a long-polling / WebSocket section from")
	histCompare := fs.String("history-compare", "", "`DIR` of fanout/{off,on}.json and replay/<transport>.json results of bayeuxhub to add a replay / cost of history section from")
	goals := fs.String("goals", "", "`DIR` of <scenario>/<server>-<transport>-<n>.json runs to judge the goals of issue 14 on")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: bayeuxhub-bench report [--out FILE] [--header FILE] [--goals DIR] [--ws-compare DIR] [--history-compare DIR] DIR")
	}
	dir := fs.Arg(0)
	var b strings.Builder
	if *header != "" {
		h, err := os.ReadFile(*header)
		if err != nil {
			return err
		}
		b.Write(h)
		b.WriteString("\n")
	}
	if *goals != "" {
		writeGoalsSection(&b, *goals)
	}
	for _, sc := range scenarioOrder {
		results := map[string]*loadgen.Result{}
		extras := map[string]resultExtra{}
		fails := map[string]string{}
		found := false
		for _, s := range append(slices.Clone(servers), optionalServers...) {
			r, fail, ok := load(filepath.Join(dir, sc, s))
			if !ok {
				continue
			}
			found = true
			if r != nil {
				results[s] = r
				extras[s] = loadExtra(filepath.Join(dir, sc, s))
			} else {
				fails[s] = fail
			}
		}
		if !found {
			continue
		}
		writeTable(&b, sc, results, extras, fails)
	}
	if *wsCompare != "" {
		writeTransportTable(&b, *wsCompare)
	}
	if *histCompare != "" {
		writeHistorySection(&b, *histCompare)
	}
	if *out == "-" {
		_, err := io.WriteString(os.Stdout, b.String())
		return err
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

// load reads base.json, or base.err for a failed run; ok is false when
// neither exists.
func load(base string) (r *loadgen.Result, fail string, ok bool) {
	if data, err := os.ReadFile(base + ".json"); err == nil && len(data) > 0 {
		r = &loadgen.Result{}
		if err := json.Unmarshal(data, r); err == nil {
			return r, "", true
		}
	}
	if data, err := os.ReadFile(base + ".err"); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		last := lines[len(lines)-1]
		if last == "" {
			last = "failed"
		}
		return nil, last, true
	}
	return nil, "", false
}

func writeTable(b *strings.Builder, sc string, results map[string]*loadgen.Result, extras map[string]resultExtra, fails map[string]string) {
	servers := slices.Clone(servers)
	for _, s := range optionalServers {
		if results[s] != nil || fails[s] != "" {
			servers = append(servers, s)
		}
	}
	fmt.Fprintf(b, "## %s\n\n%s", sc, scenarioDesc[sc])
	for _, s := range servers {
		if r := results[s]; r != nil {
			c := r.Config
			fmt.Fprintf(b, " Run: %d subscribers, %d publishers, rate %s, %d channels × %d per client, %d B payload, %.0fs measured after %s warmup.",
				c.Subscribers, c.Publishers, rateText(c.Rate), c.Channels, c.SubsPerClient, c.Size, r.WindowSeconds, c.Warmup)
			break
		}
	}
	b.WriteString("\n\n| metric |")
	for _, s := range servers {
		fmt.Fprintf(b, " %s |", serverTitles[s])
	}
	for _, s := range servers[1:] {
		fmt.Fprintf(b, " bayeuxhub / %s |", serverTitles[s])
	}
	b.WriteString("\n|---|")
	for range 2*len(servers) - 1 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	hub := results[servers[0]]
	for _, m := range scenarioMetrics[sc] {
		fmt.Fprintf(b, "| %s |", m.name)
		for _, s := range servers {
			switch r := results[s]; {
			case r != nil:
				fmt.Fprintf(b, " %s |", m.format(m.value(r)))
			case fails[s] != "":
				b.WriteString(" failed |")
			default:
				b.WriteString(" — |")
			}
		}
		for _, s := range servers[1:] {
			o := results[s]
			if !m.ratio || hub == nil || o == nil || m.value(o) <= 0 || m.value(hub) < 0 {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(b, " %.2f× |", m.value(hub)/m.value(o))
		}
		b.WriteString("\n")
	}
	for _, s := range servers {
		if f := fails[s]; f != "" {
			fmt.Fprintf(b, "\n%s failed: `%s`\n", serverTitles[s], strings.ReplaceAll(f, "`", "'"))
		}
		if r := results[s]; r != nil && r.DrainTimedOut {
			fmt.Fprintf(b, "\n%s: deliveries were still arriving when the drain time ran out; \"lost\" includes messages in flight.\n", serverTitles[s])
		}
		if r := results[s]; r != nil && r.Config.Kind == loadgen.KindPubSub {
			if n := rateNote(r, extras[s]); n != "" {
				fmt.Fprintf(b, "\n%s: %s\n", serverTitles[s], n)
			}
		}
		if r := results[s]; r != nil && len(r.FirstErrors) > 0 {
			fmt.Fprintf(b, "\n%s errors (first): `%s`\n", serverTitles[s], strings.ReplaceAll(r.FirstErrors[0], "`", "'"))
		}
	}
	b.WriteString("\n")
}

// rateNote says how far publishers fell behind the rate asked: in an open
// loop (publishes on schedule), how many were sent late; in a closed loop
// (each publisher waits for its acknowledgement), the rate reached. ""
// when they kept up.
func rateNote(r *loadgen.Result, x resultExtra) string {
	if r.Config.Rate <= 0 {
		return ""
	}
	if x.Config.Loop == "open" {
		var parts []string
		if x.Late != nil && *x.Late > 0 {
			p := fmt.Sprintf("%d publishes were sent late (more than 1 ms after their scheduled time", *x.Late)
			if x.LateMaxMS != nil {
				p += ", the latest " + loadgen.FmtMS(*x.LateMaxMS) + " late"
			}
			parts = append(parts, p+"; latency counts from the schedule)")
		}
		if x.Unsent != nil && *x.Unsent > 0 {
			parts = append(parts, fmt.Sprintf("%d scheduled in the window were never sent", *x.Unsent))
		}
		if r.PublishRate < 0.95*r.Config.Rate {
			parts = append(parts, fmt.Sprintf("publishers reached %.0f of the %.0f msg/s asked", r.PublishRate, r.Config.Rate))
		}
		if len(parts) == 0 {
			return ""
		}
		return "open loop: " + strings.Join(parts, "; ") + "."
	}
	if r.PublishRate < 0.95*r.Config.Rate {
		return fmt.Sprintf("publishers reached %.0f of the %.0f msg/s asked (each waits for its acknowledgement).", r.PublishRate, r.Config.Rate)
	}
	return ""
}

func rateText(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// transports are the rows of the long-polling / WebSocket comparison.
var transports = []string{loadgen.TransportLongPolling, loadgen.TransportWebSocket}

var transportTitles = map[string]string{loadgen.TransportLongPolling: "long-polling", loadgen.TransportWebSocket: "WebSocket"}

// transportMetrics are the columns of the comparison.
var transportMetrics = []metric{mDelivered, mP50, mP99, mLost, mGenCPU, mSrvCPU}

// writeTransportTable writes the section comparing bayeuxhub's transports
// from dir/<scenario>/<transport>.json (or .err), one row per scenario
// and transport; it writes nothing when dir holds no result.
func writeTransportTable(b *strings.Builder, dir string) {
	var t strings.Builder
	var notes []string
	found := false
	for _, sc := range scenarioOrder {
		for _, tr := range transports {
			r, fail, ok := load(filepath.Join(dir, sc, tr))
			if !ok {
				continue
			}
			found = true
			fmt.Fprintf(&t, "| %s | %s |", sc, transportTitles[tr])
			for _, m := range transportMetrics {
				if r != nil {
					fmt.Fprintf(&t, " %s |", m.format(m.value(r)))
				} else {
					t.WriteString(" failed |")
				}
			}
			t.WriteString("\n")
			switch {
			case r == nil:
				notes = append(notes, fmt.Sprintf("%s over %s failed: `%s`", sc, transportTitles[tr], strings.ReplaceAll(fail, "`", "'")))
			case r.DrainTimedOut:
				notes = append(notes, fmt.Sprintf("%s over %s: deliveries were still arriving when the drain time ran out; \"lost\" includes messages in flight.", sc, transportTitles[tr]))
			case len(r.FirstErrors) > 0:
				notes = append(notes, fmt.Sprintf("%s over %s errors (first): `%s`", sc, transportTitles[tr], strings.ReplaceAll(r.FirstErrors[0], "`", "'")))
			}
			if r != nil {
				if n := rateNote(r, loadExtra(filepath.Join(dir, sc, tr))); n != "" {
					notes = append(notes, fmt.Sprintf("%s over %s: %s", sc, transportTitles[tr], n))
				}
			}
		}
	}
	if !found {
		return
	}
	b.WriteString("## Long-polling and WebSocket side by side\n\n")
	b.WriteString("bayeuxhub alone, the same scenarios driven over HTTP long-polling and over WebSocket " +
		"(`--transport websocket`: one socket per client, deliveries pushed in their own frames), " +
		"each run on a freshly started server.\n\n")
	writeMetricHeader(b, "| scenario | transport |", transportMetrics)
	b.WriteString(t.String())
	for _, n := range notes {
		fmt.Fprintf(b, "\n%s\n", n)
	}
	b.WriteString("\n")
}

// historyMetrics are the rows of the history on / off comparison.
var historyMetrics = []metric{mDelivered, mPublished, mP50, mP99, mAckP99, mLost, mDup, mErrors, mGenCPU, mSrvCPU, mRSSAfter}

// writeHistorySection writes the section on replay and the cost of
// history from dir: fanout/off and fanout/on (the fanout scenario against
// bayeuxhub without and with a history on its channel) side by side with
// their ratio, then the replay scenario's runs, replay/<transport>; it
// writes nothing when dir holds no result.
func writeHistorySection(b *strings.Builder, dir string) {
	off, offFail, okOff := load(filepath.Join(dir, "fanout", "off"))
	on, onFail, okOn := load(filepath.Join(dir, "fanout", "on"))
	type replayRun struct {
		tr   string
		r    *loadgen.Result
		fail string
	}
	var replays []replayRun
	for _, tr := range transports {
		if r, fail, ok := load(filepath.Join(dir, "replay", tr)); ok {
			replays = append(replays, replayRun{tr, r, fail})
		}
	}
	if !okOff && !okOn && len(replays) == 0 {
		return
	}
	b.WriteString("## Replay and the cost of history\n\n")
	if okOff || okOn {
		size := 0
		if on != nil {
			size = on.Config.HistorySize
		}
		onTitle := "history on"
		if size > 0 {
			onTitle = fmt.Sprintf("history on (%d per channel)", size)
		}
		b.WriteString("The fanout scenario against bayeuxhub twice, each on a freshly started server: without history, " +
			"and with a channel rule for `/bench/**` that keeps history (`history-size`), so that every publish is also " +
			"stored and stamped with a replay id.")
		if r := cmpOr(on, off); r != nil {
			c := r.Config
			fmt.Fprintf(b, " Run: %d subscribers, %d publishers, rate %s, %d B payload, %.0fs measured after %s warmup, over %s.",
				c.Subscribers, c.Publishers, rateText(c.Rate), c.Size, r.WindowSeconds, c.Warmup, transportTitles[cmpStr(c.Transport, loadgen.TransportLongPolling)])
		}
		fmt.Fprintf(b, "\n\n| metric | history off | %s | on / off |\n|---|---:|---:|---:|\n", onTitle)
		for _, m := range historyMetrics {
			fmt.Fprintf(b, "| %s |", m.name)
			for _, x := range []struct {
				r    *loadgen.Result
				fail string
			}{{off, offFail}, {on, onFail}} {
				switch {
				case x.r != nil:
					fmt.Fprintf(b, " %s |", m.format(m.value(x.r)))
				case x.fail != "":
					b.WriteString(" failed |")
				default:
					b.WriteString(" — |")
				}
			}
			if m.ratio && on != nil && off != nil && m.value(off) > 0 && m.value(on) >= 0 {
				fmt.Fprintf(b, " %.2f× |\n", m.value(on)/m.value(off))
			} else {
				b.WriteString(" |\n")
			}
		}
		for _, x := range []struct {
			what string
			r    *loadgen.Result
			fail string
		}{{"history off", off, offFail}, {"history on", on, onFail}} {
			switch {
			case x.fail != "":
				fmt.Fprintf(b, "\n%s failed: `%s`\n", x.what, strings.ReplaceAll(x.fail, "`", "'"))
			case x.r != nil && x.r.Config.Rate > 0 && x.r.PublishRate < 0.95*x.r.Config.Rate:
				fmt.Fprintf(b, "\n%s: publishers reached %.0f of the %.0f msg/s asked (each waits for its acknowledgement).\n", x.what, x.r.PublishRate, x.r.Config.Rate)
			}
		}
		b.WriteString("\n")
	}
	if len(replays) > 0 {
		b.WriteString("The replay scenario (`--scenario replay`): subscribers on one channel with history, each dropping its session " +
			"on a schedule, staying away, then handshaking again and re-subscribing with `ext.replay` from the last replay id it " +
			"received, while publishing goes on. Lost and duplicated count every acknowledged message against every subscriber " +
			"across all its sessions; replay latency is from sending the re-subscribe to the first message published after it, " +
			"which the hub delivers only after the replay.")
		if r := replays[0].r; r != nil {
			c := r.Config
			fmt.Fprintf(b, " Run: %d subscribers, %d publishers, rate %s, %d B payload, %.0fs measured after %s warmup; "+
				"each drops every %s (%s) and stays away %s; history of %d per channel.",
				c.Subscribers, c.Publishers, rateText(c.Rate), c.Size, r.WindowSeconds, c.Warmup, c.ReplayEvery, c.ReplayDrop, c.ReplayDown, c.HistorySize)
		}
		b.WriteString("\n\n| transport | replays | refused | replayed messages | replay p50 | replay p99 | lost | duplicated | delivered/s | live latency p99 | errors |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, x := range replays {
			fmt.Fprintf(b, "| %s |", transportTitles[x.tr])
			if x.r == nil || x.r.Replay == nil {
				b.WriteString(strings.Repeat(" failed |", 10) + "\n")
				continue
			}
			rp := x.r.Replay
			fmt.Fprintf(b, " %d | %d | %d | %s | %s | %d | %d | %.0f | %s | %d |\n", rp.Replays, rp.Refused, rp.Replayed,
				loadgen.FmtMS(rp.Latency.P50), loadgen.FmtMS(rp.Latency.P99), x.r.Lost, x.r.Duplicated, x.r.DeliverRate,
				loadgen.FmtMS(x.r.Latency.P99), x.r.Errors)
		}
		for _, x := range replays {
			switch {
			case x.r == nil:
				fmt.Fprintf(b, "\nreplay over %s failed: `%s`\n", transportTitles[x.tr], strings.ReplaceAll(x.fail, "`", "'"))
			case x.r.DrainTimedOut:
				fmt.Fprintf(b, "\nreplay over %s: deliveries were still arriving when the drain time ran out; \"lost\" includes messages in flight.\n", transportTitles[x.tr])
			case len(x.r.FirstErrors) > 0:
				fmt.Fprintf(b, "\nreplay over %s errors (first): `%s`\n", transportTitles[x.tr], strings.ReplaceAll(x.r.FirstErrors[0], "`", "'"))
			}
			if x.r != nil && x.r.Config.Rate > 0 && x.r.PublishRate < 0.95*x.r.Config.Rate {
				fmt.Fprintf(b, "\nreplay over %s: publishers reached %.0f of the %.0f msg/s asked (each waits for its acknowledgement).\n",
					transportTitles[x.tr], x.r.PublishRate, x.r.Config.Rate)
			}
		}
		b.WriteString("\n")
	}
}

// writeMetricHeader writes a table's header: two text columns (lead, as
// "| a | b |"), then one right-aligned column per metric.
func writeMetricHeader(b *strings.Builder, lead string, cols []metric) {
	b.WriteString(lead)
	for _, m := range cols {
		fmt.Fprintf(b, " %s |", m.name)
	}
	b.WriteString("\n|---|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
}

func cmpOr(a, b *loadgen.Result) *loadgen.Result {
	if a != nil {
		return a
	}
	return b
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
