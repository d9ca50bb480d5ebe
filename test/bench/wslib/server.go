// Package wslib compares three Go WebSocket libraries (coder/websocket,
// gorilla/websocket and gobwas/ws) on bayeuxhub's workload: many idle
// connections, and small JSON frames pushed to many of them. Each library
// gets the same small server (this file); only the adapter that upgrades a
// request and reads, writes and pings one connection differs (coder.go,
// gorilla.go, gobwas.go). See RESULTS.md.
package wslib

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Deflate modes of Config.Deflate.
const (
	NoDeflate         = ""
	ContextTakeover   = "context-takeover"    // coder only
	NoContextTakeover = "no-context-takeover" // all three
)

// Config chooses a library and its settings.
type Config struct {
	Lib          string // "coder", "gorilla" or "gobwas"
	Deflate      string // NoDeflate, ContextTakeover or NoContextTakeover
	PingInterval time.Duration
	PongTimeout  time.Duration
	WriteTimeout time.Duration
	MaxMessage   int64
	// ReadOnHandler reads on net/http's handler goroutine (as bayeuxhub
	// does today) instead of a new one, keeping net/http's request state.
	ReadOnHandler bool
	// OnText, if set, is called with each text message a client sends;
	// otherwise the server answers each with Reply (a subscribe reply).
	OnText func(c *Conn, msg []byte)
}

// Reply is what the server answers to a client's message.
var Reply = []byte(`{"id":"1","channel":"/meta/subscribe","subscription":"/bench/fanout","successful":true}`)

// wsConn is one library's connection. read runs on the reader goroutine;
// write on the connection's writer, one at a time; ping on a timer's
// goroutine, concurrently with both; close from anywhere.
type wsConn interface {
	// read reads messages until the connection fails or closes, answering
	// pings and the close handshake, and passes each text message on.
	read(onText func([]byte)) error
	write(frame []byte) error // one text frame, within WriteTimeout
	ping() error              // a ping; a missing pong closes the connection
	close()
}

// preparer is a wsConn that can write a frame prepared once for all
// connections (gorilla's PreparedMessage; gobwas: bytes built once).
type preparer interface {
	writePrepared(p any) error
}

// Prepare encodes msgs as one frame once, for PushPrepared to any number
// of connections; nil if the library cannot (coder).
func (s *Server) Prepare(msgs ...[]byte) any {
	items := make([]item, len(msgs))
	for i, m := range msgs {
		items[i].msg = m
	}
	frame := appendFrame(nil, items)
	switch s.cfg.Lib {
	case "gorilla":
		return prepareGorilla(frame)
	case "gobwas":
		return &gobwasPrepared{payload: frame}
	}
	return nil
}

var adapters = map[string]func(http.ResponseWriter, *http.Request, *Config) (wsConn, error){
	"coder":   upgradeCoder,
	"gorilla": upgradeGorilla,
	"gobwas":  upgradeGobwas,
}

// Server serves WebSocket connections with one library.
type Server struct {
	cfg     Config
	upgrade func(http.ResponseWriter, *http.Request, *Config) (wsConn, error)
	ln      net.Listener
	http    *http.Server

	mu    sync.Mutex
	conns map[*Conn]struct{}
	wg    sync.WaitGroup
}

// Listen starts a server on 127.0.0.1 on a free port.
func Listen(cfg Config) (*Server, error) {
	up, ok := adapters[cfg.Lib]
	if !ok {
		return nil, errors.New("wslib: unknown library " + cfg.Lib)
	}
	if cfg.Deflate == ContextTakeover && cfg.Lib != "coder" {
		return nil, errors.New("wslib: only coder does context takeover")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.PingInterval, 25*time.Second)
	def(&cfg.PongTimeout, 10*time.Second)
	def(&cfg.WriteTimeout, 15*time.Second)
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = 64 << 10
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, upgrade: up, ln: ln, conns: map[*Conn]struct{}{}}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ServeHTTP upgrades the request and starts the connection's reader. The
// handler returns at once (unless ReadOnHandler), so that net/http drops
// its request state and buffers: the reader is the only goroutine of an
// idle connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrade(w, r, &s.cfg)
	if err != nil {
		return
	}
	c := &Conn{s: s, ws: ws}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	c.pinger = time.AfterFunc(s.cfg.PingInterval, c.ping)
	if s.cfg.ReadOnHandler {
		c.serve()
		return
	}
	go c.serve()
}

// Conns returns the open connections.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// Close closes the listener and every connection, and waits for their
// readers to end.
func (s *Server) Close() {
	s.http.Close()
	for _, c := range s.Conns() {
		c.ws.close()
	}
	s.wg.Wait()
}

// Conn is one connection: a reader goroutine, a writer goroutine that runs
// only while frames are queued, and a ping timer.
type Conn struct {
	s      *Server
	ws     wsConn
	pinger *time.Timer

	mu       sync.Mutex
	queue    []item // waiting for the writer
	writing  bool   // a writer goroutine is running
	coalesce bool
	closed   bool
}

func (c *Conn) serve() {
	onText := func(msg []byte) { c.Push(false, Reply) }
	if f := c.s.cfg.OnText; f != nil {
		onText = func(msg []byte) { f(c, msg) }
	}
	c.ws.read(onText)
	c.mu.Lock()
	c.closed, c.queue = true, nil
	c.mu.Unlock()
	c.pinger.Stop()
	c.ws.close()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.s.wg.Done()
}

// item is a message (a JSON object) or a frame prepared by Prepare.
type item struct {
	msg  []byte
	prep any
}

// Push queues messages. Each is written as its own frame `[msg]`, or, if
// coalesce, all those queued when the writer looks are written as one
// frame `[m1,m2,...]`.
func (c *Conn) Push(coalesce bool, msgs ...[]byte) {
	c.mu.Lock()
	c.queue = slices.Grow(c.queue, len(msgs))
	for _, m := range msgs {
		c.queue = append(c.queue, item{msg: m})
	}
	c.coalesce = coalesce
	c.start()
}

// PushPrepared queues a frame made by Server.Prepare, written as it is.
func (c *Conn) PushPrepared(p any) {
	c.mu.Lock()
	c.queue = append(c.queue, item{prep: p})
	c.start()
}

// start starts a writer unless one runs, and unlocks c.mu.
func (c *Conn) start() {
	if c.closed {
		c.queue = nil
		c.mu.Unlock()
		return
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

func (c *Conn) writeLoop() {
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	for {
		c.mu.Lock()
		q, coalesce := c.queue, c.coalesce
		c.queue = nil
		if len(q) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		for len(q) > 0 {
			var err error
			if q[0].prep != nil {
				err = c.ws.(preparer).writePrepared(q[0].prep)
				q = q[1:]
			} else {
				n := 1
				for coalesce && n < len(q) && q[n].prep == nil {
					n++
				}
				*bp = appendFrame((*bp)[:0], q[:n])
				q = q[n:]
				err = c.ws.write(*bp)
			}
			if err != nil {
				c.ws.close() // the reader sees it and cleans up
				q = nil
			}
		}
	}
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendFrame appends the Bayeux frame `[m1,m2,...]` to b.
func appendFrame(b []byte, msgs []item) []byte {
	b = append(b, '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m.msg...)
	}
	return append(b, ']')
}

func (c *Conn) ping() {
	if err := c.ws.ping(); err != nil {
		c.ws.close()
		return
	}
	c.pinger.Reset(c.s.cfg.PingInterval)
}
