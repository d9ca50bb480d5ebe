// Command bayeuxhub runs a Bayeux 1.0 (CometD) publish/subscribe server:
// Bayeux long-polling at /cometd, the browser chat demo at /.
//
//	go run ./cmd/bayeuxhub --port 8080
//
// Run with --help for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/server"
	"github.com/bayeuxhub/bayeuxhub/static"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bayeuxhub:", err)
		os.Exit(2)
	}
}

// seconds is a duration flag that takes plain seconds ("120", as the Perl
// module's options) or a Go duration ("2m", "500ms").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want seconds or a duration such as 30s: %w", err)
	}
	*s.d = d
	return nil
}

type options struct {
	port, bind, alias, logFile, documentRoot, directoryIndex, typeExpires string
	queuePolicy, allowedOrigins, pprofAddr                                string
	transports                                                            string
	nodeName                                                              string
	nats                                                                  []string
	anonPublish, debug, metrics                                           bool
	connectTimeout, pollTimeout                                           time.Duration
	maxBody                                                               int64
	maxQueue, maxSubscriptions, maxChannels, maxMessageSize               int
	maxSessionsPerIP, maxSessionsPerBrowser                               int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{connectTimeout: actors.DefaultConnectTimeout, pollTimeout: actors.DefaultPollTimeout}
	fs := flag.NewFlagSet("bayeuxhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.port, "port", "8080", "TCP `port` to listen on (Perl: Port)")
	fs.StringVar(&o.bind, "bind", "", "`address` to listen on; empty means every interface")
	fs.StringVar(&o.alias, "alias", actors.DefaultAlias, "`name` of the hub actor that local actors send to (Perl: Alias)")
	fs.BoolVar(&o.anonPublish, "anon-publish", false, "let HTTP clients publish without a handshake (Perl: AnonPublish)")
	fs.Var(seconds{&o.connectTimeout}, "connect-timeout", "`seconds` a client may go without a /meta/connect outstanding before its session is removed (Perl: ConnectTimeout)")
	fs.Var(seconds{&o.pollTimeout}, "poll-timeout", "`seconds` a /meta/connect is held when there is nothing to deliver; keep it below your proxies' idle limits")
	fs.Int64Var(&o.maxBody, "max-body", transport.DefaultMaxBody, "largest Bayeux request body in `bytes`; larger ones get 413")
	fs.BoolVar(&o.debug, "debug", false, "log at debug level (Perl: Debug)")
	fs.StringVar(&o.logFile, "log-file", "", "also append logs to this `file` (Perl: LogFile)")
	fs.StringVar(&o.documentRoot, "document-root", "", "serve this `folder` at / instead of the embedded demo (Perl: DocumentRoot)")
	fs.StringVar(&o.directoryIndex, "directory-index", "index.html", "comma-separated index file `names` for folders (Perl: DirectoryIndex)")
	fs.StringVar(&o.typeExpires, "type-expires", "", "cache lifetimes per media type, e.g. `text/css=3600,image/png=86400` (seconds; Perl: TypeExpires)")
	fs.BoolVar(&o.metrics, "metrics", false, "serve Prometheus metrics at /metrics (off by default: do not expose it publicly)")
	fs.IntVar(&o.maxQueue, "max-queue", actors.DefaultMaxQueue, "most `messages` kept for one client that is not reading (-1: no limit)")
	fs.StringVar(&o.queuePolicy, "queue-policy", string(actors.QueueDisconnect), "at --max-queue: `disconnect` the session (the client must re-handshake) or drop-oldest")
	fs.IntVar(&o.maxSubscriptions, "max-subscriptions", actors.DefaultMaxSubscriptions, "most subscriptions per client (-1: no limit)")
	fs.IntVar(&o.maxChannels, "max-channels", actors.DefaultMaxChannels, "most channels and patterns with subscribers (-1: no limit)")
	fs.IntVar(&o.maxMessageSize, "max-message-size", actors.DefaultMaxMessageSize, "largest published data plus ext, in `bytes` (-1: no limit)")
	fs.IntVar(&o.maxSessionsPerIP, "max-sessions-per-ip", actors.DefaultMaxSessionsPerIP, "most open sessions handshaken from one remote address (-1: no limit)")
	fs.IntVar(&o.maxSessionsPerBrowser, "max-sessions-per-browser", actors.DefaultMaxSessionsPerBrowser, "most long polls held at once for one browser (BAYEUX_BROWSER cookie); its other tabs poll (-1: no limit)")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve Go's net/http/pprof profiles on this separate `address` (e.g. 127.0.0.1:6060); off by default")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated `origins` allowed to make cross-origin Bayeux requests (CORS), or *; none by default")
	fs.StringVar(&o.transports, "transports", strings.Join(transport.DefaultTypes(), ","), "comma-separated enabled `transports`, in order of preference: websocket, long-polling, callback-polling")
	fs.Func("nats", "NATS server `URL` to join other hubs through (repeatable or comma-separated); none: a single hub", func(v string) error {
		o.nats = append(o.nats, splitList(v)...)
		return nil
	})
	fs.StringVar(&o.nodeName, "node-name", "", "this node's `name` with --nats: prefix of its client ids (default: the host name, sanitised)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bayeuxhub [flags]\n\nA Bayeux 1.0 (CometD) publish/subscribe server: Bayeux at /cometd, the chat demo at /.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return o, nil
}

func newLogger(o *options, stdout io.Writer) (zerolog.Logger, io.Closer, error) {
	var out io.Writer = stdout
	if f, ok := stdout.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: stdout, TimeFormat: time.RFC3339}
	}
	var closer io.Closer = io.NopCloser(nil)
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return zerolog.Logger{}, nil, fmt.Errorf("open log file: %w", err)
		}
		out, closer = zerolog.MultiLevelWriter(out, f), f
	}
	level := zerolog.InfoLevel
	if o.debug {
		level = zerolog.DebugLevel
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), closer, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, closer, err := newLogger(o, stdout)
	if err != nil {
		return err
	}
	defer closer.Close()
	expires, err := static.ParseTypeExpires(o.typeExpires)
	if err != nil {
		return fmt.Errorf("--type-expires: %w", err)
	}
	index := splitList(o.directoryIndex)
	if o.nodeName == "" && len(o.nats) > 0 {
		host, _ := os.Hostname()
		o.nodeName = broker.NodeNameFromHostname(host)
	}
	srv, err := server.Start(server.Config{
		Addr: net.JoinHostPort(o.bind, o.port),
		Hub: actors.Options{
			Alias: o.alias, AnonPublish: o.anonPublish,
			ConnectTimeout: o.connectTimeout, PollTimeout: o.pollTimeout,
			MaxQueue: o.maxQueue, QueuePolicy: actors.QueuePolicy(o.queuePolicy),
			MaxSubscriptions: o.maxSubscriptions, MaxChannels: o.maxChannels, MaxMessageSize: o.maxMessageSize,
			MaxSessionsPerIP: o.maxSessionsPerIP, MaxSessionsPerBrowser: o.maxSessionsPerBrowser,
		},
		AllowedOrigins: splitList(o.allowedOrigins),
		Transports:     splitList(o.transports),
		MaxBody:        o.maxBody,
		DocumentRoot:   o.documentRoot,
		DirectoryIndex: index,
		TypeExpires:    expires,
		Metrics:        o.metrics,
		Logger:         &log,
		NATS:           o.nats,
		NodeName:       o.nodeName,
	})
	if err != nil {
		return err
	}
	log.Info().Str("url", srv.URL()+"/").Msg("bayeuxhub ready")
	if o.pprofAddr != "" {
		startPprof(o.pprofAddr, log)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	stop()
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info().Msg("bye")
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// startPprof serves the runtime profiles on their own listener, apart from
// the public port.
func startPprof(addr string, log zerolog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil {
			log.Error().Err(err).Str("addr", addr).Msg("pprof server")
		}
	}()
	log.Info().Str("addr", addr).Msg("serving pprof")
}
