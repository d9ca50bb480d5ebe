package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bayeuxhub/bayeuxhub/internal/loadgen"
)

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8080/cometd": true,
		"http://localhost/cometd":      true,
		"http://[::1]:9/cometd":        true,
		"http://127.1.2.3/cometd":      true,
		"http://10.0.0.1/cometd":       false,
		"http://example.com/cometd":    false,
		"https://127.0.0.1/cometd":     false,
	} {
		if err := checkLoopback(u, false, false); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
	if err := checkLoopback("http://10.0.0.1/cometd", true, false); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
	if err := checkLoopback("ws://127.0.0.1:8000/connection/websocket", false, true); err != nil {
		t.Errorf("centrifugo endpoint refused: %v", err)
	}
	if err := checkLoopback("ws://127.0.0.1:8000/connection/websocket", false, false); err == nil {
		t.Error("ws:// accepted for Bayeux")
	}
	if err := checkLoopback("ws://10.0.0.1:8000/connection/websocket", false, true); err == nil {
		t.Error("remote centrifugo accepted")
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(sc, srv string, r *loadgen.Result) {
		if err := os.MkdirAll(filepath.Join(dir, sc), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, sc, srv+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := loadgen.Preset("publish")
	write("publish", "bayeuxhub", &loadgen.Result{Config: cfg, PublishRate: 2000, ServerCPU: 90})
	write("publish", "floor", &loadgen.Result{Config: cfg, PublishRate: 1000, ServerCPU: -1})
	if err := os.WriteFile(filepath.Join(dir, "publish", "faye.err"), []byte("boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "B.md")
	if err := reportMain([]string{"--out", out, dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{"## publish", "| published/s | 2000 | 1000 | failed | 2.00× |", "Faye failed: `boom`", "| server CPU | 90% | n/a |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## fanout") {
		t.Errorf("report has a table for a scenario without results")
	}
}

func TestReportWSCompare(t *testing.T) {
	t.Parallel()
	dir, cmpDir := t.TempDir(), t.TempDir()
	write := func(base string, r *loadgen.Result) {
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(base+".json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := loadgen.Preset("fanout")
	write(filepath.Join(dir, "fanout", "bayeuxhub"), &loadgen.Result{Config: cfg, DeliverRate: 1000, ServerCPU: 50})
	write(filepath.Join(cmpDir, "fanout", "long-polling"), &loadgen.Result{Config: cfg, DeliverRate: 1000, GenCPU: 40, ServerCPU: 50,
		Latency: loadgen.Latency{P50: 2, P99: 9}})
	ws := cfg
	ws.Transport = loadgen.TransportWebSocket
	write(filepath.Join(cmpDir, "fanout", "websocket"), &loadgen.Result{Config: ws, DeliverRate: 999, Lost: 1, GenCPU: 30, ServerCPU: 20,
		Latency: loadgen.Latency{P50: 1, P99: 4}})
	if err := os.MkdirAll(filepath.Join(cmpDir, "chat"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cmpDir, "chat", "websocket.err"), []byte("boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "B.md")
	if err := reportMain([]string{"--out", out, "--ws-compare", cmpDir, dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"## Long-polling and WebSocket side by side",
		"| scenario | transport | delivered/s | latency p50 | latency p99 | lost | generator CPU | server CPU |",
		"| fanout | long-polling | 1000 |",
		"| fanout | WebSocket | 999 |",
		"| 1 | 30% | 20% |",
		"| chat | WebSocket | failed | failed |",
		"chat over WebSocket failed: `boom`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "## fanout") > strings.Index(md, "## Long-polling and WebSocket") {
		t.Errorf("the comparison is not after the tables:\n%s", md)
	}
}

func TestBenchRules(t *testing.T) {
	t.Parallel()
	rules, err := benchRules(1000)
	if err != nil {
		t.Fatal(err)
	}
	i := rules.Match("/bench/0")
	if i < 0 || rules.Rule(i).History.Size != 1000 {
		t.Errorf("/bench/0 matches rule %d without a history of 1000", i)
	}
	if i := rules.Match("/chat/x"); i < 0 || rules.Rule(i).History.Enabled() {
		t.Errorf("/chat/x: rule %d", i)
	}
	rules, err = benchRules(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rules.Len() {
		if rules.Rule(i).History.Enabled() {
			t.Errorf("rule %d keeps history without --history-size", i)
		}
	}
}

func TestReportHistoryCompare(t *testing.T) {
	t.Parallel()
	dir, hdir := t.TempDir(), t.TempDir()
	write := func(base string, r *loadgen.Result) {
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(base+".json", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := loadgen.Preset("fanout")
	write(filepath.Join(hdir, "fanout", "off"), &loadgen.Result{Config: cfg, DeliverRate: 400000, PublishRate: 400, ServerCPU: 90,
		Latency: loadgen.Latency{P50: 200, P99: 800}})
	on := cfg
	on.HistorySize = 1000
	write(filepath.Join(hdir, "fanout", "on"), &loadgen.Result{Config: on, DeliverRate: 300000, PublishRate: 300, ServerCPU: 95,
		Latency: loadgen.Latency{P50: 300, P99: 1000}})
	rcfg, _ := loadgen.Preset("replay")
	write(filepath.Join(hdir, "replay", "long-polling"), &loadgen.Result{Config: rcfg, DeliverRate: 100000, Lost: 0,
		Replay: &loadgen.ReplayStats{Replays: 700, Replayed: 70000, Latency: loadgen.Latency{P50: 2, P99: 30}}})
	if err := os.WriteFile(filepath.Join(hdir, "replay", "websocket.err"), []byte("boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "B.md")
	if err := reportMain([]string{"--out", out, "--history-compare", hdir, dir}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"## Replay and the cost of history",
		"| metric | history off | history on (1000 per channel) | on / off |",
		"| delivered/s | 400000 | 300000 | 0.75× |",
		"| latency p99 | 800ms | 1000ms | 1.25× |",
		"| long-polling | 700 | 0 | 70000 | 2.00ms | 30.00ms | 0 | 0 | 100000 |",
		"| WebSocket | failed |",
		"replay over WebSocket failed: `boom`",
		"history of 10000 per channel",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
