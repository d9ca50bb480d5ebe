package loadgen

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained HTML report (inline SVG, no external
// assets): the summary, latency p50/p99 per second, throughput per second
// and the latency distribution.
func (r *Result) WriteHTML(w io.Writer) error {
	var sum strings.Builder
	r.WriteSummary(&sum)
	data := struct {
		Title      string
		Summary    string
		Latency    template.HTML
		Throughput template.HTML
		Histogram  template.HTML
	}{
		Title:      fmt.Sprintf("bayeuxhub-bench: %s", r.Config.Scenario),
		Summary:    sum.String(),
		Latency:    template.HTML(r.latencyChart()),
		Throughput: template.HTML(r.throughputChart()),
		Histogram:  template.HTML(r.histChart()),
	}
	return htmlTmpl.Execute(w, data)
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
pre{background:#f5f5f5;padding:1em;overflow-x:auto;font-size:13px}
svg{background:#fff;border:1px solid #ddd;margin:0.5em 0;font-size:11px}
</style></head><body>
<h1>{{.Title}}</h1>
<pre>{{.Summary}}</pre>
<h2>Latency per second</h2>
{{.Latency}}
<h2>Throughput per second</h2>
{{.Throughput}}
<h2>Latency distribution</h2>
{{.Histogram}}
</body></html>
`))

const (
	chartW, chartH = 900, 280
	padL, padR     = 70, 20
	padT, padB     = 20, 40
)

type series struct {
	color, label string
	ys           []float64
	// skipZero leaves out zero points (seconds without data).
	skipZero bool
}

// lineChart draws series over x = 0..n-1 seconds.
func lineChart(yLabel string, ss []series) string {
	n := 0
	ymax := 0.0
	for _, s := range ss {
		n = max(n, len(s.ys))
		for _, y := range s.ys {
			ymax = math.Max(ymax, y)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, chartW, chartH)
	if n == 0 || ymax == 0 {
		b.WriteString(`<text x="20" y="40">no data</text></svg>`)
		return b.String()
	}
	ymax = niceCeil(ymax)
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(i int) float64 { return padL + pw*float64(i)/math.Max(1, float64(n-1)) }
	y := func(v float64) float64 { return padT + ph*(1-v/ymax) }
	for k := 0; k <= 4; k++ {
		v := ymax * float64(k) / 4
		fmt.Fprintf(&b, `<line stroke="#e5e5e5" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y(v)+4, fmtNum(v))
	}
	step := max(1, n/10)
	for i := 0; i < n; i += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%ds</text>`, x(i), chartH-padB+16, i)
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, chartH/2, chartH/2, template.HTMLEscapeString(yLabel))
	for k, s := range ss {
		var pts strings.Builder
		for i, v := range s.ys {
			if v == 0 && s.skipZero {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(v))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, x(i), y(v), s.color)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, s.color, pts.String())
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">— %s</text>`, padL+10+k*90, padT+12, s.color, template.HTMLEscapeString(s.label))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

func (r *Result) latencyChart() string {
	var p50, p99 []float64
	for _, p := range r.Series {
		p50 = append(p50, p.P50)
		p99 = append(p99, p.P99)
	}
	return lineChart("latency (ms)", []series{{"#1f77b4", "p50", p50, true}, {"#d62728", "p99", p99, true}})
}

func (r *Result) throughputChart() string {
	var pub, del []float64
	for _, p := range r.Series {
		pub = append(pub, float64(p.Published))
		del = append(del, float64(p.Delivered))
	}
	return lineChart("messages / s", []series{{"#2ca02c", "published", pub, false}, {"#9467bd", "delivered", del, false}})
}

// histChart draws the latency distribution over log-spaced bins.
func (r *Result) histChart() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">`, chartW, chartH, chartW, chartH)
	if len(r.Hist) == 0 {
		b.WriteString(`<text x="20" y="40">no data</text></svg>`)
		return b.String()
	}
	lo := math.Log10(math.Max(1, float64(r.Hist[0].Upper)))
	hi := math.Log10(math.Max(10, float64(r.Hist[len(r.Hist)-1].Upper)))
	if hi-lo < 1 {
		lo = hi - 1
	}
	const bins = 60
	counts := make([]uint64, bins)
	var total uint64
	for _, hb := range r.Hist {
		v := math.Log10(math.Max(1, float64(hb.Upper)))
		i := min(int((v-lo)/(hi-lo)*bins), bins-1)
		counts[max(i, 0)] += hb.Count
		total += hb.Count
	}
	var cmax uint64
	for _, c := range counts {
		cmax = max(cmax, c)
	}
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	bw := pw / bins
	for i, c := range counts {
		if c == 0 {
			continue
		}
		h := ph * float64(c) / float64(cmax)
		fmt.Fprintf(&b, `<rect fill="#1f77b4" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%.1f%%</title></rect>`,
			padL+float64(i)*bw, padT+ph-h, math.Max(1, bw-1), h, 100*float64(c)/float64(total))
	}
	for d := math.Ceil(lo); d <= hi; d++ {
		xp := padL + pw*(d-lo)/(hi-lo)
		fmt.Fprintf(&b, `<line stroke="#e5e5e5" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>`, xp, xp, padT, chartH-padB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, xp, chartH-padB+16, fmtDur(durationOf(math.Pow(10, d))))
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">share of messages</text>`, chartH/2, chartH/2)
	b.WriteString(`</svg>`)
	return b.String()
}
