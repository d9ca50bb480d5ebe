package test

// Replay interop (issue 13): test/interop/replay.mjs drives faye as
// jsforce's Streaming API creates it, with jsforce's
// StreamingExtension.Replay (npm jsforce, pinned in
// test/interop/package.json), and the npm cometd client with a replay
// extension of a few lines, each subscribing to a channel whose rule keeps
// history. The clients reach the hub through wsProxy (interop_ws_test.go), which the test
// cuts (every connection closed, new ones refused) until the hub has
// expired the client's session (Options.MaxInterval is 1 s), and then
// restores. The test publishes with Hub.Publish: some messages before the
// client subscribes (retained), some while it is connected, some during
// the cut, some after it came back; the client must receive all of them,
// exactly once each and in order, the ones of the cut by replay in a new
// session: it re-handshakes and subscribes again with the replay id of the
// last message it saw.
//
// Skipped without test/interop/node_modules (or without jsforce in it)
// unless CI is set, as TestInterop is.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/server"
)

const (
	// replayScriptTimeout is replay.mjs's own deadline; the process is
	// killed replayKillAfter later if that fails. Both are far above what
	// a run takes (seconds): they only end a run that hangs.
	replayScriptTimeout = 4 * time.Minute
	replayKillAfter     = 30 * time.Second
	// replayWait bounds each wait for a condition (generous, for -race on
	// a loaded machine; a condition that holds returns at once).
	replayWait = time.Minute
)

// The messages the test publishes, numbered 1..replayTotal in "n": before
// the client subscribes (retained), while it is connected (live), during
// the cut while its old session still exists and after the hub expired
// it, and after it came back (live again).
const (
	replayRetained    = 5
	replayLive        = 10
	replayCutSession  = 13
	replayCutExpired  = 16
	replayTotal       = 20
	replayMaxInterval = time.Second
)

func TestInteropReplay(t *testing.T) {
	t.Parallel()
	dir, node := interopNode(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jsforce")); err != nil {
		msg := "jsforce missing from test/interop/node_modules (" + err.Error() + "); run: npm ci --prefix test/interop"
		if os.Getenv("CI") == "" {
			t.Skip(msg)
		}
		t.Fatal("CI is set: " + msg)
	}
	for _, tc := range []struct {
		scenario string
		channel  string // /topic/**: Salesforce shape; /replay/**: data as published
		// connectionType is what every /meta/connect of every session
		// must use; "" when faye decides.
		connectionType string
	}{
		{"jsforce", "/topic/orders", ""},
		{"jsforce-lp", "/topic/orders", "long-polling"},
		{"cometd-lp", "/replay/chat", "long-polling"},
		{"cometd-ws", "/replay/chat", "websocket"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			t.Parallel()
			testReplayAcrossSessions(t, node, dir, tc.scenario, tc.channel, tc.connectionType)
		})
	}
}

func testReplayAcrossSessions(t *testing.T, node, dir, scenario, channel, connectionType string) {
	rules, err := acl.New([]acl.Rule{
		{Pattern: "/topic/**", Subscribe: acl.Anyone, Publish: acl.Anyone,
			History: acl.History{Size: 1000, Shape: acl.ShapeSalesforce}},
		{Pattern: "/replay/**", Subscribe: acl.Anyone, Publish: acl.Anyone, History: acl.History{Size: 1000}},
		{Pattern: "/**", Subscribe: acl.Anyone, Publish: acl.Anyone},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, server.Config{Hub: actors.Options{Rules: rules, MaxInterval: replayMaxInterval}})
	hub := srv.Hub()
	proxy := wsProxyStart(t, strings.TrimPrefix(srv.URL(), "http://"))
	published := 0
	publishUpTo := func(n int) {
		t.Helper()
		for ; published < n; published++ {
			if err := hub.Publish(channel, map[string]any{"n": published + 1}); err != nil {
				t.Fatalf("publish %d: %v", published+1, err)
			}
		}
	}

	publishUpTo(replayRetained)
	s := replayScriptStart(t, node, dir, "http://"+proxy.addr()+"/cometd", scenario, channel)
	s.waitApp(t, replayRetained, "the retained messages")
	publishUpTo(replayLive)
	s.waitApp(t, replayLive, "the live messages")
	before := s.snapshot()
	oldID := before.lastClientID()
	if oldID == "" {
		t.Fatalf("no successful handshake seen: %v", before.events)
	}

	// The cut: the client cannot reach the hub until its session expired.
	proxy.cut()
	publishUpTo(replayCutSession)
	checkFor(t, replayWait, 10*time.Millisecond, func() error {
		if st := hub.Stats(); st.Clients != 0 {
			return fmt.Errorf("%d sessions still open on the hub during the cut (the client's was %s)", st.Clients, oldID)
		}
		return nil
	})
	// The old session is gone: its client id is unknown to the hub.
	old := newClient(t, srv)
	old.id = oldID
	if r := find(old.connectRaw(), "/meta/connect"); r == nil || errorCode(r) != "402" {
		t.Fatalf("a connect with the expired session's client id %s: %v, want a 402", oldID, r)
	}
	publishUpTo(replayCutExpired)
	refused := proxy.restore()

	s.waitApp(t, replayCutExpired, "the messages of the cut, by replay in a new session")
	publishUpTo(replayTotal)
	s.waitApp(t, replayTotal, "the live messages after the cut")
	res := s.finish(t)
	after := s.snapshot()

	// Every message once, in order, in the application and on the wire,
	// with increasing replay ids; jsforce sees them in data.event.replayId
	// (the Salesforce shape), cometd in ext.replayId.
	want := make([]int, replayTotal)
	for i := range want {
		want[i] = i + 1
	}
	app, wire := after.of("app"), after.of("wire")
	if got := replayNs(app); !slices.Equal(got, want) {
		t.Fatalf("the application got messages %v, want %v (retained, live, missed, live: each once, in order)", got, want)
	}
	if got := replayNs(wire); !slices.Equal(got, want) {
		t.Fatalf("the wire carried messages %v, want %v", got, want)
	}
	epochs := map[string]bool{}
	for i, w := range wire {
		if w.ReplayID == nil || (i > 0 && *w.ReplayID <= *wire[i-1].ReplayID) {
			t.Fatalf("delivery %d (n=%d) has replay id %v after %v: not increasing", i, w.N, w.ReplayID, wire[max(i-1, 0)].ReplayID)
		}
		if a := app[i]; a.ReplayID == nil || *a.ReplayID != *w.ReplayID || (a.Shaped != nil && !*a.Shaped) {
			t.Fatalf("n=%d: the application saw replay id %v (shaped %v), the wire %d", w.N, a.ReplayID, a.Shaped, *w.ReplayID)
		}
		if strings.HasPrefix(channel, "/topic/") && (w.EventReplayID == nil || *w.EventReplayID != *w.ReplayID) {
			t.Fatalf("n=%d: data.event.replayId %v, ext.replayId %d: want the Salesforce shape", w.N, w.EventReplayID, *w.ReplayID)
		}
		epochs[w.Epoch] = true
	}
	if len(epochs) != 1 || epochs[""] {
		t.Fatalf("replay epochs %v: want one", epochs)
	}

	// Two sessions at least: the first, expired during the cut, and the
	// one after; each subscribe asked for replay from what it had seen
	// (the first for everything retained, -2), and one, after the cut and
	// from the new session, from the last message before the cut.
	var ids []string
	for _, h := range after.of("handshake") {
		if h.Successful != nil && *h.Successful {
			ids = append(ids, h.ClientID)
		}
	}
	if len(ids) < 2 || ids[len(ids)-1] == oldID {
		t.Fatalf("successful handshakes with client ids %v: want a new session after the cut (the expired one was %s)", ids, oldID)
	}
	if st := hub.Stats(); st.Handshakes < 2 {
		t.Fatalf("the hub counts %d handshakes, want 2 at least", st.Handshakes)
	}
	lastBeforeCut := *wire[replayLive-1].ReplayID
	subs := after.of("subscribe")
	var fromCut bool
	for i, sub := range subs {
		asked, ok := sub.Replay[channel]
		// Before any delivery (a first subscribe, or one after a session
		// lost early on a slow machine), -2; then the last id seen.
		wantAsked := actors.ReplayAll
		if sub.LastSeen != nil {
			wantAsked = *sub.LastSeen
		}
		switch {
		case !ok:
			t.Fatalf("subscribe %d without ext.replay for %s: %+v", i+1, channel, sub)
		case asked != wantAsked:
			t.Fatalf("subscribe %d asked for replay from %d, want %d (the last replay id delivered before it: %v)", i+1, asked, wantAsked, sub.LastSeen)
		}
		fromCut = fromCut || asked == lastBeforeCut && sub.seq > before.lastSeq
	}
	if !fromCut {
		t.Fatalf("no subscribe after the cut asked for replay from %d, the last replay id before it: %+v", lastBeforeCut, subs)
	}
	for i, r := range after.of("subscribed") {
		if r.Successful == nil || !*r.Successful {
			t.Fatalf("subscribe %d refused: %+v", i+1, r)
		}
	}

	// The transports: as asked, in every session.
	var facts struct {
		Lib      string `json:"lib"`
		Sessions []struct {
			ClientID        string   `json:"clientId"`
			Replay          bool     `json:"replay"`
			ConnectionTypes []string `json:"connectionTypes"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(res.Line), &facts); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ss := range facts.Sessions {
		if !ss.Replay {
			t.Fatalf("session %s: the handshake reply had no ext.replay true", ss.ClientID)
		}
		switch {
		case connectionType != "" && !slices.Equal(ss.ConnectionTypes, []string{connectionType}):
			t.Fatalf("session %s sent /meta/connect over %v, want %s only (%s)", ss.ClientID, ss.ConnectionTypes, connectionType, res.Line)
		case len(ss.ConnectionTypes) == 0 || slices.ContainsFunc(ss.ConnectionTypes, func(c string) bool { return c != "long-polling" && c != "websocket" }):
			t.Fatalf("session %s sent /meta/connect over %v (%s)", ss.ClientID, ss.ConnectionTypes, res.Line)
		}
		types = append(types, strings.Join(ss.ConnectionTypes, "+"))
	}
	var asked []int64
	for _, sub := range subs {
		asked = append(asked, sub.Replay[channel])
	}
	t.Logf("%s: %d messages once each and in order (replay ids %d..%d); sessions %v on %v; subscribes asked for replay from %v; %d connections refused during the cut; ok in %d ms",
		facts.Lib, len(app), *wire[0].ReplayID, *wire[len(wire)-1].ReplayID, ids, types, asked, refused, res.Ms)
}

// replayEvent is one "EVENT {json}" line of replay.mjs.
type replayEvent struct {
	Kind          string           `json:"kind"`
	Successful    *bool            `json:"successful"`
	ClientID      string           `json:"clientId"`
	Error         string           `json:"error"`
	Replay        map[string]int64 `json:"replay"`
	LastSeen      *int64           `json:"lastSeen"`
	N             int              `json:"n"`
	ReplayID      *int64           `json:"replayId"`
	EventReplayID *int64           `json:"eventReplayId"`
	Epoch         string           `json:"epoch"`
	Shaped        *bool            `json:"shaped"`
	seq           int              // its place among all events
}

func replayNs(evs []replayEvent) []int {
	ns := make([]int, len(evs))
	for i, e := range evs {
		ns[i] = e.N
	}
	return ns
}

// replayEvents is what replay.mjs reported so far.
type replayEvents struct {
	events  []replayEvent
	lastSeq int
}

func (r replayEvents) of(kind string) []replayEvent {
	var out []replayEvent
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (r replayEvents) lastClientID() string {
	id := ""
	for _, h := range r.of("handshake") {
		if h.Successful != nil && *h.Successful {
			id = h.ClientID
		}
	}
	return id
}

// replayScript is a running replay.mjs: its events as they come, and its
// result line once it ends.
type replayScript struct {
	scenario string
	stdin    io.WriteCloser
	done     chan struct{} // closed when the process has ended

	mu     sync.Mutex
	events []replayEvent
	lines  []string
	bad    []string // unparsable EVENT lines
	runErr error
	stderr strings.Builder
}

func replayScriptStart(t *testing.T, node, dir, url, scenario, channel string) *replayScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replayScriptTimeout+replayKillAfter)
	cmd := exec.CommandContext(ctx, node, "replay.mjs", url, scenario)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REPLAY_CHANNEL="+channel,
		"INTEROP_TIMEOUT_MS="+strconv.FormatInt(replayScriptTimeout.Milliseconds(), 10))
	cmd.WaitDelay = 5 * time.Second
	s := &replayScript{scenario: scenario, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.add(sc.Text())
		}
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = errors.Join(err, fmt.Errorf("node process killed after %v", replayScriptTimeout+replayKillAfter))
		}
		s.mu.Lock()
		s.runErr = err
		s.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = s.stdin.Close()
		cancel() // a script still running when the test ends is killed
		<-s.done
	})
	return s
}

func (s *replayScript) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	rest, ok := strings.CutPrefix(line, "EVENT ")
	if !ok {
		return
	}
	var e replayEvent
	if err := json.Unmarshal([]byte(rest), &e); err != nil {
		s.bad = append(s.bad, line)
		return
	}
	e.seq = len(s.events) + 1
	s.events = append(s.events, e)
}

func (s *replayScript) snapshot() replayEvents {
	s.mu.Lock()
	defer s.mu.Unlock()
	return replayEvents{events: slices.Clone(s.events), lastSeq: len(s.events)}
}

// report is the script's output so far, for failure messages.
func (s *replayScript) report() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("exit: %v\nunparsable: %q\nstdout:\n%s\nstderr:\n%s", s.runErr, s.bad,
		interopTail(strings.Join(s.lines, "\n"), 6000), interopTail(s.stderr.String(), 4000))
}

// waitApp waits until the application has received n messages; it fails
// at once if the script ended.
func (s *replayScript) waitApp(t *testing.T, n int, what string) {
	t.Helper()
	checkFor(t, replayWait, 10*time.Millisecond, func() error {
		got := len(s.snapshot().of("app"))
		if got >= n {
			return nil
		}
		select {
		case <-s.done:
			t.Fatalf("%s: replay.mjs %s ended with %d of %d messages\n%s", what, s.scenario, got, n, s.report())
		default:
		}
		return fmt.Errorf("%s: %d of %d messages received\n%s", what, got, n, s.report())
	})
}

// finish tells the script to disconnect and report, and returns its
// result line.
func (s *replayScript) finish(t *testing.T) interopResult {
	t.Helper()
	if _, err := io.WriteString(s.stdin, "finish\n"); err != nil {
		t.Fatalf("telling replay.mjs to finish: %v\n%s", err, s.report())
	}
	checkFor(t, replayWait, 10*time.Millisecond, func() error {
		select {
		case <-s.done:
			return nil
		default:
			return errors.New("replay.mjs has not ended after finish")
		}
	})
	s.mu.Lock()
	line, runErr := interopLastJSONLine(strings.Join(s.lines, "\n")), s.runErr
	s.mu.Unlock()
	var res interopResult
	if err := json.Unmarshal([]byte(line), &res); err != nil || runErr != nil || !res.OK || res.Scenario != s.scenario {
		t.Fatalf("replay.mjs %s failed: %v %v: %s\n%s", s.scenario, runErr, err, res.Error, s.report())
	}
	res.Line = line
	return res
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
