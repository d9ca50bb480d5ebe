// Command hostile sends the hostile traffic of issue 15 to a bayeuxhub, at
// bounded rates, and counts what it sent and what the server answered. It
// is the hostile half of test/soak/run; the normal half is
// bayeuxhub-bench.
//
// Usage:
//
//	hostile --url http://127.0.0.1:8080/cometd [--duration 30m] [--workers 2]
//	        [--patterns nopoll,junkpost,...] [--json FILE] [--max-body 1048576]
//
// It refuses a --url whose host is not in 127.0.0.0/8, and sends each
// pattern from loopback source addresses of its own (127.0.P.x, P = 11 to
// 18 below), so that the server's per-address limits (sessions, pending
// sessions, subscriptions, bytes) apply to each pattern apart and never to
// the normal clients on 127.0.0.1. The patterns, each a loop that runs
// until --duration is over (W is --workers):
//
//	nopoll    127.0.11.x: 48*W sessions over 3*W addresses that handshake
//	          and subscribe to /hostile/nopoll and then never poll (half send
//	          a single /meta/connect first), while one publisher sends 60 KB
//	          messages there, 10 per second; each learns that the server
//	          ended it from a small publish once a second (402) and starts
//	          again; after 15 s alive it disconnects and starts again
//	junkpost  127.0.12.x: W loops, one POST every 2 s of [{},{},...] just
//	          under --max-body without a handshake; every 4th is 3 bytes over
//	          it (413 expected)
//	wsframes  127.0.13.x: W WebSocket peers that handshake, subscribe to
//	          /hostile/wsframes and connect, then never read, and send a
//	          frame every second: [{},{},...] of 1,000,000 bytes every
//	          4th, [{},{},...] just over --max-body every 8th, else 500
//	          publishes of 2 KB to /hostile/wsframes; a write that blocks 5 s or
//	          fails ends the peer, which dials again a second later
//	badutf8   127.0.14.x: W loops, 5 per second, raw FF FE bytes in a
//	          publish's data, in its ext, in a handshake, in a channel name,
//	          and in a publish over WebSocket
//	longchan  127.0.15.x: W loops, 2 per second: subscribe and publish to
//	          a 5,009-byte channel name, a 256,000-segment one (/a/a/...),
//	          and a 5,000-byte wildcard pattern
//	hsflood   127.0.16.1: W loops, 50 handshakes per second each, never
//	          connecting
//	manysubs  127.0.17.1: 4*W sessions (connect loop kept) that subscribe
//	          to 100 new distinct channels per request, one request per
//	          second each; a session refused 5 times in a row disconnects
//	          and a new one starts, with new names
//	noack     127.0.18.x: 2*W sessions that ask for the ack extension,
//	          subscribe to /hostile/noack and connect once a second without
//	          ever acknowledging, while a publisher sends 8 KB messages
//	          there, 10 per second
//
// At the end it prints, per pattern, how many of each request it sent and
// each answer: "ok", "bayeux NNN" (the Bayeux error code), "http NNN" (a
// status other than 200), "ws close NNNN", "error KIND" (timeout, reset,
// eof, refused, ...). --json writes the same counts as
// {"pattern":{"what":n}}. Errors after --duration ended are not counted.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// patterns in the order they run and print.
var patterns = []struct {
	name string
	run  func(ctx context.Context, h *hostile)
}{
	{"nopoll", runNoPoll},
	{"junkpost", runJunkPost},
	{"wsframes", runWSFrames},
	{"badutf8", runBadUTF8},
	{"longchan", runLongChan},
	{"hsflood", runHSFlood},
	{"manysubs", runManySubs},
	{"noack", runNoAck},
}

// hostile is the state the patterns share.
type hostile struct {
	url     string // Bayeux endpoint, http://127.x.x.x:port/cometd
	wsURL   string // the same as ws://
	workers int
	maxBody int
	counts  *counts
	clients sync.Map // source address -> *http.Client
}

// counts is what each pattern sent and what it was answered, by pattern
// and by a short description.
type counts struct {
	mu sync.Mutex
	m  map[string]map[string]int64
}

func (c *counts) add(pattern, what string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.m[pattern]
	if p == nil {
		p = map[string]int64{}
		c.m[pattern] = p
	}
	p[what] += n
}

// count adds one "what -> answer", unless ctx has ended (the answers to
// requests cut short by the end of the run are not the server's).
func (h *hostile) count(ctx context.Context, pattern, what, answer string) {
	if ctx.Err() == nil {
		h.counts.add(pattern, what+" -> "+answer, 1)
	}
}

func (c *counts) snapshot() map[string]map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]map[string]int64, len(c.m))
	for p, m := range c.m {
		out[p] = make(map[string]int64, len(m))
		for k, v := range m {
			out[p][k] = v
		}
	}
	return out
}

func main() {
	rawURL := flag.String("url", "http://127.0.0.1:8080/cometd", "Bayeux endpoint of the server (its host must be in 127.0.0.0/8)")
	duration := flag.Duration("duration", 30*time.Minute, "how long to send hostile traffic")
	workers := flag.Int("workers", 2, "concurrency of each pattern (see the package comment for what it scales)")
	only := flag.String("patterns", "", "comma-separated patterns to run (default: all of "+names()+")")
	jsonOut := flag.String("json", "", "also write the counts as JSON to this file")
	maxBody := flag.Int("max-body", 1<<20, "the server's --max-body, in bytes: junk bodies are sized just under and just over it")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: hostile --url http://127.0.0.1:PORT/cometd [flags]\n\nSends issue 15's hostile traffic to a loopback bayeuxhub (see go doc ./test/soak/hostile).\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fail("unexpected arguments %q", flag.Args())
	}
	if *workers < 1 || *duration <= 0 || *maxBody < 16 {
		fail("--workers must be at least 1, --duration positive, --max-body at least 16")
	}
	u, err := loopbackURL(*rawURL)
	if err != nil {
		fail("%v", err)
	}
	var run []string
	if *only == "" {
		run = strings.Split(names(), ",")
	} else {
		for _, p := range strings.Split(*only, ",") {
			p = strings.TrimSpace(p)
			if !strings.Contains(","+names()+",", ","+p+",") {
				fail("unknown pattern %q (have %s)", p, names())
			}
			run = append(run, p)
		}
	}

	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	h := &hostile{url: u.String(), wsURL: ws.String(), workers: *workers, maxBody: *maxBody,
		counts: &counts{m: map[string]map[string]int64{}}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	start := time.Now()
	fmt.Fprintf(os.Stderr, "hostile: %s for %s, %d workers, patterns %s\n", h.url, *duration, h.workers, strings.Join(run, ","))
	var wg sync.WaitGroup
	for _, p := range patterns {
		if slices.Contains(run, p.name) {
			wg.Add(1)
			go func() { defer wg.Done(); p.run(ctx, h) }()
		}
	}
	go progress(ctx, h, start)
	wg.Wait()

	snap := h.counts.snapshot()
	fmt.Printf("hostile traffic: %s, %d workers, %s\n", time.Since(start).Round(time.Second), h.workers, h.url)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "pattern\twhat\tcount\n")
	for _, p := range patterns {
		m := snap[p.name]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", p.name, k, m[k])
		}
	}
	tw.Flush()
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(snap, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fail("%v", err)
		}
	}
}

// progress prints one line a minute: the requests each pattern sent.
func progress(ctx context.Context, h *hostile, start time.Time) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := h.counts.snapshot()
		var b strings.Builder
		for _, p := range patterns {
			var n int64
			for k, v := range snap[p.name] {
				if strings.Contains(k, " -> ") {
					n += v
				}
			}
			if _, ok := snap[p.name]; ok {
				fmt.Fprintf(&b, " %s=%d", p.name, n)
			}
		}
		fmt.Fprintf(os.Stderr, "hostile: %s sent%s\n", time.Since(start).Round(time.Second), b.String())
	}
}

func names() string {
	var n []string
	for _, p := range patterns {
		n = append(n, p.name)
	}
	return strings.Join(n, ",")
}

// loopbackURL parses raw and refuses it unless every address of its host
// is in 127.0.0.0/8: the patterns bind loopback source addresses, and
// they are not to be pointed at anyone else's server.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--url: %v", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("--url: want an http:// URL, not %q", raw)
	}
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("--url: cannot resolve %q: %v", host, err)
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 == nil || v4[0] != 127 {
			return nil, fmt.Errorf("--url: %s is %s, not in 127.0.0.0/8: hostile traffic goes to loopback servers only", host, ip)
		}
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("--url: no port in %q", raw)
	}
	// Use the address itself, so that every request goes where it was checked.
	u.Host = net.JoinHostPort(ips[0].To4().String(), u.Port())
	return u, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hostile: "+format+"\n", args...)
	os.Exit(2)
}
