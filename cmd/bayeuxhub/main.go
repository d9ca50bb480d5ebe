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
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/internal/config"
	"github.com/bayeuxhub/bayeuxhub/server"
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

func newLogger(s *config.Settings, stdout io.Writer) (zerolog.Logger, io.Closer, error) {
	var out io.Writer = stdout
	if f, ok := stdout.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: stdout, TimeFormat: time.RFC3339}
	}
	var closer io.Closer = io.NopCloser(nil)
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return zerolog.Logger{}, nil, fmt.Errorf("open log file: %w", err)
		}
		out, closer = zerolog.MultiLevelWriter(out, f), f
	}
	level := zerolog.InfoLevel
	if s.Debug {
		level = zerolog.DebugLevel
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), closer, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return mintToken(args[1:], stdout, stderr)
	}
	s, err := config.Load(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	if s.PrintConfig {
		s.Resolve()
		return config.Print(stdout, s)
	}
	log, closer, err := newLogger(s, stdout)
	if err != nil {
		return err
	}
	defer closer.Close()
	built, err := s.Build(&log)
	if err != nil {
		return err
	}
	defer built.Close()
	srv, err := server.Start(built.Server)
	if err != nil {
		return err
	}
	log.Info().Str("url", srv.URL()+"/").Bool("api", built.Server.APIKey != "").Bool("tokens", built.JWT != nil).
		Bool("anonymous", !built.Server.Hub.RequireUser).Msg("bayeuxhub ready")
	if s.Pprof != "" {
		startPprof(s.Pprof, log)
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
