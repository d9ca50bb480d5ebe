package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTenThousandLongPollsInASeparateProcess holds MANY_CLIENTS (default
// 10,000) long polls on a bayeuxhub running as its own process, for
// MANY_HOLD (default 5 s; the one-minute run is MANY_HOLD=60s), then
// publishes one message to each of 100 channels and checks every client
// gets exactly its own. The server runs apart from the test so that each
// process stays under this machine's limit of 20,000 open files. It logs
// the server's RSS per held client.
func TestTenThousandLongPollsInASeparateProcess(t *testing.T) {
	// Not parallel: 10,000 connections and their file descriptors.
	clients := faultEnvInt(t, "MANY_CLIENTS", 10000)
	hold := faultEnvDuration(t, "MANY_HOLD", 5*time.Second)
	const channels = 100
	if got := faultRaiseNofile(t, uint64(clients+1000)); got < uint64(clients+1000) {
		t.Skipf("RLIMIT_NOFILE is %d; %d clients need %d", got, clients, clients+1000)
	}
	bin := buildCommand(t)
	cmd := exec.Command(bin, "--port", "0", "--bind", "127.0.0.1", "--metrics", "--max-sessions-per-ip", "-1",
		"--poll-timeout", "10m", "--connect-timeout", "15m")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct{ Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Addr != "" && !strings.Contains(sc.Text(), "pprof") {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("server did not report its address")
	}
	rssBefore := procRSS(cmd.Process.Pid)

	tr := &http.Transport{MaxIdleConnsPerHost: clients + 10, MaxIdleConns: 0, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	post := func(body string) ([]msg, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/cometd", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out []msg
		err = json.NewDecoder(resp.Body).Decode(&out)
		return out, err
	}
	handshake := `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`

	var failures atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if failures.Add(1) == 1 {
			firstErr.Store(err)
		}
	}
	got := make([]string, clients)
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			r, err := post(handshake)
			if err != nil || len(r) != 1 || r[0]["successful"] != true {
				<-sem
				fail(fmt.Errorf("handshake %d: %v %v", i, err, r))
				return
			}
			id := r[0]["clientId"].(string)
			ch := fmt.Sprintf("/many/%d", i%channels)
			setup := fmt.Sprintf(`[{"channel":"/meta/subscribe","clientId":%q,"subscription":%q},{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, id, ch, id)
			if r, err = post(setup); err != nil || len(r) != 2 || r[0]["successful"] != true {
				<-sem
				fail(fmt.Errorf("subscribe %d: %v %v", i, err, r))
				return
			}
			<-sem
			r, err = post(fmt.Sprintf(`[{"channel":"/meta/connect","clientId":%q,"connectionType":"long-polling"}]`, id))
			if err != nil {
				fail(fmt.Errorf("held connect %d: %v", i, err))
				return
			}
			for _, m := range r {
				if m["channel"] == ch {
					got[i] += fmt.Sprint(m["data"])
				}
			}
		})
	}
	metric := func(name string) (float64, error) { return commandMetric(base, name) }
	checkFor(t, 5*time.Minute, 100*time.Millisecond, func() error {
		if f := failures.Load(); f > 0 {
			t.Fatalf("%d clients failed; first: %v", f, firstErr.Load())
		}
		held, err := metric("bayeuxhub_connects_held")
		if err != nil {
			return err
		}
		if int(held) < clients {
			return fmt.Errorf("%v of %d connects held", held, clients)
		}
		return nil
	})
	established := time.Since(start)
	rssHeld := procRSS(cmd.Process.Pid)
	t.Logf("%d long polls held after %v; server RSS %d MiB before, %d MiB held: %.1f KiB per client",
		clients, established.Round(time.Millisecond), rssBefore>>20, rssHeld>>20, float64(rssHeld-rssBefore)/1024/float64(clients))

	time.Sleep(hold) // the point of the test: hold them
	if held, err := metric("bayeuxhub_connects_held"); err != nil || int(held) < clients {
		t.Fatalf("after holding %v: %v connects held (%v)", hold, held, err)
	}
	r, err := post(handshake)
	if err != nil {
		t.Fatal(err)
	}
	pub := r[0]["clientId"].(string)
	var batch []string
	for c := range channels {
		batch = append(batch, fmt.Sprintf(`{"channel":"/many/%d","clientId":%q,"data":"m%d"}`, c, pub, c))
	}
	published := time.Now()
	if r, err := post("[" + strings.Join(batch, ",") + "]"); err != nil || len(r) != channels {
		t.Fatalf("publish: %v %v", err, r)
	}
	wg.Wait()
	t.Logf("one message to each of %d channels reached all %d clients in %v", channels, clients, time.Since(published).Round(time.Millisecond))
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d clients failed; first: %v", f, firstErr.Load())
	}
	for i, g := range got {
		if want := fmt.Sprintf("m%d", i%channels); g != want {
			t.Fatalf("client %d got %q, want %q", i, g, want)
		}
	}
}

// procRSS returns a process's resident set size in bytes, or 0.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
