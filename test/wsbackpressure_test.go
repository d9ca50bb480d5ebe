package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebSocketPeerThatNeverReadsIsBounded is issue 15's attack on the
// real binary: a WebSocket peer sends 10 MiB in frames of 999 `{}` (3 KB,
// under the hub's MaxBatch) and never reads. Each frame's replies
// ("400::Missing channel" for every `{}`) are twenty times its size; the
// server used to read every frame and keep the replies until the write
// timeout, growing by hundreds of MiB. Now it stops reading the socket once the connection holds
// transport.WebSocketOptions.MaxPendingBytes, and closes it at the write
// timeout (15 s), logging why. The server's peak resident memory (VmHWM)
// must stay within a bound far below what the old behaviour takes, and
// another client is served meanwhile.
func TestWebSocketPeerThatNeverReadsIsBounded(t *testing.T) {
	t.Parallel()
	if bpProcStatus(os.Getpid(), "VmRSS") == 0 {
		t.Skip("no /proc/<pid>/status to read the server's memory from")
	}
	const messages, frames = 999, 3500 // 10 MiB
	const bound = 128 << 20            // growth of the peak RSS
	h := bpStartBinary(t, buildCommand(t))
	wsBase := "ws" + strings.TrimPrefix(h.base, "http") + "/cometd"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A client that reads, to serve once the flood is on.
	other, _, err := websocket.Dial(ctx, wsBase, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseNow()
	startRSS := bpProcStatus(h.pid, "VmRSS")

	peer, _, err := websocket.Dial(ctx, wsBase, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.CloseNow()
	frame := []byte("[" + strings.Repeat("{},", messages-1) + "{}]")
	type result struct {
		written int
		err     error
	}
	flooded := make(chan result, 1)
	go func() {
		var r result
		for r.written < frames && r.err == nil {
			if r.err = peer.Write(ctx, websocket.MessageText, frame); r.err == nil {
				r.written++
			}
		}
		flooded <- r
	}()

	// The other client handshakes, subscribes, publishes and gets its own
	// message while the flood is on.
	bpServed(t, other)

	// The peer's writes stop when the server stops reading, until the
	// server closes the connection at its write timeout (they fail then);
	// or they all go through, when the server reads everything.
	r := <-flooded
	peak := bpProcStatus(h.pid, "VmHWM")
	t.Logf("peer wrote %d frames of %d bytes (%v); server RSS %d MiB before, peak %d MiB (+%d MiB), now %d MiB",
		r.written, len(frame), r.err, startRSS>>20, peak>>20, (peak-startRSS)>>20, bpProcStatus(h.pid, "VmRSS")>>20)
	if peak-startRSS > bound {
		t.Fatalf("the server's peak RSS grew by %d MiB, over %d MiB, for a peer that sent %d KiB and never read",
			(peak-startRSS)>>20, bound>>20, r.written*len(frame)>>10)
	}
	if r.err == nil {
		t.Fatalf("the server read all %d frames of a peer that never reads", frames)
	}
	const reason = "websocket closed: the peer took no output within the write timeout"
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if !h.logged(reason) {
			return fmt.Errorf("no log line %q", reason)
		}
		return nil
	})
	bpServed(t, other) // still served
}

// bpServed makes c handshake (first time), subscribe, publish and get its
// own message back.
func bpServed(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(m msg, want func(msg) bool) msg {
		t.Helper()
		data, _ := json.Marshal(m)
		if err := c.Write(ctx, websocket.MessageText, data); err != nil {
			t.Fatal(err)
		}
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("reading the reply to %v: %v", m, err)
			}
			var replies []msg
			if err := json.Unmarshal(data, &replies); err != nil {
				t.Fatal(err)
			}
			for _, r := range replies {
				if want(r) {
					return r
				}
			}
		}
	}
	byID := func(id string) func(msg) bool {
		return func(r msg) bool { return r["id"] == id && r["successful"] != nil }
	}
	hs := call(msg{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket"}, "id": "hs"}, byID("hs"))
	id, _ := hs["clientId"].(string)
	if id == "" {
		t.Fatalf("handshake: %v", hs)
	}
	if r := call(msg{"channel": "/meta/connect", "connectionType": "websocket", "clientId": id, "id": "c"}, byID("c")); r["successful"] != true {
		t.Fatalf("connect: %v", r)
	}
	if r := call(msg{"channel": "/meta/subscribe", "subscription": "/served", "clientId": id, "id": "s"}, byID("s")); r["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	got := call(msg{"channel": "/served", "data": "hello", "clientId": id, "id": "p"},
		func(r msg) bool { return r["channel"] == "/served" && r["data"] == "hello" })
	if got == nil {
		t.Fatal("no delivery")
	}
}

// bpBinary is a running bayeuxhub whose logs are kept.
type bpBinary struct {
	base string
	pid  int
	mu   sync.Mutex
	logs []string
}

func (h *bpBinary) logged(message string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.logs {
		var line struct{ Message string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Message == message {
			return true
		}
	}
	return false
}

// bpStartBinary runs bin on a loopback port until the test ends.
func bpStartBinary(t *testing.T, bin string) *bpBinary {
	t.Helper()
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &bpBinary{pid: cmd.Process.Pid}
	read := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-read
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			h.mu.Lock()
			h.logs = append(h.logs, sc.Text())
			h.mu.Unlock()
			var line struct{ Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		h.base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not report its address")
	}
	return h
}

// bpProcStatus returns a size field of /proc/<pid>/status (VmRSS, VmHWM)
// in bytes; 0 where there is none.
func bpProcStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
