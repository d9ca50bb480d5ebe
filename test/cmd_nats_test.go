package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/natstest"
)

// cmdLog collects the JSON log lines of a running command.
type cmdLog struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   strings.Builder
}

func (l *cmdLog) add(line []byte) {
	var m map[string]any
	_ = json.Unmarshal(line, &m)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, m)
	l.raw.Write(line)
	l.raw.WriteByte('\n')
}

// find returns the first line at level whose message contains text, or
// nil; level "" matches any.
func (l *cmdLog) find(level, text string) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if s, _ := m["message"].(string); strings.Contains(s, text) && (level == "" || m["level"] == level) {
			return m
		}
	}
	return nil
}

func (l *cmdLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// TestCommandStartsWithoutNATS (issue 15, item 10): the binary with --nats
// at a port nothing listens on starts and serves, /readyz says NATS is not
// there, a warning says so without the URL's credentials; once a NATS
// server appears on that port the hub joins it (logged at info, again
// without credentials) and becomes ready; SIGTERM still ends it with 0.
func TestCommandStartsWithoutNATS(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	port := natstest.FreePort(t)
	const password = "s3cret-pw"
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1", "--node-name", "cmd-nats",
		"--nats", fmt.Sprintf("nats://hub:%s@127.0.0.1:%d", password, port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	logs := &cmdLog{}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.add(sc.Bytes())
		}
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	var base string
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-exited:
			t.Fatalf("the command exited without NATS: %v\nstdout:\n%s\nstderr:\n%s", exitErr, logs, stderr.String())
		default:
		}
		if l := logs.find("info", "serving Bayeux"); l != nil {
			base = fmt.Sprintf("http://%v", l["addr"])
			return nil
		}
		return fmt.Errorf("no address logged yet")
	})
	if l := logs.find("warn", "NATS"); l == nil {
		t.Fatalf("no warning that NATS is unreachable:\n%s", logs)
	}
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/healthz"); s != http.StatusOK {
		t.Fatalf("/healthz without NATS: %d", s)
	}
	if s := status("/readyz"); s != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without NATS: %d", s)
	}
	c := &client{t: t, url: base + "/cometd", http: &http.Client{Timeout: 30 * time.Second}}
	c.start()
	if r := c.subscribe("/solo"); r["successful"] != true {
		t.Fatalf("subscribe without NATS: %v", r)
	}
	if r := c.publish("/solo", "alone"); r["successful"] != true {
		t.Fatalf("publish without NATS: %v", r)
	}
	if got := c.deliveries(1, 10*time.Second); len(got) != 1 || got[0]["data"] != "alone" {
		t.Fatalf("local delivery without NATS: %v", got)
	}

	natstest.Run(t, port)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if s := status("/readyz"); s != http.StatusOK {
			return fmt.Errorf("/readyz %d after NATS came up", s)
		}
		return nil
	})
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if logs.find("info", "joined NATS") == nil {
			return fmt.Errorf("no info line on joining NATS yet")
		}
		return nil
	})
	if l := logs.find("info", "joined NATS"); !strings.Contains(fmt.Sprint(l), fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Fatalf("the join line does not name the server: %v", l)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", exitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the command did not exit after SIGTERM")
	}
	if out := logs.String() + stderr.String(); strings.Contains(out, password) {
		t.Fatalf("the logs show the NATS password:\n%s", out)
	}
}
