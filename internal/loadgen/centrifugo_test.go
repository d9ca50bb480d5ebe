package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

func TestParseCentrifugo(t *testing.T) {
	t.Parallel()
	frame := `{"id":1,"connect":{"client":"4a1c","version":"6.9.1","subs":{},"ping":25,"pong":true}}
{"id":2,"subscribe":{}}
{"push":{"channel":"bench_3","pub":{"data":{"ts":17,"pub":2,"seq":9,"w":1,"pad":"xx"},"offset":4,"info":{"client":"x"}}}}
{}
{"id":7,"error":{"code":103,"message":"permission denied"}}
{"push":{"channel":"bench_3","join":{"info":{"client":"y"}}}}
{"push":{"id":5,"channel":"bench_4","pub":{"data":"not an object"}}}
`
	msgs, err := parseCentrifugo([]byte(frame), nil)
	if err != nil || len(msgs) != 7 {
		t.Fatalf("%v, %d messages", err, len(msgs))
	}
	c, s, d, ping, e, join, str := &msgs[0], &msgs[1], &msgs[2], &msgs[3], &msgs[4], &msgs[5], &msgs[6]
	if string(c.ID) != "1" || !c.Successful || c.ClientID != "4a1c" || !c.pong || c.IsDelivery() || c.Timeout != -1 {
		t.Errorf("connect reply %+v", c)
	}
	if string(s.ID) != "2" || !s.Successful || s.IsDelivery() {
		t.Errorf("subscribe reply %+v", s)
	}
	if !d.IsDelivery() || string(d.Channel) != "bench_3" || !d.Bench || d.TS != 17 || d.Pub != 2 || d.Seq != 9 || d.Window != 1 || len(d.ID) != 0 {
		t.Errorf("publication %+v", d)
	}
	if channelIndex(d.Channel) != 3 {
		t.Errorf("channel index of %s: %d", d.Channel, channelIndex(d.Channel))
	}
	if !ping.ping || ping.IsDelivery() || len(ping.ID) != 0 {
		t.Errorf("ping %+v", ping)
	}
	if string(e.ID) != "7" || e.Successful || e.Error != "103: permission denied" {
		t.Errorf("error reply %+v", e)
	}
	if join.IsDelivery() || join.ping {
		t.Errorf("join push %+v", join)
	}
	if !str.IsDelivery() || str.Bench || string(str.Channel) != "bench_4" {
		t.Errorf("non-benchmark publication %+v", str)
	}
	for _, bad := range []string{`{"id":1`, `{"id":1}{`, `[1]`, `{"push":{"pub":{"data":{"ts":}}}}`} {
		if _, err := parseCentrifugo([]byte(bad), nil); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCentrifugoFrames(t *testing.T) {
	t.Parallel()
	c := NewCentrifugoClient("ws://x", nil, nil)
	ps := []Payload{{Channel: "bench_0", TS: 1, Pub: 2, Seq: 3}, {Channel: "bench_1", TS: 1, Pub: 2, Seq: 4}}
	b := c.appendPublish(nil, ps, []string{"8", "9"}, 0)
	lines := strings.Split(string(b), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d commands in %s", len(lines), b)
	}
	for i, l := range lines {
		var cmd struct {
			ID      uint32 `json:"id"`
			Publish struct {
				Channel string         `json:"channel"`
				Data    map[string]any `json:"data"`
			} `json:"publish"`
		}
		if err := json.Unmarshal([]byte(l), &cmd); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if cmd.ID != uint32(8+i) || cmd.Publish.Channel != ps[i].Channel || cmd.Publish.Data["seq"] != float64(ps[i].Seq) {
			t.Errorf("command %d: %+v", i, cmd)
		}
	}
	if c.ClientID() != "" || c.ConnectInterval() != 0 {
		t.Error("fresh client has an id or an interval")
	}
	c.SetClientID("other")
	if c.ClientID() != "" {
		t.Error("SetClientID changed a Centrifugo client's id")
	}
}

// fakeCentrifugo is a tiny server of Centrifugo's JSON protocol:
// connect, subscribe, publish (to every subscriber of the channel,
// the publisher included), and a ping after each connect.
type fakeCentrifugo struct {
	mu    sync.Mutex
	n     int
	subs  map[string][]*fakeCFConn
	pongs atomic.Int64
	deny  string // channel whose publishes are refused
}

type fakeCFConn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (c *fakeCFConn) write(ctx context.Context, b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.Write(ctx, websocket.MessageText, b)
}

func (f *fakeCentrifugo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(-1)
	c := &fakeCFConn{ws: ws}
	ctx := r.Context()
	defer func() {
		f.mu.Lock()
		for ch, l := range f.subs {
			for i, x := range l {
				if x == c {
					f.subs[ch] = append(l[:i:i], l[i+1:]...)
					break
				}
			}
		}
		f.mu.Unlock()
		_ = ws.CloseNow()
	}()
	connected := false
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var out [][]byte
		ping := false
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			var cmd struct {
				ID        uint32           `json:"id"`
				Connect   *json.RawMessage `json:"connect"`
				Subscribe *struct {
					Channel string `json:"channel"`
				} `json:"subscribe"`
				Publish *struct {
					Channel string          `json:"channel"`
					Data    json.RawMessage `json:"data"`
				} `json:"publish"`
			}
			if err := json.Unmarshal(line, &cmd); err != nil {
				return
			}
			id := strconv.FormatUint(uint64(cmd.ID), 10)
			switch {
			case cmd.ID == 0:
				f.pongs.Add(1)
			case cmd.Connect != nil:
				if connected {
					return // a second connect: Centrifugo disconnects
				}
				connected, ping = true, true
				f.mu.Lock()
				f.n++
				n := f.n
				f.mu.Unlock()
				out = append(out, fmt.Appendf(nil, `{"id":%s,"connect":{"client":"c%d","version":"fake","ping":25,"pong":true}}`, id, n))
			case !connected:
				return
			case cmd.Subscribe != nil:
				f.mu.Lock()
				f.subs[cmd.Subscribe.Channel] = append(f.subs[cmd.Subscribe.Channel], c)
				f.mu.Unlock()
				out = append(out, []byte(`{"id":`+id+`,"subscribe":{}}`))
			case cmd.Publish != nil:
				if cmd.Publish.Channel == f.deny {
					out = append(out, []byte(`{"id":`+id+`,"error":{"code":103,"message":"permission denied"}}`))
					continue
				}
				push := fmt.Appendf(nil, `{"push":{"channel":%q,"pub":{"data":%s,"offset":1}}}`, cmd.Publish.Channel, cmd.Publish.Data)
				f.mu.Lock()
				to := append([]*fakeCFConn(nil), f.subs[cmd.Publish.Channel]...)
				f.mu.Unlock()
				for _, s := range to {
					s.write(ctx, push)
				}
				out = append(out, []byte(`{"id":`+id+`,"publish":{}}`))
			}
		}
		if len(out) > 0 {
			c.write(ctx, bytes.Join(out, []byte("\n")))
		}
		if ping {
			c.write(ctx, []byte(`{}`))
		}
	}
}

func startFakeCentrifugo(t *testing.T) (*fakeCentrifugo, string) {
	t.Helper()
	f := &fakeCentrifugo{subs: map[string][]*fakeCFConn{}, deny: "bench_denied"}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, "ws" + strings.TrimPrefix(ts.URL, "http") + "/connection/websocket"
}

func TestCentrifugoClientFake(t *testing.T) {
	t.Parallel()
	f, url := startFakeCentrifugo(t)
	var got atomic.Int64
	c := NewCentrifugoClient(url, nil, func(m *Msg, at time.Time) {
		if m.Bench && string(m.Channel) == "bench_0" {
			got.Add(1)
		}
	})
	defer c.Close()
	ctx := t.Context()
	if _, err := c.Publish(ctx, []Payload{{Channel: "bench_0"}}, 0); !errors.Is(err, ErrRehandshake) {
		t.Fatalf("publish before connect: %v", err)
	}
	if err := c.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if c.ClientID() == "" {
		t.Fatal("no client id")
	}
	if err := c.Subscribe(ctx, []string{"bench_0", "bench_1"}); err != nil {
		t.Fatal(err)
	}
	acked, err := c.Publish(ctx, []Payload{{Channel: "bench_0", Seq: 0}, {Channel: "bench_0", Seq: 1}}, 50)
	if err != nil || !acked[0] || !acked[1] {
		t.Fatalf("publish: %v %v", acked, err)
	}
	acked, err = c.Publish(ctx, []Payload{{Channel: "bench_denied"}}, 0)
	if err == nil || acked[0] || !strings.Contains(err.Error(), "103") {
		t.Fatalf("refused publish: %v %v", acked, err)
	}
	done := make(chan error, 1)
	c.PublishAsync(ctx, []Payload{{Channel: "bench_0", Seq: 2}}, 0, func(acked []bool, err error) {
		if err == nil && !acked[0] {
			err = errors.New("not acked")
		}
		done <- err
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The server pinged after connect; the client answered.
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got.Load() != 3 || f.pongs.Load() != 1 {
			return fmt.Errorf("%d publications, %d pongs", got.Load(), f.pongs.Load())
		}
		return nil
	})
	// Connect waits for the socket; Disconnect ends it.
	res := make(chan error, 1)
	go func() { _, err := c.Connect(ctx); res <- err }()
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, ErrRehandshake) {
		t.Fatalf("connect after the socket ended: %v", err)
	}
	if err := c.Handshake(ctx); err != nil {
		t.Fatalf("second connect on a new socket: %v", err)
	}
}

// TestCentrifugoRunFake runs the scenarios through the driver against
// the fake server: the accounting must come out exact.
func TestCentrifugoRunFake(t *testing.T) {
	t.Parallel()
	_, url := startFakeCentrifugo(t)
	checkCentrifugoRuns(t, url)
}

func checkCentrifugoRuns(t *testing.T, url string) {
	t.Helper()
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"fanout", Config{Subscribers: 20, Publishers: 4, Rate: 400, Channels: 1, SubsPerClient: 1, Size: 100}},
		{"chat", Config{Subscribers: 20, Publishers: 5, Rate: 250, Channels: 10, SubsPerClient: 3, Size: 50, PublishersSubscribe: true}},
		{"closed", Config{Subscribers: 5, Publishers: 2, Rate: 0, Channels: 2, SubsPerClient: 2, Size: 100, Batch: 3}},
	} {
		cfg := c.cfg
		cfg.URL, cfg.Protocol, cfg.Kind = url, ProtocolCentrifugo, KindPubSub
		cfg.Duration, cfg.Drain, cfg.MaxMessages = 60*time.Second, 5*time.Second, 150
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Config.Transport != TransportWebSocket {
			t.Errorf("%s: transport %q", c.name, res.Config.Transport)
		}
		if res.PublishedTotal != 150 || res.Expected == 0 || res.DeliveredTotal != res.Expected {
			t.Errorf("%s: published %d, expected %d, delivered %d", c.name, res.PublishedTotal, res.Expected, res.DeliveredTotal)
		}
		if res.Lost != 0 || res.Duplicated != 0 || res.OutOfOrder != 0 || res.Stray != 0 || res.Errors != 0 || res.SetupFailed != 0 {
			t.Errorf("%s: lost %d dup %d ooo %d stray %d errors %d setup failed %d %v", c.name,
				res.Lost, res.Duplicated, res.OutOfOrder, res.Stray, res.Errors, res.SetupFailed, res.FirstErrors)
		}
		if res.Latency.Count == 0 {
			t.Errorf("%s: no latency", c.name)
		}
	}
	res, err := Run(t.Context(), Config{URL: url, Protocol: ProtocolCentrifugo, Kind: KindIdle, Subscribers: 30,
		Channels: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Held != 30 || res.Errors != 0 {
		t.Errorf("idle: held %d, errors %d %v", res.Held, res.Errors, res.FirstErrors)
	}
}

func TestCentrifugoValidate(t *testing.T) {
	t.Parallel()
	c := Config{URL: "ws://x", Protocol: ProtocolCentrifugo, Publishers: 1, Duration: time.Second, Rate: 1}
	if err := c.Validate(); err != nil || c.Transport != TransportWebSocket || c.MaxInflight != DefaultMaxInflightWS {
		t.Errorf("%v: transport %q, in flight %d", err, c.Transport, c.MaxInflight)
	}
	if n := c.ChannelName(7); n != "bench_7" {
		t.Errorf("channel %q", n)
	}
	for _, bad := range []Config{
		{URL: "ws://x", Protocol: ProtocolCentrifugo, Transport: TransportLongPolling, Publishers: 1, Duration: time.Second},
		{URL: "ws://x", Protocol: ProtocolCentrifugo, Kind: KindReplay, Subscribers: 1, Publishers: 1, Duration: time.Second},
		{URL: "ws://x", Protocol: "mqtt", Publishers: 1, Duration: time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// centrifugoBinary finds a centrifugo executable on PATH or in
// $(go env GOPATH)/bin, or returns "".
func centrifugoBinary() string {
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "centrifugo")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// centrifugoTestConfig is the configuration the driver needs (see
// centrifugo.go), without insecure mode.
const centrifugoTestConfig = `{
  "http_server": {"address": "127.0.0.1", "port": %d},
  "log": {"level": "error"},
  "client": {"allow_anonymous_connect_without_token": true},
  "channel": {"without_namespace": {
    "allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true,
    "allow_publish_for_client": true, "allow_publish_for_anonymous": true}}
}`

// TestCentrifugoReal runs the driver against a real Centrifugo
// (go install github.com/centrifugal/centrifugo/v6@v6.9.1); it skips when
// none is installed.
func TestCentrifugoReal(t *testing.T) {
	t.Parallel()
	bin := centrifugoBinary()
	if bin == "" {
		t.Skip("no centrifugo on PATH or in $(go env GOPATH)/bin")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.json")
	if err := os.WriteFile(conf, fmt.Appendf(nil, centrifugoTestConfig, port), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("centrifugo output:\n%s", out.String())
		}
	})
	url := fmt.Sprintf("ws://127.0.0.1:%d/connection/websocket", port)
	testutil.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		c := NewCentrifugoClient(url, nil, nil)
		defer c.Close()
		return c.Handshake(t.Context())
	})
	checkCentrifugoRuns(t, url)
}
