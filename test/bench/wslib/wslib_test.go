package wslib

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Each library and deflate mode, with coder/websocket as the client.
var variants = []Config{
	{Lib: "coder"}, {Lib: "coder", Deflate: ContextTakeover}, {Lib: "coder", Deflate: NoContextTakeover},
	{Lib: "gorilla"}, {Lib: "gorilla", Deflate: NoContextTakeover},
	{Lib: "gobwas"}, {Lib: "gobwas", Deflate: NoContextTakeover},
}

func forEach(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, cfg := range variants {
		n := cfg.Lib + "/plain"
		if cfg.Deflate != NoDeflate {
			n = cfg.Lib + "/" + cfg.Deflate
		}
		t.Run(n, func(t *testing.T) { t.Parallel(); f(t, cfg) })
	}
}

func listen(t *testing.T, cfg Config) *Server {
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dial(t *testing.T, s *Server, cfg Config) *websocket.Conn {
	opts := &websocket.DialOptions{CompressionThreshold: 1}
	switch cfg.Deflate {
	case ContextTakeover:
		opts.CompressionMode = websocket.CompressionContextTakeover
	case NoContextTakeover:
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	c, _, err := websocket.Dial(context.Background(), "ws://"+s.Addr()+"/", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func read(t *testing.T, c *websocket.Conn) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("read: %v %v", typ, err)
	}
	return string(p)
}

func waitConns(t *testing.T, s *Server, n int, within time.Duration) {
	for end := time.Now().Add(within); len(s.Conns()) != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d connections, want %d", len(s.Conns()), n)
		}
	}
}

func TestEchoPushAndClose(t *testing.T) {
	forEach(t, func(t *testing.T, cfg Config) {
		cfg.OnText = func(c *Conn, msg []byte) { c.Push(false, msg) }
		s := listen(t, cfg)
		c := dial(t, s, cfg)
		big := `{"channel":"/x","data":"` + strings.Repeat("abc", 400) + `"}`
		if err := c.Write(context.Background(), websocket.MessageText, []byte(big)); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); got != "["+big+"]" {
			t.Fatalf("echo: %.40q", got)
		}
		w, _ := c.Writer(context.Background(), websocket.MessageText) // three frames
		for _, part := range []string{`{"frag`, `mented"`, `:true}`} {
			w.Write([]byte(part))
		}
		w.Close()
		if got := read(t, c); got != `[{"fragmented":true}]` {
			t.Fatalf("fragmented echo: %q", got)
		}
		conn := s.Conns()[0]
		conn.Push(false, []byte(`{"a":1}`), []byte(`{"b":2}`))
		for _, want := range []string{`[{"a":1}]`, `[{"b":2}]`} {
			if got := read(t, c); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		conn.Push(true, []byte(`{"a":1}`), []byte(`{"b":2}`), []byte(`{"c":3}`))
		if got, want := read(t, c), `[{"a":1},{"b":2},{"c":3}]`; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if p := s.Prepare([]byte(`{"p":1}`)); p != nil {
			conn.PushPrepared(p)
			conn.PushPrepared(p)
			for range 2 {
				if got := read(t, c); got != `[{"p":1}]` {
					t.Fatalf("prepared: %q", got)
				}
			}
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
		waitConns(t, s, 0, 2*time.Second)
	})
}

func TestDeflateNegotiated(t *testing.T) {
	forEach(t, func(t *testing.T, cfg Config) {
		s := listen(t, cfg)
		conn, _, deflate, err := dialRaw(s.Addr(), true)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if deflate != (cfg.Deflate != NoDeflate) {
			t.Fatalf("permessage-deflate accepted: %v", deflate)
		}
	})
}

func TestTooBig(t *testing.T) {
	forEach(t, func(t *testing.T, cfg Config) {
		cfg.MaxMessage = 1024
		s := listen(t, cfg)
		c := dial(t, s, cfg)
		c.Write(context.Background(), websocket.MessageText, []byte(strings.Repeat("x", 2000)))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("got %v, want close 1009", err)
		}
	})
}

func TestPing(t *testing.T) {
	forEach(t, func(t *testing.T, cfg Config) {
		cfg.PingInterval, cfg.PongTimeout = 100*time.Millisecond, 300*time.Millisecond
		s := listen(t, cfg)
		// A client that reads (and so answers pings) stays...
		c := dial(t, s, cfg)
		c.CloseRead(context.Background())
		// ...one that never reads is dropped after a ping goes unanswered.
		raw, _, _, err := dialRaw(s.Addr(), false)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		waitConns(t, s, 2, time.Second)
		time.Sleep(time.Second)
		waitConns(t, s, 1, time.Second)
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("reading client dropped: %v", err)
		}
	})
}
