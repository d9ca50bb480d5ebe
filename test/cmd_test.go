package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// built is cmd/bayeuxhub, built once per test binary run (tests running
// in parallel share it, read-only); TestMain removes its directory.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildCommand builds cmd/bayeuxhub once per test binary run and returns
// the binary's path.
func buildCommand(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "bayeuxhub-test-")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "bayeuxhub")
		if out, err := exec.Command("go", "build", "-o", built.bin, "../cmd/bayeuxhub").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("build: %v", built.err)
	}
	return built.bin
}

// removeCommand removes what buildCommand built.
func removeCommand() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// commandMetric reads a metric of a hub started with --metrics.
func commandMetric(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(body, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+" ")); ok {
			return strconv.ParseFloat(string(v), 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// TestCommandSignalShutdown runs the real binary, holds a long-poll on it,
// sends SIGTERM and checks that the poll is answered at once and the process
// exits 0.
func TestCommandSignalShutdown(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	logFile := filepath.Join(t.TempDir(), "hub.log")
	// A poll timeout far beyond the test's deadlines: the held connect can
	// only be answered by the shutdown.
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1", "--log-file", logFile, "--metrics", "--poll-timeout", "10m")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The "serving" log line names the address.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" {
				addr <- line.Addr
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("server did not report its address")
	}
	c := &client{t: t, url: base + "/cometd", http: &http.Client{Timeout: 30 * time.Second}}
	c.start()
	held := make(chan []msg, 1)
	go func() { held <- c.connect() }()
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if n, err := commandMetric(base, "bayeuxhub_connects_held"); err != nil || n != 1 {
			return fmt.Errorf("%v connects held (%v)", n, err)
		}
		return nil
	})

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-held:
		if find(r, "/meta/connect") == nil {
			t.Fatalf("held connect at shutdown: %v", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("held connect not answered after SIGTERM")
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("process did not exit after SIGTERM")
	}
	t.Logf("shut down in %v", time.Since(start))
	logged, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(logged), "shutting down") {
		t.Fatalf("--log-file did not get the logs: %v %q", err, logged)
	}
}

func TestCommandHelpAndBadFlags(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-port", "-bind", "-alias", "-anon-publish", "-connect-timeout", "-poll-timeout", "-max-body", "-debug", "-log-file", "-document-root", "-metrics"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("--help does not explain %s", flag)
		}
	}
	out, err = exec.Command(bin, "--poll-timeout", "soon").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "poll-timeout") {
		t.Fatalf("bad flag: %v\n%s", err, out)
	}
}

// TestServerShutdownAnswersHeldConnects checks the embedded server's
// Shutdown: held connects return at once and Shutdown does not wait out the
// poll timeout.
func TestServerShutdownAnswersHeldConnects(t *testing.T) {
	t.Parallel()
	// The poll timeout outlasts Shutdown's context: had Shutdown waited
	// for the held connects to time out, it would return the context's
	// error.
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0", StatsChannel: "-", Hub: actors.Options{PollTimeout: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*client, 5)
	held := make(chan []msg, len(clients))
	for i := range clients {
		clients[i] = newClient(t, srv).start()
		go func() { held <- clients[i].connect() }()
	}
	waitHeld(t, srv, len(clients))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range clients {
		select {
		case r := <-held:
			if find(r, "/meta/connect") == nil {
				t.Fatalf("held connect: %v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a held connect was not answered")
		}
	}
}

// startCommand runs the built binary with args and env (added to the
// test's environment) and returns its base URL once it serves; it is
// killed when the test ends.
func startCommand(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--port", "0", "--bind", "127.0.0.1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not report its address")
		return ""
	}
}

// TestCommandConfigFile: the binary reads a config file; a bad one stops
// it with the key and line; --print-config masks secrets from the
// environment; a token minted by "bayeuxhub token" from the same file is
// accepted, and without it the handshake is refused; a client cannot
// publish on the statistics channel.
func TestCommandConfigFile(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secretFile := write("secret", "0123456789abcdef0123456789abcdef0123\n")
	cfg := write("hub.yaml", "jwt-hmac-secret-file: "+secretFile+"\nchannels:\n  - pattern: /user/{sub}/**\n    subscribe: owner\n    publish: owner\n")

	bad := write("bad.yaml", "port: 1\nmax-queu: 5\n")
	out, err := exec.Command(bin, "--config", bad).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), `line 2: unknown key "max-queu" (did you mean "max-queue"?)`) {
		t.Fatalf("bad config file: %v\n%s", err, out)
	}

	const apiKey = "from-the-environment-0123456789"
	print := exec.Command(bin, "--config", cfg, "--print-config")
	print.Env = append(os.Environ(), "BAYEUXHUB_API_KEY="+apiKey, "BAYEUXHUB_MAX_QUEUE=77")
	out, err = print.CombinedOutput()
	if err != nil || strings.Contains(string(out), apiKey) || !strings.Contains(string(out), "api-key: '********'") ||
		!strings.Contains(string(out), "max-queue: 77") || !strings.Contains(string(out), "allow-anonymous: false") {
		t.Fatalf("--print-config: %v\n%s", err, out)
	}

	token, err := exec.Command(bin, "token", "--config", cfg, "--sub", "alice", "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("bayeuxhub token: %v", err)
	}
	base := startCommand(t, bin, nil, "--config", cfg)
	c := &client{t: t, url: base + "/cometd", http: &http.Client{Timeout: 30 * time.Second}}
	if r := c.handshakeWith(nil, nil); r["error"] != "403::Authentication required" {
		t.Fatalf("handshake without a token: %v", r)
	}
	c.startAs(strings.TrimSpace(string(token)))
	if r := c.subscribe("/user/alice/inbox"); r["successful"] != true {
		t.Fatalf("subscribe to alice's channel: %v", r)
	}
	if r := c.subscribe("/user/bob/inbox"); r["error"] != "403:/user/bob/inbox:Not your channel" {
		t.Fatalf("subscribe to bob's channel: %v", r)
	}
	if r := c.publish("/bayeuxhub/stats", msg{"clients": 999999}); r["error"] != "403:/bayeuxhub/stats:Publishing on this channel is server-only" {
		t.Fatalf("publish on the stats channel: %v", r)
	}
}
