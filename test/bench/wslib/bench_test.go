package wslib

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

const (
	idleConns   = 2000 // BenchmarkIdle*, without deflate
	deflateIdle = 1000 // with deflate (a context-takeover connection holds > 1 MB)
	pushConns   = 1000 // BenchmarkPush*: one op is one message to each
	coalesced   = 10   // messages per frame in the coalesced variant
)

// fleet is a server and a child process holding n client connections.
type fleet struct {
	s     *Server
	n     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startFleet(b *testing.B, cfg Config, n int) *fleet {
	s, err := Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	f := &fleet{s: s, n: n, lines: make(chan string, 64)}
	f.cmd = exec.Command(os.Args[0], "-test.run=^$")
	f.cmd.Env = append(os.Environ(), fmt.Sprintf("WSLIB_CLIENTS=%s %d %v", s.Addr(), n, cfg.Deflate != NoDeflate))
	f.cmd.Stderr = os.Stderr
	out, _ := f.cmd.StdoutPipe()
	f.stdin, _ = f.cmd.StdinPipe()
	if err := f.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
	}()
	if l := f.next(b); l != "ready" {
		f.stop()
		b.Fatalf("clients: %q", l)
	}
	if got := len(s.Conns()); got != n {
		f.stop()
		b.Fatalf("%d connections, want %d", got, n)
	}
	return f
}

func (f *fleet) next(b *testing.B) string {
	select {
	case l, ok := <-f.lines:
		if !ok {
			b.Fatal("client process ended")
		}
		return l
	case <-time.After(60 * time.Second):
		b.Fatal("clients: no answer in 60 s")
	}
	return ""
}

func (f *fleet) stop() {
	f.stdin.Close()
	f.cmd.Wait()
	f.s.Close()
}

// benchIdle holds connections that subscribed (one message each way) and
// then sat idle for a second, and reports what each costs the server after
// a GC. ns/op, B/op and allocs/op are overridden with what opening and
// subscribing one connection cost the server (it runs once: b.N is 1).
func benchIdle(b *testing.B, cfg Config) {
	n := idleConns
	if cfg.Deflate != NoDeflate {
		n = deflateIdle
	}
	var m0, m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	t0 := time.Now()
	f := startFleet(b, cfg, n)
	setup := time.Since(t0)
	runtime.ReadMemStats(&m1)
	time.Sleep(time.Second)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m2)
	g := runtime.NumGoroutine() - g0 - 1 // less the fleet's stdout reader
	f.stop()
	per := func(v uint64) float64 { return float64(v) / float64(n) }
	b.ReportMetric(per(m2.HeapInuse-m0.HeapInuse)/1024, "heap-KiB/conn")
	b.ReportMetric(per(m2.StackInuse-m0.StackInuse)/1024, "stack-KiB/conn")
	b.ReportMetric(float64(g)/float64(n), "goroutines/conn")
	b.ReportMetric(float64(setup.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(per(m1.TotalAlloc-m0.TotalAlloc), "B/op")
	b.ReportMetric(per(m1.Mallocs-m0.Mallocs), "allocs/op")
}

// benchPush pushes, per op, one fresh message (or batch messages coalesced
// into one frame) to each of pushConns connections, and waits until the
// client process has read every frame. With prepared, the frame is
// encoded (and compressed) once per op for all connections. The per-frame
// figures are the server process's: clients are in the child.
func benchPush(b *testing.B, cfg Config, batch int, prepared bool) {
	f := startFleet(b, cfg, pushConns)
	defer f.stop()
	conns := f.s.Conns()
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	msgs := make([][]byte, batch)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	var wire int64
	b.ResetTimer()
	for round := 1; round <= b.N; round++ {
		for i := range msgs {
			seq++
			msgs[i] = message(rng, seq)
		}
		if prepared {
			p := f.s.Prepare(msgs...)
			for _, c := range conns {
				c.PushPrepared(p)
			}
		} else {
			for _, c := range conns {
				c.Push(batch > 1, msgs...)
			}
		}
		l := f.next(b)
		var got int
		if _, err := fmt.Sscan(l, &got, &wire); err != nil || got != round*pushConns {
			b.Fatalf("clients: %q after round %d", l, round)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	frames := float64(b.N * pushConns)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/frames, "ns/frame")
	b.ReportMetric(float64(cpu.Nanoseconds())/frames, "cpu-ns/frame")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/frames, "allocs/frame")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/frames, "B/frame")
	b.ReportMetric(float64(wire)/frames, "wire-B/frame")
}

// cpuTime is the user and system CPU time of this (the server's) process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var words = []string{"the", "meeting", "moved", "to", "room", "four", "at", "noon",
	"please", "bring", "slides", "and", "coffee", "for", "everyone", "thanks", "ok", "see", "you", "there"}

// message is a Bayeux delivery of about 150 bytes, different each time.
func message(rng *rand.Rand, seq int) []byte {
	b := fmt.Appendf(nil, `{"channel":"/chat/room%d","id":"%d","data":{"user":"user%04d","ts":%d,"text":"`,
		rng.IntN(100), seq, rng.IntN(10000), 1700000000000+seq)
	for len(b) < 138 {
		b = append(b, words[rng.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return append(b, `"}}`...)
}

func BenchmarkIdleCoder(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchIdle(b, Config{Lib: "coder"}) })
	b.Run("plain-handler-goroutine", func(b *testing.B) { benchIdle(b, Config{Lib: "coder", ReadOnHandler: true}) })
	b.Run("deflate-context", func(b *testing.B) { benchIdle(b, Config{Lib: "coder", Deflate: ContextTakeover}) })
	b.Run("deflate-nocontext", func(b *testing.B) { benchIdle(b, Config{Lib: "coder", Deflate: NoContextTakeover}) })
}

func BenchmarkIdleGorilla(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchIdle(b, Config{Lib: "gorilla"}) })
	b.Run("plain-handler-goroutine", func(b *testing.B) { benchIdle(b, Config{Lib: "gorilla", ReadOnHandler: true}) })
	b.Run("deflate-nocontext", func(b *testing.B) { benchIdle(b, Config{Lib: "gorilla", Deflate: NoContextTakeover}) })
}

func BenchmarkIdleGobwas(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchIdle(b, Config{Lib: "gobwas"}) })
	b.Run("plain-handler-goroutine", func(b *testing.B) { benchIdle(b, Config{Lib: "gobwas", ReadOnHandler: true}) })
	b.Run("deflate-nocontext", func(b *testing.B) { benchIdle(b, Config{Lib: "gobwas", Deflate: NoContextTakeover}) })
}

func pushVariants(b *testing.B, lib string, modes ...string) {
	for _, mode := range append([]string{NoDeflate}, modes...) {
		name := "plain"
		if mode != NoDeflate {
			name = "deflate-" + map[string]string{ContextTakeover: "context", NoContextTakeover: "nocontext"}[mode]
		}
		cfg := Config{Lib: lib, Deflate: mode}
		b.Run(name+"/frame", func(b *testing.B) { benchPush(b, cfg, 1, false) })
		b.Run(name+"/coalesced10", func(b *testing.B) { benchPush(b, cfg, coalesced, false) })
		if lib != "coder" { // coder cannot write a frame encoded beforehand
			b.Run(name+"/prepared", func(b *testing.B) { benchPush(b, cfg, 1, true) })
		}
	}
}

func BenchmarkPushCoder(b *testing.B)   { pushVariants(b, "coder", ContextTakeover, NoContextTakeover) }
func BenchmarkPushGorilla(b *testing.B) { pushVariants(b, "gorilla", NoContextTakeover) }
func BenchmarkPushGobwas(b *testing.B)  { pushVariants(b, "gobwas", NoContextTakeover) }
