// Command load drives hubs joined through NATS over HTTP long-polling:
// subscribers and publishers are spread round-robin over the hub URLs, all
// on one channel, and it reports deliveries per second, end-to-end latency
// percentiles and exact delivery accounting (lost, duplicated, out of
// order per publisher) as one JSON object. test/cluster/run uses it.
//
//	load --urls http://127.0.0.1:8081/cometd,http://127.0.0.1:8082/cometd --subscribers 300 --publishers 6 --rate 300 --duration 10s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type message = map[string]any

type client struct {
	url  string
	http *http.Client
	id   string
}

func (c *client) post(ctx context.Context, msgs ...message) ([]message, error) {
	body, err := json.Marshal(msgs)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []message
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode reply (HTTP %d): %w", resp.StatusCode, err)
	}
	return out, nil
}

func (c *client) start(ctx context.Context) error {
	r, err := c.post(ctx, message{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if err != nil {
		return err
	}
	if len(r) != 1 || r[0]["successful"] != true {
		return fmt.Errorf("handshake: %v", r)
	}
	c.id = r[0]["clientId"].(string)
	_, err = c.post(ctx, message{"channel": "/meta/connect", "clientId": c.id, "connectionType": "long-polling"})
	return err
}

// payload is the data of a benchmark message.
type payload struct {
	P int    `json:"p"` // publisher
	S int    `json:"s"` // its sequence number, from 1; 0 for probes
	T int64  `json:"t"` // send time, Unix ns
	X string `json:"x,omitempty"`
}

type subscriber struct {
	client
	last     map[int]int
	got      atomic.Int64
	probed   atomic.Bool
	lat      []time.Duration
	dup, ooo int
}

func main() {
	urls := flag.String("urls", "", "comma-separated Bayeux endpoints of the hubs")
	subs := flag.Int("subscribers", 300, "long-polling subscribers, spread over the hubs")
	pubs := flag.Int("publishers", 6, "publishers, spread over the hubs")
	rate := flag.Float64("rate", 300, "messages published per second in total")
	dur := flag.Duration("duration", 10*time.Second, "publishing time")
	size := flag.Int("size", 64, "approximate data size in bytes")
	flag.Parse()
	hubs := strings.Split(*urls, ",")
	if *urls == "" || *subs < 1 || *pubs < 1 || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "load: --urls, --subscribers, --publishers and --rate are required")
		os.Exit(2)
	}
	if err := run(hubs, *subs, *pubs, *rate, *dur, *size); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(hubs []string, nSubs, nPubs int, rate float64, dur time.Duration, size int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nSubs + nPubs + 16}, Timeout: 90 * time.Second}
	subs := make([]*subscriber, nSubs)
	for i := range subs {
		s := &subscriber{client: client{url: hubs[i%len(hubs)], http: hc}, last: map[int]int{}}
		if err := s.start(ctx); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		r, err := s.post(ctx, message{"channel": "/meta/subscribe", "clientId": s.id, "subscription": "/bench"})
		if err != nil || len(r) != 1 || r[0]["successful"] != true {
			return fmt.Errorf("subscribe %d: %v %v", i, r, err)
		}
		subs[i] = s
	}
	pubsC := make([]*client, nPubs)
	for i := range pubsC {
		pubsC[i] = &client{url: hubs[i%len(hubs)], http: hc}
		if err := pubsC[i].start(ctx); err != nil {
			return fmt.Errorf("publisher %d: %w", i, err)
		}
	}

	var wg sync.WaitGroup
	measuring := atomic.Bool{}
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r, err := s.post(ctx, message{"channel": "/meta/connect", "clientId": s.id, "connectionType": "long-polling"})
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				for _, m := range r {
					if m["channel"] != "/bench" {
						continue
					}
					raw, _ := json.Marshal(m["data"])
					var p payload
					if json.Unmarshal(raw, &p) != nil {
						continue
					}
					if p.S == 0 {
						s.probed.Store(true)
						continue
					}
					switch last := s.last[p.P]; {
					case p.S == last:
						s.dup++
					case p.S < last:
						s.ooo++
					default:
						s.last[p.P] = p.S
					}
					s.got.Add(1)
					if measuring.Load() {
						s.lat = append(s.lat, time.Duration(now-p.T))
					}
				}
			}
		}()
	}

	// Probe until every subscriber has heard from every hub's publisher:
	// subscriptions have reached NATS and the routes between its servers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := true
		for _, s := range subs {
			if !s.probed.Load() {
				all = false
				break
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("subscribers did not hear the probes within 20 s")
		}
		for i := range min(len(pubsC), len(hubs)) {
			if _, err := pubsC[i].post(ctx, message{"channel": "/bench", "clientId": pubsC[i].id, "data": payload{P: i}}); err != nil {
				return err
			}
		}
		time.Sleep(50 * time.Millisecond) // probe pacing, not synchronisation
	}
	for _, s := range subs { // a probe from one hub is not a probe from all
		s.probed.Store(false)
	}
	for i := range min(len(pubsC), len(hubs)) {
		if _, err := pubsC[i].post(ctx, message{"channel": "/bench", "clientId": pubsC[i].id, "data": payload{P: i}}); err != nil {
			return err
		}
	}

	measuring.Store(true)
	pad := strings.Repeat("x", max(0, size-48))
	var published atomic.Int64
	start := time.Now()
	var pwg sync.WaitGroup
	per := rate / float64(nPubs)
	for i, pc := range pubsC {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			tick := time.NewTicker(time.Duration(float64(time.Second) / per))
			defer tick.Stop()
			end := time.After(dur)
			for seq := 1; ; seq++ {
				select {
				case <-end:
					return
				case <-tick.C:
				}
				p := payload{P: i, S: seq, T: time.Now().UnixNano(), X: pad}
				r, err := pc.post(ctx, message{"channel": "/bench", "clientId": pc.id, "data": p})
				if err != nil || len(r) == 0 || r[0]["successful"] != true {
					fmt.Fprintf(os.Stderr, "load: publish failed: %v %v\n", r, err)
					return
				}
				published.Add(1)
			}
		}()
	}
	pwg.Wait()
	elapsed := time.Since(start)
	want := published.Load() * int64(nSubs)
	drainEnd := time.Now().Add(10 * time.Second)
	for time.Now().Before(drainEnd) {
		var got int64
		for _, s := range subs {
			got += s.got.Load()
		}
		if got >= want {
			break
		}
		time.Sleep(20 * time.Millisecond) // drain polling
	}
	deliveredAt := time.Since(start)
	cancel()
	wg.Wait()

	var lat []time.Duration
	var got, dup, ooo int64
	for _, s := range subs {
		lat = append(lat, s.lat...)
		got += s.got.Load()
		dup += int64(s.dup)
		ooo += int64(s.ooo)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	out := map[string]any{
		"hubs": len(hubs), "subscribers": nSubs, "publishers": nPubs, "rate": rate,
		"published": published.Load(), "expected": want, "delivered": got,
		"lost": want - (got - dup), "duplicates": dup, "out_of_order": ooo,
		"deliveries_per_s": float64(got) / deliveredAt.Seconds(),
		"publish_s":        elapsed.Seconds(),
		"p50_ms":           pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1),
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
