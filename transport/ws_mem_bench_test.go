package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The benchmarks below keep their clients in a child process (this test
// binary, running TestWSChildClients), so that what they measure in this
// process is the server's alone.
const (
	wsChildURL     = "BAYEUXHUB_WS_CHILD_URL"
	wsChildClients = "BAYEUXHUB_WS_CHILD_CLIENTS"
	wsChildDeflate = "BAYEUXHUB_WS_CHILD_DEFLATE" // "1": ask for permessage-deflate
)

// TestWSChildClients is not a test: run by wsChild as a child process, it
// opens the clients the parent asks for, each subscribed to /bench with a
// /meta/connect held, prints "READY", then prints the fewest deliveries
// any client has had ("GOT n") every 10 ms until its stdin closes.
func TestWSChildClients(t *testing.T) {
	url := os.Getenv(wsChildURL)
	if url == "" {
		t.Skip("run by the WebSocket benchmarks as their clients' process")
	}
	n, _ := strconv.Atoi(os.Getenv(wsChildClients))
	counts := make([]atomic.Int64, n)
	var conns []*websocket.Conn
	for i := range n {
		conn, err := wsChildClient(url, &counts[i])
		if err != nil {
			fmt.Printf("FAIL %v\n", err)
			return
		}
		conns = append(conns, conn)
	}
	fmt.Println("READY")
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			for _, c := range conns {
				_ = c.CloseNow()
			}
			return
		case <-tick.C:
			least := int64(-1)
			for i := range counts {
				if v := counts[i].Load(); least < 0 || v < least {
					least = v
				}
			}
			fmt.Printf("GOT %d\n", least)
		}
	}
}

// wsChildClient opens one subscribed client whose reader counts its
// deliveries and answers each connect reply with a connect.
func wsChildClient(url string, count *atomic.Int64) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled}
	if os.Getenv(wsChildDeflate) == "1" {
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	conn, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(-1)
	call := func(m string) (map[string]any, error) {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			return nil, err
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		var out []map[string]any
		if err := json.Unmarshal(data, &out); err != nil || len(out) == 0 || out[0]["successful"] != true {
			return nil, fmt.Errorf("%s: %s", m, data)
		}
		return out[0], nil
	}
	r, err := call(`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}`)
	if err != nil {
		return nil, err
	}
	id := r["clientId"].(string)
	connect := []byte(`{"channel":"/meta/connect","connectionType":"websocket","clientId":"` + id + `"}`)
	if _, err := call(string(connect)); err != nil {
		return nil, err
	}
	if _, err := call(`{"channel":"/meta/subscribe","subscription":"/bench","clientId":"` + id + `"}`); err != nil {
		return nil, err
	}
	if err := conn.Write(ctx, websocket.MessageText, connect); err != nil {
		return nil, err
	}
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			count.Add(int64(strings.Count(string(data), `"channel":"/bench"`)))
			if strings.Contains(string(data), `"/meta/connect"`) {
				_ = conn.Write(context.Background(), websocket.MessageText, connect)
			}
		}
	}()
	return conn, nil
}

// wsChild is the clients' process of a benchmark.
type wsChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	got   atomic.Int64
	ready chan error
}

// startWSChild starts n clients against url in a child process and
// waits until they are all subscribed.
func startWSChild(b *testing.B, url string, n int, deflate bool) *wsChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWSChildClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), wsChildURL+"="+url, wsChildClients+"="+strconv.Itoa(n))
	if deflate {
		cmd.Env = append(cmd.Env, wsChildDeflate+"=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &wsChild{cmd: cmd, stdin: stdin, ready: make(chan error, 1)}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "READY":
				c.ready <- nil
			case strings.HasPrefix(line, "FAIL "):
				c.ready <- fmt.Errorf("clients: %s", line)
			case strings.HasPrefix(line, "GOT "):
				v, _ := strconv.ParseInt(strings.TrimPrefix(line, "GOT "), 10, 64)
				c.got.Store(v)
			}
		}
		c.ready <- fmt.Errorf("clients' process ended")
	}()
	select {
	case err := <-c.ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		b.Fatal("clients not ready")
	}
	return c
}

// serverMem is the heap and stacks in use, after collecting twice.
func serverMem() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

// BenchmarkWebSocketIdleMemory: the server's memory per subscribed
// WebSocket connection with a /meta/connect held (issue 14: at most 24
// KiB of RSS), without and with permessage-deflate. It opens 2,000
// connections whatever b.N is; the figures are per connection.
func BenchmarkWebSocketIdleMemory(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		b.Run(deflateName(deflate), func(b *testing.B) {
			const n = 2000
			_, url := wsBenchServerWith(b, WebSocketOptions{Compression: deflate})
			heap0, stack0 := serverMem()
			g0 := runtime.NumGoroutine()
			b.ResetTimer()
			startWSChild(b, url, n, deflate)
			b.StopTimer()
			heap1, stack1 := serverMem()
			g1 := runtime.NumGoroutine()
			b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n)/1024, "heap-KiB/conn")
			b.ReportMetric(float64(int64(stack1)-int64(stack0))/float64(n)/1024, "stack-KiB/conn")
			b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
		})
	}
}

func deflateName(on bool) string {
	if on {
		return "deflate"
	}
	return "plain"
}

// BenchmarkWebSocketFanout: hub.Publish to 1,000 WebSocket subscribers in
// a child process, at most 100 messages ahead of the slowest, without and
// with permessage-deflate; an op is one delivery. It reports the server's
// CPU time per delivery (getrusage of this process: the clients' CPU is
// the child's). Run it with -benchtime=300000x or more.
func BenchmarkWebSocketFanout(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		b.Run(deflateName(deflate), func(b *testing.B) {
			const subscribers, window = 1000, 100
			hub, url := wsBenchServerWith(b, WebSocketOptions{Compression: deflate})
			child := startWSChild(b, url, subscribers, deflate)
			msgs := max(b.N/subscribers, 1)
			data := map[string]any{"text": strings.Repeat("x", 100)}
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range msgs {
				for int64(i)-child.got.Load() >= window {
					time.Sleep(time.Millisecond)
				}
				if err := hub.Publish("/bench", data); err != nil {
					b.Fatal(err)
				}
			}
			for child.got.Load() < int64(msgs) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(msgs*subscribers)
			b.ReportMetric(float64(cpu.Nanoseconds()), "server-cpu-ns/delivery")
			b.ReportMetric(float64(msgs*subscribers)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
