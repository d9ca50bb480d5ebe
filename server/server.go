// Package server assembles a complete bayeuxhub: an actor system, the hub,
// the Bayeux transports at /cometd, the static document root at /, the
// live statistics channel, the health endpoints /healthz and /readyz and,
// optionally, the backend API at /api and Prometheus metrics at /metrics. The
// bayeuxhub command is a thin wrapper around it; programs that want only
// some of the parts use packages actors and transport directly.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/api"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/htdocs"
	"github.com/bayeuxhub/bayeuxhub/metrics"
	"github.com/bayeuxhub/bayeuxhub/proxy"
	"github.com/bayeuxhub/bayeuxhub/static"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

// DefaultStatsChannel is where the hub publishes its live figures.
const DefaultStatsChannel = "/bayeuxhub/stats"

// Config configures a Server. The zero value serves the embedded demo and
// Bayeux at /cometd on :8080 with the hub's defaults.
type Config struct {
	// Addr is the listen address (default ":8080"; "127.0.0.1:0" picks a
	// free port).
	Addr string
	// Hub configures the Bayeux hub; its Logger defaults to Logger.
	Hub actors.Options
	// System is an existing actor system to run the hub in; nil creates
	// one whose logs go to Logger.
	System *actor.ActorSystem
	// MaxBody limits a Bayeux request body (default 1 MiB).
	MaxBody int64
	// ParkAfter is how long a held long-poll keeps its goroutines before
	// it is parked (see transport.Options.ParkAfter): 0 means
	// transport.DefaultParkAfter, negative never parks.
	ParkAfter time.Duration
	// DocumentRoot is a folder served at /; empty serves the embedded
	// htdocs.
	DocumentRoot string
	// DirectoryIndex lists index file names (default index.html).
	DirectoryIndex []string
	// TypeExpires sets cache lifetimes per media type.
	TypeExpires map[string]time.Duration
	// PostHandle may change the headers of static responses.
	PostHandle func(*http.Request, http.Header)
	// Metrics serves Prometheus metrics at /metrics.
	Metrics bool
	// StatsChannel is where live figures are published every
	// StatsInterval (default DefaultStatsChannel and 1 s); "-" disables.
	StatsChannel  string
	StatsInterval time.Duration
	// Logger receives all logs, the actor runtime's included; nil means
	// none.
	Logger *zerolog.Logger
	// ReadHeaderTimeout and IdleTimeout bound slow or idle HTTP peers
	// (defaults 10 s and 2 min).
	ReadHeaderTimeout, IdleTimeout time.Duration
	// ShutdownGrace is how long Shutdown keeps serving after it has answered
	// the held long polls, so clients can fetch what is still queued for
	// them (default 1 s).
	ShutdownGrace time.Duration
	// AllowedOrigins lists the origins allowed to make cross-origin Bayeux
	// requests (CORS) and to open WebSockets; "*" allows any. None by
	// default.
	AllowedOrigins []string
	// Transports lists the enabled connection types, in order of
	// preference: websocket, long-polling, callback-polling (default all
	// three), mounted at /cometd by transport.Attach. They are offered in
	// handshake replies (unless Hub.ConnectionTypes is set: then that list
	// is offered, as when a proxy is known to refuse upgrades or to test a
	// client's fallback); a request over a disabled one gets a Bayeux 400
	// error.
	Transports []string
	// WSCompression offers permessage-deflate on WebSocket connections
	// (transport.WebSocketOptions.Compression); off by default.
	WSCompression bool
	// NATS lists NATS server URLs; when set (and Hub.Broker is not), the
	// hub joins the other hubs on them through a broker.NATS.
	NATS []string
	// HistoryStore says where the history of the channels whose rule
	// keeps one lives (unless Hub.History is set): HistoryJetStream, in
	// NATS JetStream, shared by the hubs so that any of them replays what
	// a client missed on another (a broker.JetStreamHistory on the broker
	// of NATS, or on Hub.Broker when it is a *broker.NATS), or
	// HistoryMemory, in each hub's memory. Empty means HistoryJetStream
	// with NATS and HistoryMemory otherwise.
	HistoryStore string
	// JetStream configures the JetStream history (replicas, storage,
	// bounds); its Rules are Hub.Rules and its Logger, when nil, Logger.
	JetStream broker.JetStreamOptions
	// NodeName names this node (Hub.NodeName): the prefix of its client
	// ids and its NATS control subject. Empty keeps Hub.NodeName.
	NodeName string
	// APIKey, when set, serves the backend HTTP API (package api) at /api;
	// requests must carry "Authorization: apikey <APIKey>". Empty: no API.
	APIKey string
	// Proxy, when set, asks the application's backend about handshakes,
	// subscribes and publishes (the hooks it has URLs for; see package
	// proxy), unless Hub sets those hooks itself; its counters go to
	// /metrics.
	Proxy *proxy.Proxy
}

// The values of Config.HistoryStore.
const (
	HistoryMemory    = "memory"
	HistoryJetStream = "jetstream"
)

// Server is a running bayeuxhub.
type Server struct {
	cfg       Config
	log       zerolog.Logger
	system    *actor.ActorSystem
	ownSystem bool
	hub       *actors.Hub
	router    *mux.Router
	http      *http.Server
	listener  net.Listener
	served    chan error
	stopStats chan struct{}
	statsDone chan struct{}
	bayeux    *transport.Endpoint // the transports at /cometd
	serving   atomic.Bool         // the HTTP server is accepting connections

	shutdownOnce sync.Once
	shutdownErr  error
}

// NewActorSystem returns an actor system whose own logs (protoactor-go
// logs through log/slog) go to logger. The runtime's routine Info lines
// (dead letters of stopped actors, supervision notes that the hub logs
// itself) are kept only when logger is at debug level.
func NewActorSystem(logger zerolog.Logger) *actor.ActorSystem {
	al := logger.With().Str("component", "protoactor").Logger()
	if logger.GetLevel() > zerolog.DebugLevel {
		al = al.Level(max(logger.GetLevel(), zerolog.WarnLevel))
	}
	return actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(zerolog.NewSlogHandler(al))
		}),
	))
}

// New builds a server without listening: use Handler to mount it, or
// Start to serve.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = transport.DefaultTypes()
	}
	if err := transport.CheckTypes(cfg.Transports); err != nil {
		return nil, fmt.Errorf("transports: %w", err)
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = time.Second
	}
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = *cfg.Logger
	}
	if cfg.Hub.Logger == nil {
		cfg.Hub.Logger = &log
	}
	if cfg.NodeName != "" {
		cfg.Hub.NodeName = cfg.NodeName
	}
	if len(cfg.NATS) > 0 && cfg.Hub.Broker == nil {
		b, err := broker.NewNATS(broker.NATSOptions{URLs: cfg.NATS, Logger: &log})
		if err != nil {
			return nil, fmt.Errorf("NATS broker: %w", err)
		}
		cfg.Hub.Broker = b
	}
	if err := setHistory(&cfg, &log); err != nil {
		return nil, err
	}
	if p := cfg.Proxy; p != nil {
		setHook(&cfg.Hub.HandshakeHook, p.Handshake())
		setHook(&cfg.Hub.SubscribeHook, p.Subscribe())
		setHook(&cfg.Hub.PublishHook, p.Publish())
	}
	s := &Server{cfg: cfg, log: log, system: cfg.System}
	if s.system == nil {
		s.system, s.ownSystem = NewActorSystem(log), true
	}
	hub, err := actors.Start(s.system, cfg.Hub)
	if err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	s.hub = hub

	files, err := static.New(static.Options{
		Root: htdocs.FS, Dir: cfg.DocumentRoot, DirectoryIndex: cfg.DirectoryIndex,
		TypeExpires: cfg.TypeExpires, PostHandle: cfg.PostHandle, Logger: log,
	})
	if err != nil {
		_ = hub.Shutdown(context.Background())
		return nil, fmt.Errorf("document root: %w", err)
	}
	r := mux.NewRouter()
	s.bayeux, err = transport.Attach(r, "/cometd", hub, transport.Config{
		Types:          cfg.Transports,
		AllowedOrigins: cfg.AllowedOrigins,
		LongPolling:    transport.Options{MaxBody: cfg.MaxBody, ParkAfter: cfg.ParkAfter, Logger: &log},
		WebSocket:      transport.WebSocketOptions{MaxBody: cfg.MaxBody, Compression: cfg.WSCompression, Logger: &log},
	})
	if err == nil && len(cfg.Hub.ConnectionTypes) > 0 {
		err = hub.SetConnectionTypes(cfg.Hub.ConnectionTypes) // offered regardless of what is served
	}
	if err != nil {
		_ = hub.Shutdown(context.Background())
		return nil, fmt.Errorf("transports: %w", err)
	}
	r.HandleFunc("/healthz", s.healthz)
	r.HandleFunc("/readyz", s.readyz)
	if cfg.APIKey != "" {
		backend, err := api.New(hub, "/api", api.Options{Key: cfg.APIKey, MaxBody: cfg.MaxBody, Logger: &log})
		if err != nil {
			_ = hub.Shutdown(context.Background())
			return nil, fmt.Errorf("backend API: %w", err)
		}
		transport.Mount(r, "/api", backend)
	}
	if cfg.Metrics {
		r.Handle("/metrics", metrics.NewHandler(s.metricsSnapshot))
	}
	r.PathPrefix("/").Handler(files)
	s.router = r

	if err := s.startStats(); err != nil {
		_ = hub.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

// setHistory puts the history cfg.HistoryStore asks for in cfg.Hub.
func setHistory(cfg *Config, log *zerolog.Logger) error {
	store := cfg.HistoryStore
	switch store {
	case "":
		if len(cfg.NATS) == 0 {
			return nil
		}
		store = HistoryJetStream
	case HistoryMemory, HistoryJetStream:
	default:
		return fmt.Errorf("history store %q: want %q or %q", store, HistoryMemory, HistoryJetStream)
	}
	if store == HistoryMemory || cfg.Hub.History != nil {
		return nil
	}
	b, ok := cfg.Hub.Broker.(*broker.NATS)
	if !ok {
		return fmt.Errorf("history store %q needs NATS (Config.NATS, or a *broker.NATS as Hub.Broker)", store)
	}
	opts := cfg.JetStream
	opts.Rules = cfg.Hub.Rules
	if opts.Logger == nil {
		opts.Logger = log
	}
	h, err := broker.NewJetStreamHistory(b, opts)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	cfg.Hub.History = h
	return nil
}

// Start builds a server and serves it on cfg.Addr in the background.
func Start(cfg Config) (*Server, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		_ = s.Shutdown(context.Background())
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.Serve(ln)
	return s, nil
}

// Serve serves on ln in the background; Shutdown stops it.
func (s *Server) Serve(ln net.Listener) {
	s.listener = ln
	s.http = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       s.cfg.IdleTimeout,
	}
	s.served = make(chan error, 1)
	s.serving.Store(true)
	go func() {
		s.served <- transport.Serve(s.http, ln)
		s.serving.Store(false)
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("serving Bayeux at /cometd")
}

// Handler returns the server's HTTP handler: /cometd and everything else.
func (s *Server) Handler() http.Handler { return s.router }

// Router returns the server's router, to add routes before serving.
func (s *Server) Router() *mux.Router { return s.router }

// Hub returns the server's hub.
func (s *Server) Hub() *actors.Hub { return s.hub }

// Addr returns the address the server listens on, once serving.
func (s *Server) Addr() net.Addr {
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// URL returns "http://host:port" for the listening address.
func (s *Server) URL() string {
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// Shutdown stops the server without losing an accepted publish: the hub
// refuses new publishes, carries the accepted ones into their subscribers'
// queues and answers every held /meta/connect at once; clients then have
// ShutdownGrace to fetch what is still queued; then the HTTP server stops
// (waiting for requests in progress) and the hub's actors stop (and the
// actor system, when the server created it).
// Calling it again returns the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	var errs []error
	s.stopStatsLoop()
	if err := s.hub.Drain(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.http != nil {
		grace := time.NewTimer(s.cfg.ShutdownGrace)
		tick := time.NewTicker(10 * time.Millisecond)
	wait:
		for s.hub.Stats().Queued > 0 {
			select {
			case <-tick.C:
			case <-grace.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		grace.Stop()
		tick.Stop()
		// http.Server.Shutdown neither closes nor waits for WebSockets.
		if err := s.bayeux.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	}
	if err := s.hub.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.ownSystem {
		s.system.Shutdown()
	}
	return errors.Join(errs...)
}
