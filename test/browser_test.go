package test

// TestBrowserChat drives the chat page (htdocs/index.html) and the live state
// page (htdocs/status.html) in headless Debian Chromium through the Node script
// test/browser/chat.test.js (playwright-core), and checks interop with the npm
// CometD client. This test owns the bayeuxhub process: the script prints
// "CTRL KILL" / "CTRL START" on stdout and the test answers "KILLED" /
// "STARTED" on the script's stdin once the server is down / up again on the
// same port.
//
// Needs /usr/bin/chromium and test/browser/node_modules (test/browser/setup.sh
// installs both). Without them the test skips, unless CI is set: then it fails.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/auth"
	"github.com/bayeuxhub/bayeuxhub/internal/testutil"
)

const browserChromium = "/usr/bin/chromium"

// browserServer is one bayeuxhub process listening on a fixed port.
type browserServer struct {
	bin  string
	port int
	log  *os.File
	args []string // extra command-line arguments
	cmd  *exec.Cmd
	done chan struct{}
}

func browserRepoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate browser_test.go")
	}
	return filepath.Dir(filepath.Dir(file))
}

func browserFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *browserServer) baseURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.port)
}

func (s *browserServer) start() error {
	cmd := exec.Command(s.bin, append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1"}, s.args...)...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start bayeuxhub: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.done)
	// No keep-alive: an idle connection's goroutines would trip goleak in TestMain.
	transport := &http.Transport{DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Timeout: 2 * time.Second, Transport: transport}
	var exited error
	err := testutil.Poll(30*time.Second, 20*time.Millisecond, func() error {
		select {
		case <-s.done:
			exited = fmt.Errorf("bayeuxhub exited during start-up: %v", cmd.ProcessState)
			return nil
		default:
		}
		resp, err := client.Get(s.baseURL() + "/")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s/: %s", s.baseURL(), resp.Status)
		}
		return nil
	})
	if exited != nil {
		return exited
	}
	return err
}

func (s *browserServer) kill() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.done:
		return fmt.Errorf("bayeuxhub had already exited: %v", s.cmd.ProcessState)
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil {
		return err
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		return errors.New("bayeuxhub did not exit after SIGKILL")
	}
	s.cmd = nil
	return nil
}

func browserPrerequisites(t *testing.T, dir string) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(browserChromium); err != nil {
		missing = append(missing, browserChromium)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, filepath.Join(dir, "node_modules"))
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing %s; run test/browser/setup.sh", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestBrowserChat(t *testing.T) {
	// Not parallel: it restarts bayeuxhub on the same port.
	root := browserRepoRoot(t)
	dir := filepath.Join(root, "test", "browser")
	browserPrerequisites(t, dir)

	tmp := t.TempDir()
	bin := buildCommand(t)

	logFile, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	srv := &browserServer{bin: bin, port: browserFreePort(t), log: logFile}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.kill()
		if t.Failed() {
			if data, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("server log (last 4000 bytes):\n%s", browserTail(data, 4000))
			}
		}
	}()

	// A second hub that requires tokens, for the page's token step.
	secureCfg := filepath.Join(tmp, "secure.yaml")
	const secureSecret = "browser-test-secret-0123456789-abcdef"
	if err := os.WriteFile(secureCfg, []byte("jwt-hmac-secret: "+secureSecret+"\nchannels:\n  - pattern: /chat/**\n    subscribe: authenticated\n    publish: authenticated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secure := &browserServer{bin: bin, port: browserFreePort(t), log: logFile, args: []string{"--config", secureCfg}}
	if err := secure.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = secure.kill() }()
	token, err := auth.MintHS256([]byte(secureSecret), auth.Claims{Subject: "alice", Info: map[string]string{"name": "Alice"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "chat.test.js")
	node.Dir = dir
	node.Env = append(os.Environ(),
		"BAYEUXHUB_URL="+srv.baseURL(),
		"BAYEUXHUB_SECURE_URL="+secure.baseURL(),
		"SECURE_TOKEN="+token,
		"BROWSER_TEST_CONTROL=stdio",
		"ARTIFACTS_DIR="+filepath.Join(dir, "artifacts"),
		"CHROMIUM="+browserChromium,
	)
	node.WaitDelay = 10 * time.Second
	stdin, err := node.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	var stderrMu sync.Mutex
	node.Stderr = browserLockedWriter{&stderr, &stderrMu}
	if err := node.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}

	var verdict string
	var controlErr error
	transports := map[string]int{} // "A websocket": times the script saw it
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case line == "CTRL KILL":
			t.Log("killing bayeuxhub")
			if err := srv.kill(); err != nil {
				controlErr = err
				fmt.Fprintln(stdin, "ERROR "+err.Error())
				continue
			}
			fmt.Fprintln(stdin, "KILLED")
		case line == "CTRL START":
			t.Logf("restarting bayeuxhub on port %d", srv.port)
			if err := srv.start(); err != nil {
				controlErr = err
				fmt.Fprintln(stdin, "ERROR "+err.Error())
				continue
			}
			fmt.Fprintln(stdin, "STARTED")
		default:
			t.Log(line)
			if strings.HasPrefix(line, "PASS:") || strings.HasPrefix(line, "FAIL:") {
				verdict = line
			}
			if strings.HasPrefix(line, "TRANSPORT ") {
				transports[strings.TrimPrefix(line, "TRANSPORT ")]++
			}
		}
	}
	stdin.Close()
	waitErr := node.Wait()
	stderrMu.Lock()
	errText := stderr.String()
	stderrMu.Unlock()
	if strings.TrimSpace(errText) != "" {
		t.Logf("node stderr:\n%s", errText)
	}
	if controlErr != nil {
		t.Errorf("server control: %v", controlErr)
	}
	if waitErr != nil || !strings.HasPrefix(verdict, "PASS:") {
		t.Fatalf("browser test failed (%v): %s", waitErr, verdict)
	}
	// Page A uses WebSocket (before and after the restart), page B
	// (?transport=long-polling) long-polling.
	if transports["A websocket"] != 2 || transports["B long-polling"] != 2 || len(transports) != 2 {
		t.Errorf("transports reported by the pages: %v; want A on websocket and B on long-polling, twice each", transports)
	}
	for _, name := range []string{"chat.png", "status.png"} {
		if st, err := os.Stat(filepath.Join(dir, "artifacts", name)); err != nil || st.Size() == 0 {
			t.Errorf("screenshot %s missing: %v", name, err)
		}
	}
}

type browserLockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l browserLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func browserTail(data []byte, n int) string {
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
