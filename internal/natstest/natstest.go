// Package natstest runs NATS servers inside a test process, with their
// logging off and JetStream on (its store in a folder of the test's, kept
// across Restart), for the tests of package broker and the cluster tests.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server run by a test.
type Server struct {
	*server.Server
	// Port is the client port, fixed for the server's life and kept by
	// Restart.
	Port int
	// StoreDir is JetStream's store, removed when the test ends.
	StoreDir  string
	t         testing.TB
	configure func(*server.Options)
}

// Run starts a NATS server on 127.0.0.1 at port (0 picks a free one) and
// shuts it down when the test ends.
func Run(t testing.TB, port int) *Server {
	t.Helper()
	return RunWith(t, port, nil)
}

// RunWith is Run with configure, when not nil, changing the server's
// options (MaxControlLine, MaxPayload, ...) before it starts, and again
// at each Restart.
func RunWith(t testing.TB, port int, configure func(*server.Options)) *Server {
	t.Helper()
	if port == 0 {
		port = FreePort(t)
	}
	// The folder is made before Stop is registered, so it is removed
	// after the server has stopped.
	s := &Server{Port: port, StoreDir: t.TempDir(), t: t, configure: configure}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	opts := &server.Options{
		Host:                  "127.0.0.1",
		Port:                  s.Port,
		NoLog:                 true,
		NoSigs:                true,
		MaxControlLine:        4096,
		DisableShortFirstPing: true,
		HTTPPort:              0,
		JetStream:             true,
		StoreDir:              s.StoreDir,
	}
	if s.configure != nil {
		s.configure(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("new NATS server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("NATS server on port %d did not start", s.Port)
	}
	s.Server = srv
}

// URL returns the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// Stop shuts the server down and waits until it has; stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
	s.Server = nil
}

// Restart starts a fresh server on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}
