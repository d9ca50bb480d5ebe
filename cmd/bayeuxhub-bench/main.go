// Command bayeuxhub-bench drives any Bayeux 1.0 server (bayeuxhub, Faye,
// CometD) over HTTP long-polling, or over WebSocket (--transport
// websocket, one socket per client), with real Bayeux clients, or a
// Centrifugo server with its own JSON protocol (--protocol centrifugo),
// and reports
// throughput, end-to-end latency, exact delivery accounting (lost,
// duplicated, out of order), session churn and server memory.
//
// Examples:
//
//	bayeuxhub-bench --url http://127.0.0.1:8080/cometd --scenario fanout --duration 20s
//	bayeuxhub-bench --url http://127.0.0.1:8080/cometd --scenario chat --json > chat.json
//	bayeuxhub-bench --url http://127.0.0.1:8080/cometd --scenario fanout --transport websocket
//	bayeuxhub-bench --url http://127.0.0.1:8080/cometd --scenario idle --server-pid 1234
//	bayeuxhub-bench --inproc --scenario publish --html report.html
//	bayeuxhub-bench --local --scenario fanout --rate 0 --max-messages 20000
//	bayeuxhub-bench --inproc --scenario replay --duration 10s --transport websocket
//	bayeuxhub-bench --inproc --scenario fanout --history-size 1000
//	bayeuxhub-bench --protocol centrifugo --url ws://127.0.0.1:8000/connection/websocket --scenario chat
//	bayeuxhub-bench --url http://127.0.0.1:8080/cometd --scenario reach --subscribers 19000 --hold 60s --expect 1 \
//	    --local-addrs 127.0.0.2,127.0.0.3 --server-pid 1234,1235 --json   # prints READY <n> on stderr
//	bayeuxhub-bench report --out BENCHMARKS.md results/   # see run_report.go
//
// Every explicit flag overrides the scenario preset. Load goes to loopback
// hosts only unless --allow-remote is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bayeuxhub/bayeuxhub/internal/loadgen"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := reportMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bayeuxhub-bench report:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bayeuxhub-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("bayeuxhub-bench", flag.ExitOnError)
	var (
		urlFlag     = fs.String("url", "", "Bayeux endpoint, e.g. http://127.0.0.1:8080/cometd")
		scenario    = fs.String("scenario", "fanout", "preset: "+strings.Join(loadgen.Scenarios(), ", "))
		transport   = fs.String("transport", loadgen.TransportLongPolling, "Bayeux connection type: "+loadgen.TransportLongPolling+" or "+loadgen.TransportWebSocket+" (one socket per client, on the same --url)")
		protocol    = fs.String("protocol", loadgen.ProtocolBayeux, "client protocol: "+loadgen.ProtocolBayeux+", or "+loadgen.ProtocolCentrifugo+" (Centrifugo's JSON protocol over WebSocket: --url is its endpoint, ws://127.0.0.1:8000/connection/websocket; channels bench_N; the server must let anonymous clients connect, subscribe and publish on channels without a namespace, e.g. {\"client\":{\"insecure\":true}}; no replay scenario)")
		subscribers = fs.Int("subscribers", 0, "long-poll subscribers (idle: clients held; churn: workers)")
		publishers  = fs.Int("publishers", 0, "publishing clients")
		pubsSub     = fs.Bool("publishers-subscribe", false, "the publishers are the first --publishers subscribers, each publishing over its own rooms, as in CometD's chat benchmark (the chat preset's default; --publishers-subscribe=false for separate publishing clients)")
		rate        = fs.Float64("rate", 0, "messages published per second in total; 0 = as fast as acks allow (closed loop)")
		channels    = fs.Int("channels", 0, "number of channels /bench/0..N-1")
		subsPer     = fs.Int("subs-per-client", 0, "channels each subscriber subscribes to")
		size        = fs.Int("size", 0, "size in bytes of each message's whole data object, its ts/pub/seq fields included (padded; never less than those fields, about 45-50 bytes)")
		batch       = fs.Int("batch", 0, "messages per publish request")
		loop        = fs.String("loop", "", "how publishers pace themselves: "+loadgen.LoopOpen+" (the default with --rate > 0: message i of a publisher is sent at its scheduled time whatever the acknowledgements do, its \"ts\" is that time, so latency counts from the schedule; a publish sent more than 1ms late, because --max-inflight was reached or the generator fell behind, counts as late) or "+loadgen.LoopClosed+" (each publisher waits for its acknowledgement; the only loop for --rate 0)")
		maxInflight = fs.Int("max-inflight", 0, fmt.Sprintf("open loop: publish requests a publisher may have unacknowledged: pipelined on its socket over WebSocket (default %d), concurrent HTTP requests over long-polling (default %d)", loadgen.DefaultMaxInflightWS, loadgen.DefaultMaxInflightLP))
		duration    = fs.Duration("duration", 0, "measured window")
		warmup      = fs.Duration("warmup", 0, "load before the measured window")
		drain       = fs.Duration("drain", 0, "longest wait for outstanding deliveries after publishing stops")
		maxMsgs     = fs.Int64("max-messages", 0, "hard bound on messages published (0 = none)")
		serverPID   = fs.String("server-pid", "", "server process whose RSS and CPU to report; a comma-separated list (several hubs) sums them")
		channel     = fs.String("channel", "", "reach scenario: the channel every client subscribes to (default /bench/reach; bench_reach with --protocol centrifugo)")
		hold        = fs.Duration("hold", 0, "reach scenario: how long to stay connected counting deliveries once every client is subscribed (default 60s)")
		expect      = fs.Int("expect", 0, "reach scenario: end as soon as this many messages reached every client (0: wait for --hold)")
		setupConc   = fs.Int("setup-concurrency", 0, "handshakes/subscribes in flight during setup (default 256)")
		localAddrs  = fs.String("local-addrs", "", "comma-separated source addresses, e.g. 127.0.0.2,127.0.0.3: the clients' TCP connections (long-polling, WebSocket, Centrifugo) are spread over them round robin; 127.0.0.0/8 only (Linux routes it all to lo), to get past one address's ~28,000 ephemeral ports")
		jsonOut     = fs.Bool("json", false, "print one JSON object instead of the summary table")
		htmlOut     = fs.String("html", "", "write a self-contained HTML report to `FILE`")
		inproc      = fs.Bool("inproc", false, "start a bayeuxhub server in this process when --url is empty")
		local       = fs.Bool("local", false, "start a bayeuxhub in this process and drive its local client API (no HTTP)")
		allowRemote = fs.Bool("allow-remote", false, "allow a non-loopback --url")
		quiet       = fs.Bool("quiet", false, "no progress line on stderr")
		cpuProfile  = fs.String("cpuprofile", "", "write the load tool's own CPU profile to `FILE`")
		replayEvery = fs.Duration("replay-every", 0, "replay scenario: how often each subscriber drops its session (default 5s)")
		replayDown  = fs.Duration("replay-down", 0, "replay scenario: how long a subscriber stays away before it comes back with its last replay id (default 1s)")
		replayDrop  = fs.String("replay-drop", "", "replay scenario: how a subscriber drops: "+loadgen.DropDisconnect+" (sends /meta/disconnect) or "+loadgen.DropAbandon+" (closes its connections; the server expires the session after its max interval)")
		historySize = fs.Int("history-size", 0, "history size of the /bench/** channel rule: configures the --inproc / --local server (replay scenario default 10000, others 0 = no history); with --url, only recorded in the report as what that server runs with")
		maxInterval = fs.Duration("max-interval", 0, "the --inproc / --local server's max interval (how long a session lives without a connect; default the hub's 10s)")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bayeuxhub-bench [flags]\n       bayeuxhub-bench report [--out FILE] [--header FILE] [--ws-compare DIR] DIR\n\nFlags:\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	cfg, err := loadgen.Preset(*scenario)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["subscribers"] {
		cfg.Subscribers = *subscribers
	}
	if set["publishers"] {
		cfg.Publishers = *publishers
	}
	if set["publishers-subscribe"] {
		cfg.PublishersSubscribe = *pubsSub
	}
	if set["rate"] {
		cfg.Rate = *rate
	}
	if set["channels"] {
		cfg.Channels = *channels
	}
	if set["subs-per-client"] {
		cfg.SubsPerClient = *subsPer
	}
	if set["size"] {
		cfg.Size = *size
	}
	if set["batch"] {
		cfg.Batch = *batch
	}
	if set["duration"] {
		cfg.Duration = *duration
	}
	if set["loop"] {
		cfg.Loop = *loop
	}
	if set["max-inflight"] {
		cfg.MaxInflight = *maxInflight
	}
	if set["warmup"] {
		cfg.Warmup = *warmup
	}
	if set["drain"] {
		cfg.Drain = *drain
	}
	if set["replay-every"] {
		cfg.ReplayEvery = *replayEvery
	}
	if set["replay-down"] {
		cfg.ReplayDown = *replayDown
	}
	if set["replay-drop"] {
		cfg.ReplayDrop = *replayDrop
	}
	if set["history-size"] {
		if *historySize < 0 {
			return fmt.Errorf("--history-size %d: must not be negative", *historySize)
		}
		cfg.HistorySize = *historySize
	} else if *urlFlag != "" {
		cfg.HistorySize = 0 // the server's own, not known here
	}
	cfg.MaxMessages = *maxMsgs
	cfg.Transport = *transport
	if *transport != loadgen.TransportLongPolling && *transport != loadgen.TransportWebSocket {
		return fmt.Errorf("--transport %q: want %s or %s", *transport, loadgen.TransportLongPolling, loadgen.TransportWebSocket)
	}
	cfg.Protocol = *protocol
	switch *protocol {
	case loadgen.ProtocolBayeux:
	case loadgen.ProtocolCentrifugo:
		if set["transport"] && *transport != loadgen.TransportWebSocket {
			return fmt.Errorf("--protocol centrifugo speaks WebSocket only (not --transport %s)", *transport)
		}
		if *local || *inproc {
			return errors.New("--protocol centrifugo drives a Centrifugo server at --url, not --inproc / --local")
		}
		cfg.Transport = loadgen.TransportWebSocket
	default:
		return fmt.Errorf("--protocol %q: want %s or %s", *protocol, loadgen.ProtocolBayeux, loadgen.ProtocolCentrifugo)
	}
	if *local && set["transport"] {
		return errors.New("--local drives the hub's local client API, which has no --transport")
	}
	if *local {
		cfg.Transport = ""
	}
	if *serverPID != "" {
		for f := range strings.SplitSeq(*serverPID, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return fmt.Errorf("--server-pid %q: want a PID or a comma-separated list of PIDs", *serverPID)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
		}
		cfg.ServerPID = cfg.ServerPIDs[0]
		if len(cfg.ServerPIDs) == 1 {
			cfg.ServerPIDs = nil
		}
	}
	if set["channel"] {
		cfg.Channel = *channel
	}
	if set["hold"] {
		cfg.Hold = *hold
	}
	if set["expect"] {
		cfg.Expect = *expect
	}
	if cfg.Kind == loadgen.KindReach {
		if !set["transport"] {
			cfg.Transport = loadgen.TransportWebSocket
		}
		cfg.OnReady = func(n int) {
			// One line for the script that waits for it; stderr is
			// unbuffered.
			fmt.Fprintf(os.Stderr, "READY %d\n", n)
		}
	}
	cfg.SetupConcurrency = *setupConc
	if *localAddrs != "" {
		cfg.LocalAddrs = strings.Split(*localAddrs, ",")
		if _, err := loadgen.ParseLocalAddrs(cfg.LocalAddrs); err != nil {
			return fmt.Errorf("--local-addrs: %w", err)
		}
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.URL = *urlFlag
	if *local && cfg.URL != "" {
		return errors.New("--local drives an in-process hub: leave --url empty")
	}
	if cfg.URL == "" {
		if !*inproc && !*local {
			return errors.New("--url is required (or --inproc / --local to start a bayeuxhub in this process)")
		}
		srv, err := startInProc(cfg.HistorySize, *maxInterval)
		if err != nil {
			return fmt.Errorf("in-process server: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = srv.stop(sctx)
		}()
		cfg.URL = srv.url
		cfg.InProc = true
		cfg.ServerPID, cfg.ServerPIDs = os.Getpid(), nil
		if *local {
			cfg.Hub = localHub{srv.hub}
			cfg.URL = "local:" + srv.url
			fmt.Fprintln(os.Stderr, "bayeuxhub-bench: driving an in-process hub through its local client API")
		} else {
			fmt.Fprintln(os.Stderr, "bayeuxhub-bench: in-process bayeuxhub at", srv.url)
		}
		if cfg.HistorySize > 0 {
			fmt.Fprintf(os.Stderr, "bayeuxhub-bench: history of %d messages per channel on /bench/**\n", cfg.HistorySize)
		}
	}
	if cfg.Hub == nil {
		if err := checkLoopback(cfg.URL, *allowRemote, cfg.Protocol == loadgen.ProtocolCentrifugo); err != nil {
			return err
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *htmlOut != "" {
		f, err := os.Create(*htmlOut)
		if err != nil {
			return err
		}
		if err := res.WriteHTML(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		return enc.Encode(res)
	}
	res.WriteSummary(os.Stdout)
	return nil
}

// checkLoopback refuses URLs whose host is not a loopback address, and
// schemes other than http:// (ws:// for a Centrifugo endpoint, ws).
func checkLoopback(raw string, allowRemote, ws bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad --url: %w", err)
	}
	switch {
	case ws && u.Scheme != "ws" && u.Scheme != "http":
		return fmt.Errorf("bad --url %q: want ws://host:port/connection/websocket", raw)
	case !ws && u.Scheme != "http":
		return fmt.Errorf("bad --url %q: only http:// is supported", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing non-loopback host %q (use --allow-remote to load a remote server)", host)
}
