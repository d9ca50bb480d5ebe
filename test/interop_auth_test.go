package test

// Authentication interop: test/interop/auth.mjs drives the npm cometd and
// faye clients, on websocket and long-polling, with a token extension
// against a hub that requires tokens (secureConfig). Skipped without
// test/interop/node_modules unless CI is set, as TestInterop is.

import (
	"testing"
)

func TestInteropAuth(t *testing.T) {
	t.Parallel()
	dir, node := interopNode(t)
	srv := startServer(t, secureConfig(t, nil))
	url := srv.URL() + "/cometd"
	res, stderr, err := interopRun(t, node, dir, "auth.mjs", url, "token",
		"INTEROP_TOKEN="+userToken(t, "alice", nil), "INTEROP_API_KEY="+testAPIKey)
	if err != nil || !res.OK {
		t.Fatalf("auth interop failed against %s\n  exit: %v\n  error: %s\n  waiting for: %v\n  passed checks: %d\n  result: %s\n  stderr:\n%s",
			url, err, res.Error, res.WaitingFor, len(res.Checks), interopTail(res.Line, 4000), interopTail(stderr, 4000))
	}
	t.Logf("auth interop: ok in %d ms, %d checks; %s", res.Ms, len(res.Checks), interopTail(res.Line, 600))
	if st := srv.Hub().Stats(); st.Published != 1 {
		t.Fatalf("published %d messages, want the backend's one only", st.Published)
	}
}
