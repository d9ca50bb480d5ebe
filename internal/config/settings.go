// Package config reads the bayeuxhub command's configuration: its flags,
// the same settings as BAYEUXHUB_* environment variables, and a YAML
// file (--config) that can hold every flag and the channel rules.
// Precedence is flag, then environment, then file, then default. Unknown
// keys and values of the wrong type stop the start with an error naming
// the key and its line.
package config

import (
	"time"

	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/protocol"
	"github.com/bayeuxhub/bayeuxhub/transport"
)

// Settings is the effective configuration. Each field tagged flag is a
// command-line flag of that name, an environment variable BAYEUXHUB_<NAME>
// (upper case, dashes as underscores) and a top-level key of the file;
// fields tagged secret are masked by --print-config. Channels exists only
// in the file.
type Settings struct {
	Config      string `yaml:"-" flag:"config" usage:"read settings from this YAML {file} (flags and BAYEUXHUB_* variables override it)"`
	PrintConfig bool   `yaml:"-" flag:"print-config" usage:"print the effective configuration, secrets masked, and exit"`

	Port           string   `yaml:"port" flag:"port" usage:"TCP {port} to listen on (Perl: Port)"`
	Bind           string   `yaml:"bind" flag:"bind" usage:"{address} to listen on; empty means every interface"`
	Alias          string   `yaml:"alias" flag:"alias" usage:"{name} of the hub actor that local actors send to (Perl: Alias)"`
	AnonPublish    bool     `yaml:"anon-publish" flag:"anon-publish" usage:"let HTTP clients publish without a handshake (Perl: AnonPublish); the channel rules still apply"`
	ConnectTimeout Duration `yaml:"connect-timeout" flag:"connect-timeout" usage:"{seconds}: the Perl module's ConnectTimeout, an upper bound on --max-interval"`
	PollTimeout    Duration `yaml:"poll-timeout" flag:"poll-timeout" usage:"{seconds} a /meta/connect is held when there is nothing to deliver; keep it below your proxies' idle limits"`
	ParkAfter      Duration `yaml:"park-after" flag:"park-after" usage:"{seconds} a held long poll keeps its goroutines before it is parked (no goroutine while it waits; a client that leaves is then noticed when its answer is due); 0 never parks"`
	MaxBody        int64    `yaml:"max-body" flag:"max-body" usage:"largest Bayeux request body in {bytes}; larger ones get 413"`
	Debug          bool     `yaml:"debug" flag:"debug" usage:"log at debug level (Perl: Debug)"`
	LogFile        string   `yaml:"log-file" flag:"log-file" usage:"also append logs to this {file} (Perl: LogFile)"`
	DocumentRoot   string   `yaml:"document-root" flag:"document-root" usage:"serve this {folder} at / instead of the embedded demo (Perl: DocumentRoot)"`
	DirectoryIndex List     `yaml:"directory-index" flag:"directory-index" usage:"comma-separated index file {names} for folders (Perl: DirectoryIndex)"`
	TypeExpires    string   `yaml:"type-expires" flag:"type-expires" usage:"cache lifetimes per media type, e.g. {text/css=3600,image/png=86400} (seconds; Perl: TypeExpires)"`
	Metrics        bool     `yaml:"metrics" flag:"metrics" usage:"serve Prometheus metrics at /metrics (off by default: do not expose it publicly)"`

	MaxQueue              int    `yaml:"max-queue" flag:"max-queue" usage:"most {messages} kept for one client that is not reading (-1: no limit)"`
	QueuePolicy           string `yaml:"queue-policy" flag:"queue-policy" usage:"at --max-queue: {disconnect} the session (the client must re-handshake) or drop-oldest"`
	MaxSubscriptions      int    `yaml:"max-subscriptions" flag:"max-subscriptions" usage:"most subscriptions per client (-1: no limit)"`
	MaxChannels           int    `yaml:"max-channels" flag:"max-channels" usage:"most channels and patterns with subscribers (-1: no limit)"`
	MaxMessageSize        int    `yaml:"max-message-size" flag:"max-message-size" usage:"largest published message, its JSON as received (every field), in {bytes} (-1: no limit)"`
	MaxSessionsPerIP      int    `yaml:"max-sessions-per-ip" flag:"max-sessions-per-ip" usage:"most open sessions handshaken from one remote address (-1: no limit)"`
	MaxSessionsPerBrowser int    `yaml:"max-sessions-per-browser" flag:"max-sessions-per-browser" usage:"most long polls held at once for one browser (BAYEUX_BROWSER cookie); its other tabs poll (-1: no limit)"`

	MaxChannelLength int `yaml:"max-channel-length" flag:"max-channel-length" usage:"longest channel name or pattern in {bytes}; longer ones get 405 (-1: no limit)"`
	MaxChannelDepth  int `yaml:"max-channel-depth" flag:"max-channel-depth" usage:"most {segments} in a channel name or pattern; deeper ones get 405 (-1: no limit)"`

	MaxInterval             Duration `yaml:"max-interval" flag:"max-interval" usage:"{seconds} a session may go without a /meta/connect outstanding (after its handshake or its last connect) before it is removed, as CometD's maxInterval; at most --connect-timeout"`
	MaxPendingSessionsPerIP int      `yaml:"max-pending-sessions-per-ip" flag:"max-pending-sessions-per-ip" usage:"most sessions of one remote address that have not connected yet; past it the oldest is ended (-1: no limit)"`
	MaxSubscriptionsPerIP   int      `yaml:"max-subscriptions-per-ip" flag:"max-subscriptions-per-ip" usage:"most subscriptions the sessions of one remote address hold together (-1: no limit)"`
	MaxSessionBytes         int      `yaml:"max-session-bytes" flag:"max-session-bytes" usage:"most {bytes} kept for one client (queued and unacknowledged); past it --queue-policy applies (-1: no limit)"`
	MaxBytesPerIP           int      `yaml:"max-bytes-per-ip" flag:"max-bytes-per-ip" usage:"most {bytes} kept for the clients of one remote address together; past it --queue-policy applies (-1: no limit)"`
	MaxBatch                int      `yaml:"max-batch" flag:"max-batch" usage:"most {messages} in one request (HTTP request or WebSocket frame); a larger one gets 400 before it is decoded (-1: no limit)"`
	MaxPresenceMembers      int      `yaml:"max-presence-members" flag:"max-presence-members" usage:"most members tracked per presence channel; later joins are not tracked (-1: no limit)"`
	MaxPresenceChannels     int      `yaml:"max-presence-channels" flag:"max-presence-channels" usage:"most presence channels with members tracked; joins to further ones are not tracked (-1: no limit)"`
	MaxTotalBytes           int64    `yaml:"max-total-bytes" flag:"max-total-bytes" usage:"most {bytes} kept for all clients; past it publishes and handshakes get 503 (-1: no limit)"`

	Pprof          string `yaml:"pprof" flag:"pprof" usage:"serve Go's net/http/pprof profiles on this separate {address} (e.g. 127.0.0.1:6060); off by default"`
	AllowedOrigins List   `yaml:"allowed-origins" flag:"allowed-origins" usage:"comma-separated {origins} allowed to make cross-origin Bayeux requests (CORS), or *; none by default"`
	Transports     List   `yaml:"transports" flag:"transports" usage:"comma-separated enabled {transports}, in order of preference: websocket, long-polling, callback-polling"`
	WSCompression  bool   `yaml:"ws-compression" flag:"ws-compression" usage:"offer permessage-deflate (no context takeover) on WebSocket: fewer bytes on the wire, more CPU per frame (see BENCHMARKS.md); off by default"`
	NATS           List   `yaml:"nats" flag:"nats" usage:"NATS server {URL}s to join other hubs through (comma-separated; repeatable); none: a single hub"`
	NodeName       string `yaml:"node-name" flag:"node-name" usage:"this node's {name} with --nats: prefix of its client ids (default: the host name, sanitised)"`

	HistoryStore    string `yaml:"history-store" flag:"history-store" usage:"where the history of channels with history-size or history-ttl is kept: {jetstream} (NATS JetStream, shared by every hub; the default with --nats) or memory (each hub's own; the default without)"`
	HistoryReplicas int    `yaml:"history-replicas" flag:"history-replicas" usage:"{copies} NATS JetStream keeps of each history stream (1 to 5; 3 on a NATS cluster of three)"`

	AllowAnonymous *bool `yaml:"allow-anonymous" flag:"allow-anonymous" usage:"let clients handshake without a token or a user from the handshake proxy (default: true when no token key is set, false when one is)"`

	JWTHMACSecret     string   `yaml:"jwt-hmac-secret" flag:"jwt-hmac-secret" secret:"true" usage:"HS256 shared {secret} for tokens (32 bytes or more); prefer --jwt-hmac-secret-file or the environment"`
	JWTHMACSecretFile string   `yaml:"jwt-hmac-secret-file" flag:"jwt-hmac-secret-file" usage:"read the HS256 secret from this {file} (surrounding white space removed)"`
	JWTPublicKeyFile  List     `yaml:"jwt-public-key-file" flag:"jwt-public-key-file" usage:"PEM {file}s of RSA or ECDSA public keys (or certificates) for RS256/ES256 tokens (comma-separated)"`
	JWKSURL           string   `yaml:"jwks-url" flag:"jwks-url" usage:"{URL} of a JSON Web Key Set for RS256/ES256 tokens, cached and refreshed"`
	JWKSRefresh       Duration `yaml:"jwks-refresh" flag:"jwks-refresh" usage:"{duration} between fetches of the JWKS; a token with an unknown key id refetches it sooner"`
	JWTAlgorithms     List     `yaml:"jwt-algorithms" flag:"jwt-algorithms" usage:"pinned token {algorithms} (default: those of the configured keys: HS256, RS256, ES256)"`
	JWTIssuer         string   `yaml:"jwt-issuer" flag:"jwt-issuer" usage:"required {iss} claim of tokens"`
	JWTAudience       string   `yaml:"jwt-audience" flag:"jwt-audience" usage:"required {aud} claim of tokens"`
	JWTLeeway         Duration `yaml:"jwt-leeway" flag:"jwt-leeway" usage:"clock skew ({duration}) allowed when checking exp and nbf; the session lasts until exp plus this"`
	JWTRequireExpiry  bool     `yaml:"jwt-require-expiry" flag:"jwt-require-expiry" usage:"refuse tokens without an exp claim"`
	JWTChannelsClaim  string   `yaml:"jwt-channels-claim" flag:"jwt-channels-claim" usage:"{claim} listing the channel patterns a token grants (for rules with access granted)"`
	JWTInfoClaim      string   `yaml:"jwt-info-claim" flag:"jwt-info-claim" usage:"{claim} with the user's public info, kept with the session"`
	AuthTimeout       Duration `yaml:"auth-timeout" flag:"auth-timeout" usage:"longest {duration} a token check may take, key set fetch included"`

	APIKey     string `yaml:"api-key" flag:"api-key" secret:"true" usage:"{key} of the backend HTTP API at /api (Authorization: apikey <key>); the API is off without one"`
	APIKeyFile string `yaml:"api-key-file" flag:"api-key-file" usage:"read the API key from this {file}"`

	ProxyHandshakeURL    string   `yaml:"proxy-handshake-url" flag:"proxy-handshake-url" usage:"POST each handshake to this backend {URL}, which allows or refuses it and may name the user"`
	ProxySubscribeURL    string   `yaml:"proxy-subscribe-url" flag:"proxy-subscribe-url" usage:"POST each subscribe to this backend {URL}, which allows or refuses it"`
	ProxyPublishURL      string   `yaml:"proxy-publish-url" flag:"proxy-publish-url" usage:"POST each publish to this backend {URL}, which allows or refuses it"`
	ProxyTimeout         Duration `yaml:"proxy-timeout" flag:"proxy-timeout" usage:"longest {duration} a backend may take to answer; past it the request is refused"`
	ProxyMaxConcurrency  int      `yaml:"proxy-max-concurrency" flag:"proxy-max-concurrency" usage:"most backend calls in flight at once; beyond it requests are refused"`
	ProxyForwardHeaders  List     `yaml:"proxy-headers" flag:"proxy-headers" usage:"client request {headers} passed to the backend (comma-separated, e.g. Cookie,X-Forwarded-For)"`
	ProxyMaxResponseSize int64    `yaml:"proxy-max-response-size" flag:"proxy-max-response-size" usage:"largest backend answer in {bytes}"`

	// Channels are the channel rules, in order; empty keeps the defaults
	// (DefaultChannels).
	Channels []ChannelRule `yaml:"channels"`
}

// ChannelRule is one entry of the file's channels list (see package acl).
type ChannelRule struct {
	Name         string  `yaml:"name,omitempty"`
	Pattern      string  `yaml:"pattern"`
	Subscribe    List    `yaml:"subscribe"`
	Publish      List    `yaml:"publish"`
	PublishRate  float64 `yaml:"publish-rate,omitempty"`
	PublishBurst int     `yaml:"publish-burst,omitempty"`
	// History: keep the last history-size messages and/or those younger
	// than history-ttl of each channel, for replay; history-shape
	// "salesforce" also puts the replay id in data.event.replayId (jsforce).
	HistorySize  int      `yaml:"history-size,omitempty"`
	HistoryTTL   Duration `yaml:"history-ttl,omitempty"`
	HistoryShape string   `yaml:"history-shape,omitempty"`
	// Presence: track who is subscribed to each channel, with join and
	// leave events on /bayeuxhub/presence<channel> and /service/presence.
	Presence bool `yaml:"presence,omitempty"`
}

// Defaults returns the settings a bayeuxhub runs with when nothing is
// configured: the chat demo on :8080.
func Defaults() Settings {
	return Settings{
		Port:                  "8080",
		Alias:                 actors.DefaultAlias,
		ConnectTimeout:        Duration(actors.DefaultConnectTimeout),
		PollTimeout:           Duration(actors.DefaultPollTimeout),
		ParkAfter:             Duration(transport.DefaultParkAfter),
		MaxBody:               transport.DefaultMaxBody,
		DirectoryIndex:        List{"index.html"},
		MaxQueue:              actors.DefaultMaxQueue,
		QueuePolicy:           string(actors.QueueDisconnect),
		MaxSubscriptions:      actors.DefaultMaxSubscriptions,
		MaxChannels:           actors.DefaultMaxChannels,
		MaxMessageSize:        actors.DefaultMaxMessageSize,
		MaxSessionsPerIP:      actors.DefaultMaxSessionsPerIP,
		MaxSessionsPerBrowser: actors.DefaultMaxSessionsPerBrowser,

		MaxChannelLength: actors.DefaultMaxChannelLength,
		MaxChannelDepth:  actors.DefaultMaxChannelDepth,

		MaxInterval:             Duration(actors.DefaultMaxInterval),
		MaxPendingSessionsPerIP: actors.DefaultMaxPendingSessionsPerIP,
		MaxSubscriptionsPerIP:   actors.DefaultMaxSubscriptionsPerIP,
		MaxSessionBytes:         actors.DefaultMaxSessionBytes,
		MaxBytesPerIP:           actors.DefaultMaxBytesPerIP,
		MaxTotalBytes:           actors.DefaultMaxTotalBytes,
		MaxPresenceMembers:      actors.DefaultMaxPresenceMembers,
		MaxPresenceChannels:     actors.DefaultMaxPresenceChannels,
		MaxBatch:                protocol.DefaultMaxBatch,
		Transports:              List(transport.DefaultTypes()),
		HistoryReplicas:         1,
		JWKSRefresh:             Duration(time.Hour),
		JWTLeeway:               Duration(5 * time.Second),
		JWTChannelsClaim:        "channels",
		JWTInfoClaim:            "info",
		AuthTimeout:             Duration(actors.DefaultAuthTimeout),
		ProxyTimeout:            Duration(time.Second),
		ProxyMaxConcurrency:     64,
		ProxyMaxResponseSize:    64 << 10,
	}
}
