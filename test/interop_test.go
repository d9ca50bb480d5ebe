package test

// Interop suite: drives the real npm Bayeux clients (cometd 9 with
// cometd-nodejs-client, and faye 1.4) against a freshly started bayeuxhub.
// The Node side lives in test/interop (see test/interop/README.md); its
// dependencies are installed with `npm ci --prefix test/interop`.
//
// Without test/interop/node_modules the test is skipped locally, but fails
// when the CI environment variable is set: CI must run it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/server"
)

// interopScenarios are the scenario names understood by interop/interop.mjs.
var interopScenarios = []string{"basic", "wildcards", "unsubscribe", "disconnect", "ordering", "fallback"}

const (
	// interopScenarioTimeout is the Node script's own deadline per scenario.
	interopScenarioTimeout = 20 * time.Second
	// interopKillTimeout bounds the node process in case its own deadline fails.
	interopKillTimeout = interopScenarioTimeout + 20*time.Second
)

// interopResult is the JSON line printed by interop.mjs.
type interopResult struct {
	Scenario   string   `json:"scenario"`
	OK         bool     `json:"ok"`
	Ms         int64    `json:"ms"`
	Error      string   `json:"error"`
	WaitingFor []string `json:"waitingFor"`
	Checks     []string `json:"checks"`
	Line       string   `json:"-"` // the raw JSON line
}

// interopNode returns the test/interop folder and the node binary, skipping
// the test when the npm packages are not installed, unless CI is set: CI
// must run the interop suites.
func interopNode(t *testing.T) (dir, node string) {
	t.Helper()
	dir, err := filepath.Abs("interop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		msg := "test/interop/node_modules missing (" + err.Error() + "); run: npm ci --prefix test/interop"
		if os.Getenv("CI") == "" {
			t.Skip(msg)
		}
		t.Fatal("CI is set: " + msg)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		// node_modules exists, so Node was meant to be available.
		t.Fatalf("node not found in PATH: %v", err)
	}
	return dir, node
}

func TestInterop(t *testing.T) {
	t.Parallel()
	dir, node := interopNode(t)

	for _, scenario := range interopScenarios {
		t.Run(scenario, func(t *testing.T) {
			url := interopStartServer(t) + "/cometd"
			res, stderr, err := interopRun(t, node, dir, "interop.mjs", url, scenario)
			if err != nil || !res.OK {
				t.Errorf("scenario %s failed against %s\n  exit: %v\n  error: %s\n  waiting for: %v\n  passed checks: %d\n  result: %s\n  stderr:\n%s",
					scenario, url, err, res.Error, res.WaitingFor, len(res.Checks),
					interopTail(res.Line, 4000), interopTail(stderr, 4000))
				return
			}
			t.Logf("scenario %s: ok in %d ms, %d checks", scenario, res.Ms, len(res.Checks))
		})
	}
}

// interopStartServer starts a fresh bayeuxhub on a free loopback port and
// returns its base URL; the server is shut down when the test ends.
func interopStartServer(t *testing.T) string {
	t.Helper()
	srv, err := server.Start(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	return strings.TrimSuffix(srv.URL(), "/")
}

// interopRun runs one scenario of a script and parses its JSON result
// line; env is added to the script's environment. err is non-nil if the
// process failed or printed no parsable result.
func interopRun(t *testing.T, node, dir, script, url, scenario string, env ...string) (interopResult, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopKillTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, node, script, url, scenario)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(),
		"INTEROP_TIMEOUT_MS="+strconv.FormatInt(interopScenarioTimeout.Milliseconds(), 10)), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		runErr = errors.Join(runErr, errors.New("node process killed after "+interopKillTimeout.String()))
	}

	var res interopResult
	line := interopLastJSONLine(stdout.String())
	if line == "" {
		return res, stderr.String() + "\n[stdout]\n" + stdout.String(),
			errors.Join(runErr, errors.New("no JSON result line on stdout"))
	}
	res.Line = line
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, stderr.String(), errors.Join(runErr, err)
	}
	if res.Scenario != scenario {
		return res, stderr.String(), errors.Join(runErr, errors.New("result is for scenario "+res.Scenario))
	}
	return res, stderr.String(), runErr
}

// interopLastJSONLine returns the last stdout line that looks like a JSON object.
func interopLastJSONLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			return l
		}
	}
	return ""
}

func interopTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
