package config

import (
	"crypto"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
	"github.com/bayeuxhub/bayeuxhub/auth"
	"github.com/bayeuxhub/bayeuxhub/broker"
	"github.com/bayeuxhub/bayeuxhub/proxy"
	"github.com/bayeuxhub/bayeuxhub/server"
	"github.com/bayeuxhub/bayeuxhub/static"
)

// MinAPIKeyLength is the shortest API key accepted.
const MinAPIKeyLength = 16

// Resolve fills in the settings whose default depends on others: the node
// name (with NATS, from the host name), the history store (jetstream with
// NATS, memory without) and allow-anonymous (false when a token key or a
// handshake proxy can name users, true otherwise).
func (s *Settings) Resolve() {
	if s.NodeName == "" && len(s.NATS) > 0 {
		host, _ := os.Hostname()
		s.NodeName = broker.NodeNameFromHostname(host)
	}
	if s.HistoryStore == "" {
		s.HistoryStore = server.HistoryMemory
		if len(s.NATS) > 0 {
			s.HistoryStore = server.HistoryJetStream
		}
	}
	if s.AllowAnonymous == nil {
		anon := !s.tokensConfigured() && s.ProxyHandshakeURL == ""
		s.AllowAnonymous = &anon
	}
}

func (s *Settings) tokensConfigured() bool {
	return s.JWTHMACSecret != "" || s.JWTHMACSecretFile != "" || len(s.JWTPublicKeyFile) > 0 || s.JWKSURL != ""
}

// Built is what Build makes of the settings: the server's configuration
// and what must be closed after the server has stopped.
type Built struct {
	Server server.Config
	// JWT is the token verifier, or nil; Close stops its key set refresher.
	JWT *auth.JWT
}

// Close releases what Build started.
func (b *Built) Close() {
	if b.JWT != nil {
		b.JWT.Close()
	}
}

// Build turns the settings into a server configuration. log receives the
// server's logs. Secrets named by file are read here.
func (s *Settings) Build(log *zerolog.Logger) (*Built, error) {
	s.Resolve()
	expires, err := static.ParseTypeExpires(s.TypeExpires)
	if err != nil {
		return nil, fmt.Errorf("type-expires: %w", err)
	}
	rules, err := s.Rules()
	if err != nil {
		return nil, err
	}
	switch {
	case s.HistoryStore != server.HistoryMemory && s.HistoryStore != server.HistoryJetStream:
		return nil, fmt.Errorf("history-store %q: want %s or %s", s.HistoryStore, server.HistoryJetStream, server.HistoryMemory)
	case s.HistoryStore == server.HistoryJetStream && len(s.NATS) == 0:
		return nil, errors.New("history-store jetstream needs --nats (or use history-store memory)")
	case s.HistoryReplicas < 1 || s.HistoryReplicas > 5:
		return nil, fmt.Errorf("history-replicas %d: want 1 to 5", s.HistoryReplicas)
	}
	apiKey, err := secret("api-key", s.APIKey, s.APIKeyFile)
	if err != nil {
		return nil, err
	}
	if apiKey != "" && len(apiKey) < MinAPIKeyLength {
		return nil, fmt.Errorf("api-key: use at least %d characters (a random one: openssl rand -hex 32)", MinAPIKeyLength)
	}
	b := &Built{}
	cfg := server.Config{
		Addr: net.JoinHostPort(s.Bind, s.Port),
		Hub: actors.Options{
			Alias: s.Alias, AnonPublish: s.AnonPublish,
			ConnectTimeout: time.Duration(s.ConnectTimeout), PollTimeout: time.Duration(s.PollTimeout),
			MaxQueue: s.MaxQueue, QueuePolicy: actors.QueuePolicy(s.QueuePolicy),
			MaxSubscriptions: s.MaxSubscriptions, MaxChannels: s.MaxChannels, MaxMessageSize: s.MaxMessageSize,
			MaxSessionsPerIP: s.MaxSessionsPerIP, MaxSessionsPerBrowser: s.MaxSessionsPerBrowser,
			Rules: rules, RequireUser: !*s.AllowAnonymous, AuthTimeout: time.Duration(s.AuthTimeout),
		},
		AllowedOrigins: s.AllowedOrigins,
		Transports:     s.Transports,
		WSCompression:  s.WSCompression,
		MaxBody:        s.MaxBody,
		DocumentRoot:   s.DocumentRoot,
		DirectoryIndex: s.DirectoryIndex,
		TypeExpires:    expires,
		Metrics:        s.Metrics,
		Logger:         log,
		NATS:           s.NATS,
		NodeName:       s.NodeName,
		HistoryStore:   s.HistoryStore,
		JetStream:      broker.JetStreamOptions{Replicas: s.HistoryReplicas},
		APIKey:         apiKey,
	}
	cfg.Hub.MaxInterval = time.Duration(s.MaxInterval)
	if cfg.ParkAfter = time.Duration(s.ParkAfter); cfg.ParkAfter <= 0 {
		cfg.ParkAfter = -1 // 0 in the settings: never park
	}
	cfg.Hub.MaxPendingSessionsPerIP, cfg.Hub.MaxSubscriptionsPerIP = s.MaxPendingSessionsPerIP, s.MaxSubscriptionsPerIP
	cfg.Hub.MaxSessionBytes, cfg.Hub.MaxBytesPerIP, cfg.Hub.MaxTotalBytes = s.MaxSessionBytes, s.MaxBytesPerIP, s.MaxTotalBytes
	cfg.Hub.MaxBatch = s.MaxBatch
	cfg.Hub.Presence = actors.PresenceOptions{MaxMembers: s.MaxPresenceMembers, MaxChannels: s.MaxPresenceChannels}
	cfg.Hub.MaxChannelLength, cfg.Hub.MaxChannelDepth = s.MaxChannelLength, s.MaxChannelDepth
	if s.tokensConfigured() {
		j, err := s.verifier(log)
		if err != nil {
			return nil, err
		}
		b.JWT = j
		cfg.Hub.Authenticator = j
	}
	if s.ProxyHandshakeURL != "" || s.ProxySubscribeURL != "" || s.ProxyPublishURL != "" {
		p, err := proxy.New(proxy.Options{
			HandshakeURL: s.ProxyHandshakeURL, SubscribeURL: s.ProxySubscribeURL, PublishURL: s.ProxyPublishURL,
			Timeout: time.Duration(s.ProxyTimeout), MaxConcurrency: s.ProxyMaxConcurrency,
			Headers: s.ProxyForwardHeaders, MaxResponseBytes: s.ProxyMaxResponseSize, Logger: log,
		})
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("proxy: %w", err)
		}
		cfg.Proxy = p
		// The hub's own bound on a hook sits a little above the proxy's, so
		// that the proxy's clearer "timeout after 1s" is what clients see.
		cfg.Hub.HookTimeout = time.Duration(s.ProxyTimeout) + time.Second
	}
	b.Server = cfg
	return b, nil
}

// HMACSecret returns the HS256 secret, from the setting or its file.
func (s *Settings) HMACSecret() (string, error) {
	return secret("jwt-hmac-secret", s.JWTHMACSecret, s.JWTHMACSecretFile)
}

// verifier builds the token verifier.
func (s *Settings) verifier(log *zerolog.Logger) (*auth.JWT, error) {
	hmac, err := s.HMACSecret()
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for _, f := range s.JWTPublicKeyFile {
		k, err := auth.LoadPublicKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("jwt-public-key-file: %w", err)
		}
		keys = append(keys, k)
	}
	opts := auth.JWTOptions{
		PublicKeys: keys, JWKSURL: s.JWKSURL, JWKSRefresh: time.Duration(s.JWKSRefresh),
		Algorithms: s.JWTAlgorithms, Issuer: s.JWTIssuer, Audience: s.JWTAudience,
		Leeway: time.Duration(s.JWTLeeway), RequireExpiry: s.JWTRequireExpiry,
		ChannelsClaim: s.JWTChannelsClaim, InfoClaim: s.JWTInfoClaim, Logger: log,
	}
	if hmac != "" {
		opts.HMACSecret = []byte(hmac)
	}
	if opts.Leeway == 0 {
		opts.Leeway = -1 // an explicit 0 means none (auth's zero value means its default)
	}
	j, err := auth.NewJWT(opts)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return j, nil
}

// secret returns a secret set directly or read from a file (trimmed);
// both at once is an error.
func secret(name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s and %s-file are both set: keep one", name, name)
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s-file: %w", name, err)
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return "", fmt.Errorf("%s-file %s is empty", name, file)
		}
		return v, nil
	}
	return value, nil
}

// ReservedRule is the rule that keeps the hub's own channels (the live
// statistics on /bayeuxhub/stats) server-only; Rules puts it first unless
// the file has a rule for exactly its pattern.
func ReservedRule() acl.Rule { return acl.Default()[0] }

// Rules compiles the channel rules of the file, or, when it has none, the
// standalone hub's defaults (DefaultChannels: acl.Default with history and
// presence on the chat demo's /chat/** rooms). A program that embeds the
// hub without this package keeps acl.Default.
func (s *Settings) Rules() (*acl.Rules, error) {
	channels := s.Channels
	if len(channels) == 0 {
		channels = DefaultChannels()
	}
	list := make([]acl.Rule, 0, len(channels)+1)
	reserved := ReservedRule()
	own := false
	for i, c := range channels {
		r, err := c.rule()
		if err != nil {
			return nil, fmt.Errorf("channels[%d] (%q): %w", i+1, c.Pattern, err)
		}
		own = own || r.Pattern == reserved.Pattern
		list = append(list, r)
	}
	// Validate the file's own list first, so that errors number its rules
	// as the file does.
	if _, err := acl.New(list); err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	if !own {
		list = append([]acl.Rule{reserved}, list...)
	}
	rules, err := acl.New(list)
	if err != nil {
		return nil, fmt.Errorf("channels: %w (with the built-in rule for %s first)", err, reserved.Pattern)
	}
	return rules, nil
}

// rule converts one entry of the file.
func (c ChannelRule) rule() (acl.Rule, error) {
	if c.Pattern == "" {
		return acl.Rule{}, errors.New("missing pattern")
	}
	if len(c.Subscribe) == 0 || len(c.Publish) == 0 {
		return acl.Rule{}, errors.New("say who may subscribe and who may publish (subscribe: and publish:, e.g. anyone, authenticated, owner, granted or nobody)")
	}
	sub, err := acl.ParseAccess(c.Subscribe)
	if err != nil {
		return acl.Rule{}, fmt.Errorf("subscribe: %w", err)
	}
	pub, err := acl.ParseAccess(c.Publish)
	if err != nil {
		return acl.Rule{}, fmt.Errorf("publish: %w", err)
	}
	return acl.Rule{Name: c.Name, Pattern: c.Pattern, Subscribe: sub, Publish: pub,
		PublishRate: c.PublishRate, PublishBurst: c.PublishBurst,
		History:  acl.History{Size: c.HistorySize, TTL: time.Duration(c.HistoryTTL), Shape: c.HistoryShape},
		Presence: c.Presence}, nil
}
