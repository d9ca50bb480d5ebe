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
		if err := checkLoopback(u, false); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
	if err := checkLoopback("http://10.0.0.1/cometd", true); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
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
