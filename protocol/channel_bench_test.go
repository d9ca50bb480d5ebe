package protocol

import (
	"fmt"
	"strings"
	"testing"
)

// deepName returns a channel name of n one-letter segments: "/a/a/.../a",
// 2n bytes long.
func deepName(n int) string { return strings.Repeat("/a", n) }

// deepDepths are the depths the deep-name benchmarks run at: the default
// depth limit, and far beyond it (issue 15: a 512 KB name of 256,000
// segments cost up to 2 s of CPU per publish).
var deepDepths = []int{32, 1024, 32768}

func BenchmarkParseChannelDeep(b *testing.B) {
	for _, n := range deepDepths {
		name := deepName(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(name)))
			for b.Loop() {
				if _, err := ParseChannel(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPatternsDeep looks every pattern up in a map of 64 channels,
// as the hub's routing does (a map that small would compare lengths, not
// hash).
func BenchmarkPatternsDeep(b *testing.B) {
	subs := map[string]int{"/**": 1}
	for i := range 63 {
		subs[fmt.Sprintf("/chan/%d", i)] = 0
	}
	for _, n := range deepDepths {
		name := deepName(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(name)))
			for b.Loop() {
				found := 0
				Patterns(name, func(p []byte) { found += subs[string(p)] })
				if found != 1 {
					b.Fatalf("found %d", found)
				}
			}
		})
	}
}

func BenchmarkMatchDeep(b *testing.B) {
	for _, n := range deepDepths {
		name := deepName(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !Match("/a/**", name) || Match("/a/*", name) && n > 2 {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkDecodeSlowPath decodes a batch the fast decoder leaves to
// encoding/json (an escaped channel name).
func BenchmarkDecodeSlowPath(b *testing.B) {
	body := []byte(`[{"channel":"\/chat\/demo","clientId":"4ltd4xplykcp5qrsrwzc3m5v7dcf2pyb","data":{"user":"ann","chat":"hello there"},"id":"43"},{"channel":"/meta/connect","clientId":"4ltd4xplykcp5qrsrwzc3m5v7dcf2pyb","connectionType":"long-polling","id":"44"}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatternsAtLimit routes the costliest name the default bounds
// let through: 32 segments, 1024 bytes.
func BenchmarkPatternsAtLimit(b *testing.B) {
	subs := map[string]int{"/**": 1}
	for i := range 63 {
		subs[fmt.Sprintf("/chan/%d", i)] = 0
	}
	name := strings.Repeat("/"+strings.Repeat("x", 31), 32)
	if CheckChannelSize(name, 1024, 32) != nil {
		b.Fatal("not at the limit")
	}
	b.ReportAllocs()
	for b.Loop() {
		found := 0
		Patterns(name, func(p []byte) { found += subs[string(p)] })
		if found != 1 {
			b.Fatalf("found %d", found)
		}
	}
}
