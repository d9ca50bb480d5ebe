package loadgen

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"time"
)

// Kind is what a scenario does.
type Kind string

// The kinds of run.
const (
	// KindPubSub runs publishers and long-poll subscribers and measures
	// throughput, latency and delivery accounting.
	KindPubSub Kind = "pubsub"
	// KindIdle holds long-polls open without traffic and measures the
	// server's memory per client.
	KindIdle Kind = "idle"
	// KindChurn loops handshake, subscribe, disconnect and measures
	// sessions per second.
	KindChurn Kind = "churn"
	// KindReach holds Subscribers clients on one channel (Channel) and
	// counts the deliveries of messages published there by someone else
	// (data {"ts": Unix ns}) until Hold ends or Expect messages reached
	// every client (reach.go).
	KindReach Kind = "reach"
	// KindReplay runs publishers and subscribers that drop their sessions
	// on a schedule and come back with the replay extension, resuming
	// after the last replay id they saw (replay.go); it measures what
	// they lost or got twice across the cuts and how long a replay takes.
	KindReplay Kind = "replay"
)

// How a replay-scenario subscriber drops its session (Config.ReplayDrop).
const (
	// DropDisconnect sends /meta/disconnect, as a client that closes.
	DropDisconnect = "disconnect"
	// DropAbandon stops connecting and closes its connections without a
	// word, as a client whose network went away: the server keeps the
	// session until its max interval runs out.
	DropAbandon = "abandon"
)

// The transports (Bayeux connection types) a run can use.
const (
	// TransportLongPolling is HTTP long-polling (Client).
	TransportLongPolling = "long-polling"
	// TransportWebSocket is the websocket connection type, one socket
	// per client (WSClient).
	TransportWebSocket = "websocket"
)

// How publishers pace themselves (Config.Loop).
const (
	// LoopOpen sends each publisher's message i at its scheduled time,
	// t0 + i/(rate per publisher), whatever the acknowledgements do, with
	// at most MaxInflight publishes unacknowledged per publisher; a
	// message's "ts" is its scheduled time, so latency is measured from
	// the schedule and a server that falls behind is not spared the time
	// its messages waited (no coordinated omission). The default when
	// Rate > 0.
	LoopOpen = "open"
	// LoopClosed has each publisher wait for the acknowledgement of a
	// publish before it sends the next; "ts" is the time it is sent. The
	// only loop for Rate 0 (as fast as acknowledgements allow).
	LoopClosed = "closed"
)

// LateThreshold is how far after its scheduled time a publish may be
// sent before it counts as late (Result.Late).
const LateThreshold = time.Millisecond

// Default in-flight bounds of an open-loop publisher (Config.MaxInflight).
const (
	// DefaultMaxInflightWS bounds the publishes a WebSocket publisher
	// has pipelined on its socket, unacknowledged.
	DefaultMaxInflightWS = 1000
	// DefaultMaxInflightLP is the number of concurrent publish requests
	// (goroutines and keep-alive connections) of a long-polling
	// publisher.
	DefaultMaxInflightLP = 16
)

// Config describes one load run. Zero values mean "none" except where
// noted; use Preset for a named scenario's defaults.
type Config struct {
	// URL is the server's Bayeux endpoint, e.g. http://127.0.0.1:8080/cometd.
	URL string `json:"url"`
	// Transport is the connection type the clients use:
	// TransportLongPolling (the default when empty) or TransportWebSocket;
	// empty with Hub.
	Transport string `json:"transport"`
	// Protocol is the client protocol: ProtocolBayeux (the default when
	// empty) or ProtocolCentrifugo (Centrifugo's JSON protocol over
	// WebSocket; URL is then its endpoint, ws://host:port/connection/websocket,
	// Transport is TransportWebSocket and channels are named bench_N).
	Protocol string `json:"protocol"`
	// Scenario is the preset's name, for the report only.
	Scenario string `json:"scenario"`
	Kind     Kind   `json:"kind"`
	// Subscribers is the number of long-polling subscriber clients
	// (idle: clients held; churn: concurrent workers).
	Subscribers int `json:"subscribers"`
	// Publishers is the number of publishing clients.
	Publishers int `json:"publishers"`
	// PublishersSubscribe makes the publishers the first Publishers
	// subscribers, as in CometD's chat benchmark, instead of clients of
	// their own: publisher j publishes from subscriber j's session (over
	// WebSocket on its socket), cycling over the channels it is
	// subscribed to, and gets its own messages back as every member of
	// those channels does.
	PublishersSubscribe bool `json:"publishers_subscribe"`
	// Rate is the total number of messages published per second, 0 for
	// as fast as acknowledgements allow.
	Rate float64 `json:"rate"`
	// Channels is the number of channels /bench/0 … /bench/N-1.
	Channels int `json:"channels"`
	// SubsPerClient is how many channels each subscriber subscribes to.
	SubsPerClient int `json:"subs_per_client"`
	// Size is the size in bytes of each message's whole data object, its
	// ts, pub and seq fields included (AppendData pads it to exactly
	// Size when that leaves room for the padding; below about 60 bytes
	// it is the fields alone, about 45 to 50 bytes).
	Size int `json:"size"`
	// Batch is the number of messages per publish request.
	Batch int `json:"batch"`
	// Loop is LoopOpen or LoopClosed; empty means LoopOpen when Rate > 0
	// and LoopClosed otherwise (Validate fills it in).
	Loop string `json:"loop"`
	// MaxInflight bounds the publish requests an open-loop publisher has
	// unacknowledged: pipelined on its socket (WebSocket,
	// DefaultMaxInflightWS when 0) or concurrent HTTP requests
	// (long-polling, DefaultMaxInflightLP when 0). A publish that finds
	// the bound reached waits for a slot and counts as late.
	MaxInflight int `json:"max_inflight"`
	// Duration is the measured window, after Warmup.
	Duration time.Duration `json:"duration_ns"`
	// Warmup runs load before the measured window; its latencies and
	// rates are not reported (its messages are still checked for loss).
	Warmup time.Duration `json:"warmup_ns"`
	// Drain bounds how long to wait for outstanding deliveries after the
	// last publish.
	Drain time.Duration `json:"drain_ns"`
	// MaxMessages is a hard bound on the messages published; 0 = none.
	MaxMessages int64 `json:"max_messages"`
	// ServerPID, when set, is the server process whose RSS and CPU are
	// reported.
	ServerPID int `json:"server_pid"`
	// ServerPIDs, when set, are all the server's processes (several hubs
	// joined by NATS): their RSS and CPU are summed. ServerPID is then
	// the first.
	ServerPIDs []int `json:"server_pids,omitempty"`
	// InProc tells the report that the server runs in this process, so
	// the tool's own CPU includes the server's.
	InProc bool `json:"inproc"`
	// LocalAddrs are source addresses the clients' TCP connections are
	// spread over, round robin, one connection after the other (HTTP
	// keep-alive connections, WebSockets, Centrifugo sockets): IPv4
	// addresses in 127.0.0.0/8, which Linux routes to lo with no setup,
	// to get past the ~28,000 ephemeral ports of one source address.
	LocalAddrs []string `json:"local_addrs,omitempty"`
	// SetupConcurrency bounds the handshakes and subscribes in flight
	// while clients are being set up; 0 means 256.
	SetupConcurrency int `json:"setup_concurrency"`
	// Progress, when set, receives a progress line every second.
	Progress io.Writer `json:"-"`
	// Hub, when set, is driven through its in-process client API instead
	// of HTTP (--local); URL is then only a label.
	Hub LocalHub `json:"-"`
	// Local tells the report that Hub was used.
	Local bool `json:"local"`

	// Channel is the reach scenario's channel (default /bench/reach,
	// bench_reach for Centrifugo).
	Channel string `json:"channel,omitempty"`
	// Hold is how long the reach scenario stays connected counting
	// deliveries after all clients are subscribed (default 60 s).
	Hold time.Duration `json:"hold_ns,omitempty"`
	// Expect, when positive, ends the reach scenario as soon as that many
	// messages reached every subscribed client.
	Expect int `json:"expect,omitempty"`
	// OnReady, when set, is called once in the reach scenario when every
	// client is set up, with the number subscribed.
	OnReady func(subscribed int) `json:"-"`

	// ReplayEvery is how often each subscriber of the replay scenario
	// drops its session (the subscribers' first drops are spread over the
	// first period); drops stop once one would not be back before the
	// measured window ends.
	ReplayEvery time.Duration `json:"replay_every_ns,omitempty"`
	// ReplayDown is how long a subscriber stays away after a drop before
	// it handshakes again and re-subscribes with its last replay id.
	ReplayDown time.Duration `json:"replay_down_ns,omitempty"`
	// ReplayDrop is how it drops: DropDisconnect (the default) or
	// DropAbandon.
	ReplayDrop string `json:"replay_drop,omitempty"`
	// HistorySize is the history size of the /bench/** channel rule the
	// server was started with (0: no history, or not known), for the
	// report only: the in-process server (--inproc) is configured with it;
	// for a server at URL it is what the caller says.
	HistorySize int `json:"history_size"`
}

var presets = map[string]Config{
	"publish": {Kind: KindPubSub, Subscribers: 0, Publishers: 64, Rate: 0, Channels: 1, SubsPerClient: 1},
	"fanout":  {Kind: KindPubSub, Subscribers: 1000, Publishers: 50, Rate: 1000, Channels: 1, SubsPerClient: 1},
	"fanout-latency": {Kind: KindPubSub, Subscribers: 1000, Publishers: 20, Rate: 200,
		Channels: 1, SubsPerClient: 1},
	"chat": {Kind: KindPubSub, Subscribers: 1000, Publishers: 100, Rate: 1000, Channels: 100, SubsPerClient: 10,
		Size: 50, PublishersSubscribe: true},
	"idle":  {Kind: KindIdle, Subscribers: 10000, Channels: 1, SubsPerClient: 1},
	"churn": {Kind: KindChurn, Subscribers: 32, Channels: 1, SubsPerClient: 1},
	"reach": {Kind: KindReach, Subscribers: 1000, Channels: 1, SubsPerClient: 1, Hold: 60 * time.Second},
	"replay": {Kind: KindReplay, Subscribers: 100, Publishers: 10, Rate: 1000, Channels: 1, SubsPerClient: 1,
		ReplayEvery: 5 * time.Second, ReplayDown: time.Second, ReplayDrop: DropDisconnect, HistorySize: 10000},
}

// Scenarios returns the names of the presets.
func Scenarios() []string {
	var n []string
	for k := range presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Preset returns the defaults of a named scenario. The rated scenarios
// run an open loop (Config.Loop); publish, at rate 0, a closed one. Data
// is 100 bytes unless said otherwise:
//
//	publish        64 publishers, 1 message per request, no subscribers, as fast as acks allow
//	fanout         1000 subscribers on one channel, 50 publishers, 1000 msg/s in total
//	fanout-latency 1000 subscribers on one channel, 20 publishers, 200 msg/s in total
//	chat           CometD's published benchmark: 1000 clients in 10 of 100 rooms each,
//	               10 msg/s per room (1000 msg/s in total), 50-byte data; the first
//	               100 clients publish (10 msg/s each, over their own rooms)
//	idle           10000 long-polls held idle
//	reach          1000 clients on /bench/reach, held 60 s, counting deliveries of
//	               messages someone else publishes there with data {"ts": Unix ns}
//	churn          32 workers looping handshake, subscribe, disconnect
//	replay         100 subscribers on one channel with history, 10 publishers, 1000 msg/s in total;
//	               every 5 s each subscriber drops its session, stays away 1 s and comes
//	               back with the replay extension from its last replay id
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(Scenarios(), ", "))
	}
	c.Scenario = name
	if c.Size == 0 {
		c.Size = 100
	}
	c.Batch = 1
	c.Duration = 30 * time.Second
	c.Warmup = 5 * time.Second
	c.Drain = 10 * time.Second
	return c, nil
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if c.URL == "" && c.Hub == nil {
		return fmt.Errorf("no server URL")
	}
	c.Local = c.Hub != nil
	if c.Protocol == ProtocolCentrifugo && c.Transport == "" {
		c.Transport = TransportWebSocket
	}
	switch c.Transport {
	case "":
		if c.Hub == nil {
			c.Transport = TransportLongPolling
		}
	case TransportLongPolling, TransportWebSocket:
		if c.Hub != nil {
			return fmt.Errorf("the local client API has no transport (%s)", c.Transport)
		}
	default:
		return fmt.Errorf("unknown transport %q (want %s or %s)", c.Transport, TransportLongPolling, TransportWebSocket)
	}
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolBayeux
	case ProtocolBayeux:
	case ProtocolCentrifugo:
		switch {
		case c.Hub != nil:
			return fmt.Errorf("the centrifugo protocol drives a Centrifugo server at --url, not a local hub")
		case c.Transport == TransportLongPolling:
			return fmt.Errorf("the centrifugo driver speaks WebSocket only, not %s", c.Transport)
		case c.Kind == KindReplay:
			return fmt.Errorf("the replay scenario is Bayeux's (ext.replay): not with the centrifugo protocol")
		}
		c.Transport = TransportWebSocket
	default:
		return fmt.Errorf("unknown protocol %q (want %s or %s)", c.Protocol, ProtocolBayeux, ProtocolCentrifugo)
	}
	if c.Kind == "" {
		c.Kind = KindPubSub
	}
	if c.Channels < 1 {
		c.Channels = 1
	}
	if c.SubsPerClient < 1 {
		c.SubsPerClient = 1
	}
	if c.SubsPerClient > c.Channels {
		c.SubsPerClient = c.Channels
	}
	if c.Batch < 1 {
		c.Batch = 1
	}
	if c.SetupConcurrency <= 0 {
		c.SetupConcurrency = 256
	}
	if _, err := ParseLocalAddrs(c.LocalAddrs); err != nil {
		return err
	}
	if len(c.LocalAddrs) > 0 && c.Hub != nil {
		return fmt.Errorf("local addresses need a server at a URL, not the local client API")
	}
	switch c.Loop {
	case "":
		c.Loop = LoopClosed
		if c.Rate > 0 {
			c.Loop = LoopOpen
		}
	case LoopClosed:
	case LoopOpen:
		if c.Rate <= 0 {
			return fmt.Errorf("an open loop needs a rate (--rate > 0): with rate 0 publishers go as fast as acknowledgements allow, which is a closed loop")
		}
	default:
		return fmt.Errorf("unknown loop %q (want %s or %s)", c.Loop, LoopOpen, LoopClosed)
	}
	if c.MaxInflight < 0 {
		return fmt.Errorf("negative max in flight")
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflightWS
		if c.Transport == TransportLongPolling {
			c.MaxInflight = DefaultMaxInflightLP
		}
	}
	if c.Kind == KindReach {
		if c.Hold <= 0 {
			c.Hold = 60 * time.Second
		}
		c.Duration = c.Hold
	}
	if c.Subscribers < 0 || c.Publishers < 0 || c.Rate < 0 || c.Duration <= 0 {
		return fmt.Errorf("negative counts or non-positive duration")
	}
	if (c.Kind == KindPubSub || c.Kind == KindReplay) && c.Publishers == 0 {
		return fmt.Errorf("scenario needs at least one publisher")
	}
	if c.PublishersSubscribe && c.Kind == KindPubSub && c.Publishers > c.Subscribers {
		return fmt.Errorf("publishers that subscribe: %d publishers but only %d subscribers", c.Publishers, c.Subscribers)
	}
	if c.Kind != KindPubSub {
		c.PublishersSubscribe = false
	}
	if c.Kind == KindReplay {
		switch {
		case c.Hub != nil:
			return fmt.Errorf("the replay scenario needs a remote transport: the local client API has no replay")
		case c.Subscribers == 0:
			return fmt.Errorf("the replay scenario needs --subscribers > 0")
		case c.ReplayDown < 0:
			return fmt.Errorf("negative replay down time")
		}
		if c.ReplayEvery <= 0 {
			c.ReplayEvery = 5 * time.Second
		}
		switch c.ReplayDrop {
		case "":
			c.ReplayDrop = DropDisconnect
		case DropDisconnect, DropAbandon:
		default:
			return fmt.Errorf("unknown replay drop %q (want %s or %s)", c.ReplayDrop, DropDisconnect, DropAbandon)
		}
	}
	if len(c.ServerPIDs) > 0 {
		c.ServerPID = c.ServerPIDs[0]
	}
	if c.Kind == KindReach {
		if c.Hub != nil {
			return fmt.Errorf("the reach scenario needs a server at a URL")
		}
		if c.Expect < 0 {
			return fmt.Errorf("negative --expect")
		}
		if c.Channel == "" {
			c.Channel = "/bench/reach"
			if c.Protocol == ProtocolCentrifugo {
				c.Channel = "bench_reach"
			}
		}
		c.Channels, c.SubsPerClient, c.Publishers, c.Rate, c.Warmup = 1, 1, 0, 0, 0
		c.PublishersSubscribe = false
	}
	if (c.Kind == KindIdle || c.Kind == KindChurn || c.Kind == KindReach) && c.Subscribers == 0 {
		return fmt.Errorf("scenario needs --subscribers > 0")
	}
	return nil
}

// ParseLocalAddrs parses source addresses for Config.LocalAddrs: IPv4
// addresses in 127.0.0.0/8 only.
func ParseLocalAddrs(addrs []string) ([]net.IP, error) {
	var ips []net.IP
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		ip := net.ParseIP(a).To4()
		if ip == nil || ip[0] != 127 {
			return nil, fmt.Errorf("local address %q: only IPv4 loopback addresses (127.0.0.0/8) may be source addresses", a)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// ChannelName returns the name of Bayeux channel i, /bench/i.
func ChannelName(i int) string { return fmt.Sprintf("/bench/%d", i) }

// ChannelName returns the name of channel i in the run's protocol:
// /bench/i for Bayeux, bench_i for Centrifugo (a channel without a
// namespace).
func (c *Config) ChannelName(i int) string {
	if c.Kind == KindReach {
		return c.Channel
	}
	if c.Protocol == ProtocolCentrifugo {
		return fmt.Sprintf("bench_%d", i)
	}
	return ChannelName(i)
}

// channelIndex parses "/bench/N" or "bench_N"; it returns -1 for any
// other name.
func channelIndex(b []byte) int {
	p := "/bench/"
	if len(b) > 0 && b[0] == 'b' {
		p = "bench_"
	}
	if len(b) <= len(p) || string(b[:len(p)]) != p {
		return -1
	}
	n := 0
	for _, c := range b[len(p):] {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// SubscriberChannels returns the channel indices subscriber i subscribes
// to: SubsPerClient channels spread evenly over all channels, so that
// every channel gets about the same number of members.
func (c *Config) SubscriberChannels(i int) []int {
	k := min(c.SubsPerClient, c.Channels)
	stride := max(c.Channels/k, 1)
	out := make([]int, 0, k)
	for j := range k {
		ch := (i + j*stride) % c.Channels
		for slices.Contains(out, ch) {
			ch = (ch + 1) % c.Channels
		}
		out = append(out, ch)
	}
	return out
}
