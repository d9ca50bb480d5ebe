package test

// WebSocket interop: test/interop/ws.mjs drives the npm cometd client (its
// WebSocketTransport on the `ws` package that cometd-nodejs-client
// installs) and the npm faye client (faye-websocket) over bayeuxhub's
// websocket transport, next to long-polling clients of both libraries.
// The clients reach the server through wsProxy, a TCP proxy that counts
// WebSocket upgrades (the server side of "which transport did faye use")
// and cuts every connection when the reconnect scenario asks it to.
//
// Skipped without test/interop/node_modules unless CI is set, as
// TestInterop is.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// wsInteropScenarios are the scenario names understood by interop/ws.mjs.
var wsInteropScenarios = []string{"exchange", "reconnect"}

func TestInteropWebSocket(t *testing.T) {
	t.Parallel()
	dir, node := interopNode(t)
	for _, scenario := range wsInteropScenarios {
		t.Run(scenario, func(t *testing.T) {
			target := strings.TrimPrefix(interopStartServer(t), "http://")
			proxy := wsProxyStart(t, target)
			res, stderr, err := wsInteropRun(t, node, dir, "http://"+proxy.addr()+"/cometd", scenario, proxy)
			if err != nil || !res.OK {
				t.Fatalf("scenario %s failed\n  exit: %v\n  error: %s\n  waiting for: %v\n  passed checks: %d\n  result: %s\n  stderr:\n%s",
					scenario, err, res.Error, res.WaitingFor, len(res.Checks),
					interopTail(res.Line, 4000), interopTail(stderr, 4000))
			}
			// cometd-ws and faye-ws: two upgrades at least, and as many
			// again after the cut.
			up := proxy.upgrades()
			if up.before < 2 || scenario == "reconnect" && up.after < 2 {
				t.Fatalf("WebSocket upgrades seen by the server: %d before the cut, %d after; want 2 each (result %s)",
					up.before, up.after, res.Line)
			}
			var facts struct {
				Transports map[string]string `json:"transports"`
				Handshakes map[string]any    `json:"handshakes"`
			}
			_ = json.Unmarshal([]byte(res.Line), &facts)
			t.Logf("scenario %s: ok in %d ms, %d checks, upgrades %d before the cut and %d after; transports %v; handshakes %v",
				scenario, res.Ms, len(res.Checks), up.before, up.after, facts.Transports, facts.Handshakes)
		})
	}
}

// wsInteropRun runs one ws.mjs scenario, answering its "CONTROL drop"
// requests by cutting every proxied connection.
func wsInteropRun(t *testing.T, node, dir, url, scenario string, proxy *wsProxy) (interopResult, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopKillTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ws.mjs", url, scenario)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "INTEROP_TIMEOUT_MS="+strconv.FormatInt(interopScenarioTimeout.Milliseconds(), 10))
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res interopResult
	var lines []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if line == "CONTROL drop" {
			proxy.drop()
			_, _ = io.WriteString(stdin, "dropped\n")
		}
	}
	_ = stdin.Close()
	runErr := cmd.Wait()
	if ctx.Err() != nil {
		runErr = errors.Join(runErr, errors.New("node process killed after "+interopKillTimeout.String()))
	}
	line := interopLastJSONLine(strings.Join(lines, "\n"))
	if line == "" {
		return res, stderr.String() + "\n[stdout]\n" + strings.Join(lines, "\n"), errors.Join(runErr, errors.New("no JSON result line on stdout"))
	}
	res.Line = line
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, stderr.String(), errors.Join(runErr, err)
	}
	if res.Scenario != scenario {
		return res, stderr.String(), errors.Join(runErr, fmt.Errorf("result is for scenario %s", res.Scenario))
	}
	return res, stderr.String(), runErr
}

// wsProxy forwards TCP connections to the server, counts the WebSocket
// upgrade requests among them and can cut them all (drop), or cut them
// and refuse new ones, with a reset, until restore.
type wsProxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu            sync.Mutex
	conns         map[net.Conn]struct{}
	dropped       bool
	before, after int
	isCut         bool
	refused       int
}

func wsProxyStart(t *testing.T, target string) *wsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &wsProxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.drop()
		p.wg.Wait()
	})
	return p
}

func (p *wsProxy) addr() string { return p.ln.Addr().String() }

func (p *wsProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve forwards one connection; the first bytes tell whether it is an
// upgrade request.
func (p *wsProxy) serve(c net.Conn) {
	defer p.wg.Done()
	if p.refuse(c) {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	defer p.untrack(c, up)
	head := make([]byte, 4096)
	n, err := c.Read(head)
	if err != nil {
		return
	}
	if bytes.Contains(bytes.ToLower(head[:n]), []byte("upgrade: websocket")) {
		p.mu.Lock()
		if p.dropped {
			p.after++
		} else {
			p.before++
		}
		p.mu.Unlock()
	}
	if _, err := up.Write(head[:n]); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, up)
		_ = c.Close()
		close(done)
	}()
	_, _ = io.Copy(up, c)
	_ = up.Close()
	<-done
}

func (p *wsProxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		_ = c.Close()
		_ = up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *wsProxy) untrack(c, up net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	delete(p.conns, up)
	_ = c.Close()
	_ = up.Close()
}

// refuse resets c while the proxy is cut.
func (p *wsProxy) refuse(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isCut {
		return false
	}
	p.refused++
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	return true
}

// cut closes every connection and refuses new ones until restore.
func (p *wsProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// restore forwards new connections again and returns how many were
// refused during the cut.
func (p *wsProxy) restore() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = false
	return p.refused
}

// drop cuts every connection open now; later ones are counted as "after".
func (p *wsProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// upgrades returns the upgrade requests seen before and after the cut.
func (p *wsProxy) upgrades() struct{ before, after int } {
	p.mu.Lock()
	defer p.mu.Unlock()
	return struct{ before, after int }{p.before, p.after}
}

// TestBayeuxHubJSTransport runs the browser client htdocs/bayeuxhub.js in
// Node (interop/bayeuxhub-js.mjs, with the `ws` package as WebSocket): it
// must use websocket when the server offers it, and long-polling when the
// server does not offer it or when the upgrade fails.
func TestBayeuxHubJSTransport(t *testing.T) {
	t.Parallel()
	dir, node := interopNode(t)
	for _, tc := range []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"offered", server.Config{}, "websocket"},
		{"not offered", server.Config{Transports: []string{"long-polling"}}, "long-polling"},
		// Offered in the handshake, but upgrades are refused (as behind a
		// proxy that does not pass them).
		{"upgrade fails", server.Config{Transports: []string{"long-polling"},
			Hub: actors.Options{ConnectionTypes: []string{"websocket", "long-polling"}}}, "long-polling"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "bayeuxhub-js.mjs", srv.URL()+"/cometd")
			cmd.Dir = dir
			cmd.WaitDelay = 5 * time.Second
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, runErr := cmd.Output()
			var res struct {
				OK        bool
				Transport string
				Error     string
			}
			line := interopLastJSONLine(string(out))
			if err := json.Unmarshal([]byte(line), &res); err != nil || runErr != nil || !res.OK {
				t.Fatalf("bayeuxhub.js: %v %v %s\nstdout: %s\nstderr: %s", runErr, err, res.Error, out, interopTail(stderr.String(), 2000))
			}
			if res.Transport != tc.want {
				t.Fatalf("bayeuxhub.js used %s, want %s", res.Transport, tc.want)
			}
		})
	}
}
