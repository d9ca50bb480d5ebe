package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/internal/config"
	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
	"github.com/bayeuxhub/bayeuxhub/server"
)

// replayRules is the channel rule list of the replay cluster tests, as
// the command builds it from replayConfig: the reserved rule, then the
// rooms with history. Every hub of a cluster needs the same rules: a
// rule's stream is named after its pattern.
func replayRules(t *testing.T, shape string) *acl.Rules {
	t.Helper()
	rules, err := acl.New([]acl.Rule{config.ReservedRule(),
		{Pattern: "/replay/**", Subscribe: acl.Anyone, Publish: acl.Anyone, History: acl.History{Size: 100000, Shape: shape}}})
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

const replayConfig = "channels:\n  - pattern: /replay/**\n    subscribe: anyone\n    publish: anyone\n    history-size: 100000\n"

// replayHub starts an in-process hub named name on NATS ns, its history
// in JetStream (the default with Config.NATS).
func replayHub(t *testing.T, ns *natstest.Server, name string, rules *acl.Rules) *server.Server {
	t.Helper()
	return startServer(t, server.Config{NodeName: name, NATS: []string{ns.URL()}, Hub: actors.Options{Rules: rules}})
}

// replayCommand runs the bayeuxhub binary as a hub named name on NATS ns
// with replayConfig and returns the process and its base URL; it is
// killed when the test ends.
func replayCommand(t *testing.T, ns *natstest.Server, name string) (*exec.Cmd, string) {
	t.Helper()
	bin := buildCommand(t)
	cfg := filepath.Join(t.TempDir(), "hub.yaml")
	if err := os.WriteFile(cfg, []byte(replayConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1", "--config", cfg, "--nats", ns.URL(), "--node-name", name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case a := <-addr:
		return cmd, "http://" + a
	case <-exited:
		t.Fatalf("hub %s exited before serving", name)
	case <-time.After(60 * time.Second):
		t.Fatalf("hub %s did not report its address", name)
	}
	return nil, ""
}

// replayDelivery is one message a replaySub received.
type replayDelivery struct {
	n        int64 // the publisher's sequence number
	replayID int64
	epoch    string
	data     map[string]any
}

// replaySub is a long-polling subscriber, on its own goroutine, that
// remembers the last replay id it saw and, when its hub fails (a
// connection error), handshakes on the next hub and subscribes again
// from that id. It reports errors instead of failing the test.
type replaySub struct {
	name    string
	channel string
	hubs    []string // base URLs, in failover order
	http    *http.Client
	// gate, when set, holds a failover back until it is closed (a
	// client's back-off: what is published meanwhile must come from the
	// replay).
	gate <-chan struct{}

	mu       sync.Mutex
	got      []replayDelivery
	hub      int // index in hubs of the hub in use
	lastID   int64
	failover time.Time // when it left its first hub
	onFirst  int       // messages received on the first hub
	err      error
}

// deliveries returns what the subscriber has received so far.
func (s *replaySub) deliveries() []replayDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]replayDelivery(nil), s.got...)
}

func (s *replaySub) state() (n, hub int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got), s.hub, s.err
}

// post sends msgs to the current hub and returns its replies, numbers as
// json.Number.
func (s *replaySub) post(base string, msgs ...map[string]any) ([]map[string]any, error) {
	body, err := json.Marshal(msgs)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Post(base+"/cometd", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var out []map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// join handshakes on hub base and subscribes from the last replay id
// (everything retained when it has seen none), taking what the replies
// carry; the error is the hub's refusal or a connection error.
func (s *replaySub) join(base string) (clientID string, err error) {
	replies, err := s.post(base, map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if err != nil {
		return "", err
	}
	if len(replies) != 1 || replies[0]["successful"] != true {
		return "", fmt.Errorf("handshake: %v", replies)
	}
	clientID = replies[0]["clientId"].(string)
	s.mu.Lock()
	from := s.lastID
	s.mu.Unlock()
	if from == 0 {
		from = actors.ReplayAll
	}
	replies, err = s.post(base, map[string]any{"channel": "/meta/connect", "clientId": clientID, "connectionType": "long-polling"})
	if err != nil {
		return "", err
	}
	if err := s.take(replies); err != nil {
		return "", err
	}
	replies, err = s.post(base, map[string]any{"channel": "/meta/subscribe", "clientId": clientID, "subscription": s.channel,
		"ext": map[string]any{"replay": map[string]any{s.channel: from}}})
	if err != nil {
		return "", err
	}
	for _, r := range replies {
		if r["channel"] == "/meta/subscribe" && r["successful"] != true {
			return "", fmt.Errorf("subscribe from %d: %v", from, r)
		}
	}
	return clientID, s.take(replies)
}

// take records the deliveries among replies.
func (s *replaySub) take(replies []map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range replies {
		if r["channel"] == "/meta/connect" {
			if r["successful"] != true {
				return fmt.Errorf("connect: %v", r)
			}
			continue
		}
		if r["channel"] != s.channel || r["data"] == nil {
			continue
		}
		data, _ := r["data"].(map[string]any)
		ext, _ := r["ext"].(map[string]any)
		rawID, _ := ext["replayId"].(json.Number)
		id, err1 := rawID.Int64()
		payload := data
		if p, ok := data["payload"].(map[string]any); ok { // the Salesforce shape
			payload = p
		}
		rawN, _ := payload["n"].(json.Number)
		n, err2 := rawN.Int64()
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("delivery %v: %w", r, err)
		}
		if id <= s.lastID {
			return fmt.Errorf("replay id %d after %d (message %d)", id, s.lastID, n)
		}
		s.lastID = id
		epoch, _ := ext["replayEpoch"].(string)
		s.got = append(s.got, replayDelivery{n: n, replayID: id, epoch: epoch, data: data})
	}
	return nil
}

// run polls until stop is closed, failing over to the next hub when the
// current one fails.
func (s *replaySub) run(stop <-chan struct{}, joined chan<- struct{}) {
	fail := func(err error) {
		s.mu.Lock()
		s.err = fmt.Errorf("%s: %w", s.name, err)
		s.mu.Unlock()
	}
	id, err := s.join(s.hubs[0])
	if err != nil {
		fail(err)
	}
	joined <- struct{}{}
	if err != nil {
		return
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		s.mu.Lock()
		base := s.hubs[s.hub]
		s.mu.Unlock()
		replies, err := s.post(base, map[string]any{"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling"})
		if err == nil {
			if err := s.take(replies); err != nil {
				fail(err)
				return
			}
			continue
		}
		// The hub is gone: the next one, from the last replay id seen.
		s.mu.Lock()
		if s.hub+1 == len(s.hubs) {
			s.mu.Unlock()
			fail(fmt.Errorf("last hub failed: %w", err))
			return
		}
		s.hub++
		s.failover, s.onFirst = time.Now(), len(s.got)
		next := s.hubs[s.hub]
		s.mu.Unlock()
		if s.gate != nil {
			select {
			case <-s.gate:
			case <-stop:
				return
			}
		}
		if id, err = s.join(next); err != nil {
			fail(fmt.Errorf("rejoin on %s: %w", next, err))
			return
		}
	}
}

// replayPublisher publishes {"n": i} on channel over HTTP at a steady
// rate until stop is closed; published counts the messages the hub
// accepted, in order.
type replayPublisher struct {
	c         *client
	channel   string
	published atomic.Int64
	err       atomic.Pointer[error]
}

func (p *replayPublisher) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		n := p.published.Load()
		body, _ := json.Marshal([]msg{{"channel": p.channel, "clientId": p.c.id, "data": msg{"n": n}}})
		resp, err := p.c.http.Post(p.c.url, "application/json", bytes.NewReader(body))
		if err == nil {
			var replies []msg
			err = json.NewDecoder(resp.Body).Decode(&replies)
			resp.Body.Close()
			if err == nil && (len(replies) != 1 || replies[0]["successful"] != true) {
				err = fmt.Errorf("publish %d: %v", n, replies)
			}
		}
		if err != nil {
			p.err.Store(&err)
			return
		}
		p.published.Add(1)
	}
}

// waitAll polls cond until it holds (nil) or total passes; errors of the
// subscribers end it early.
func waitAll(t *testing.T, total time.Duration, what string, subs []*replaySub, pub *replayPublisher, cond func() error) {
	t.Helper()
	checkFor(t, total, 5*time.Millisecond, func() error {
		for _, s := range subs {
			if _, _, err := s.state(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if e := pub.err.Load(); e != nil {
			t.Fatalf("%s: publisher: %v", what, *e)
		}
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// TestReplayClusterFailover: three hubs on one NATS server, the history
// in JetStream. A publisher on hub A publishes at a steady rate;
// subscribers on hub B (the bayeuxhub binary) replay from -2 and remember
// the last replay id they saw; B is killed (SIGKILL) mid-stream; they
// handshake on hub C, subscribe again from their last replay id and get
// every message exactly once, in the publisher's order, with the replay
// ids a subscriber on C got live.
func TestReplayClusterFailover(t *testing.T) {
	t.Parallel()
	// The subscribers stop last, once the hubs have answered their held
	// connects at shutdown (cleanups run last first).
	stopSubs := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stopSubs)
		wg.Wait()
	})
	ns := natstest.Run(t, 0)
	rules := replayRules(t, "")
	a := replayHub(t, ns, "a", rules)
	c := replayHub(t, ns, "c", rules)
	bCmd, bURL := replayCommand(t, ns, "b")

	const channel = "/replay/room"
	const subscribers = 4
	const backoff = 50 // messages published while the subscribers are between hubs
	gate := make(chan struct{})
	joined := make(chan struct{}, subscribers+1)
	var subs []*replaySub
	for i := range subscribers + 1 {
		s := &replaySub{name: fmt.Sprintf("subscriber %d on b", i), channel: channel, hubs: []string{bURL, c.URL()},
			http: &http.Client{Timeout: 60 * time.Second}, gate: gate}
		if i == subscribers {
			s.name, s.hubs = "subscriber on c", []string{c.URL()} // never fails over: the live ids of c
		}
		subs = append(subs, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(stopSubs, joined)
		}()
	}
	for range subs {
		<-joined
	}

	pub := &replayPublisher{c: newClient(t, a).start(), channel: channel}
	stopPub, pubDone := make(chan struct{}), make(chan struct{})
	go pub.run(stopPub, pubDone)
	t.Cleanup(func() {
		select {
		case <-stopPub:
		default:
			close(stopPub)
		}
		<-pubDone
	})

	// Every subscriber well into the stream, then B dies.
	waitAll(t, 60*time.Second, "before the kill", subs, pub, func() error {
		for _, s := range subs {
			if n, _, _ := s.state(); n < 200 {
				return fmt.Errorf("%s has %d messages", s.name, n)
			}
		}
		return nil
	})
	if err := bCmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	atKill := pub.published.Load()
	waitAll(t, 60*time.Second, "between hubs", subs, pub, func() error {
		for _, s := range subs[:subscribers] {
			if _, hub, _ := s.state(); hub != 1 {
				return fmt.Errorf("%s has not noticed b is gone", s.name)
			}
		}
		if n := pub.published.Load(); n < atKill+backoff {
			return fmt.Errorf("%d published, %d at the kill", n, atKill)
		}
		return nil
	})
	atRejoin := pub.published.Load()
	close(gate)

	// Each has moved to C and is 100 messages further on.
	waitAll(t, 60*time.Second, "after the kill", subs, pub, func() error {
		for _, s := range subs[:subscribers] {
			if n, hub, _ := s.state(); hub != 1 || n < int(atKill)+200 {
				return fmt.Errorf("%s on hub %d has %d messages (%d published at the kill)", s.name, hub, n, atKill)
			}
		}
		return nil
	})
	close(stopPub)
	<-pubDone
	if e := pub.err.Load(); e != nil {
		t.Fatalf("publisher: %v", *e)
	}
	total := pub.published.Load()
	waitAll(t, 60*time.Second, "the rest", subs, pub, func() error {
		for _, s := range subs {
			if n, _, _ := s.state(); n < int(total) {
				return fmt.Errorf("%s has %d of %d messages", s.name, n, total)
			}
		}
		return nil
	})

	ids := map[int64]int64{} // message -> replay id, as c delivered it live
	for _, d := range subs[subscribers].deliveries() {
		ids[d.n] = d.replayID
	}
	for _, s := range subs {
		got := s.deliveries()
		lost, duplicated, disorder := 0, 0, 0
		seen := map[int64]bool{}
		prev := int64(-1)
		for _, d := range got {
			switch {
			case seen[d.n]:
				duplicated++
			case d.n < prev:
				disorder++
			}
			seen[d.n], prev = true, d.n
			if ids[d.n] != d.replayID || d.epoch == "" {
				t.Errorf("%s: message %d has replay id %d epoch %q, c's subscriber saw id %d", s.name, d.n, d.replayID, d.epoch, ids[d.n])
			}
		}
		for n := range total {
			if !seen[n] {
				lost++
			}
		}
		t.Logf("%s: %d of %d messages, lost %d, duplicated %d, out of order %d", s.name, len(got), total, lost, duplicated, disorder)
		if lost != 0 || duplicated != 0 || disorder != 0 || len(got) != int(total) {
			t.Errorf("%s: lost %d, duplicated %d, out of order %d", s.name, lost, duplicated, disorder)
		}
	}
	for _, s := range subs[:subscribers] {
		if s.failover.IsZero() {
			t.Errorf("%s never failed over", s.name)
			continue
		}
		first := s.got[s.onFirst].n
		t.Logf("%s: %d messages on b, then from message %d on c (%d replayed at least)", s.name, s.onFirst, first, atRejoin-first)
		if first > atRejoin-backoff {
			t.Errorf("%s: first message on c %d, want one published before it rejoined (%d)", s.name, first, atRejoin)
		}
	}
	t.Logf("%d messages published, %d before the kill", total, atKill)
}
