package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/actors"
)

// Compile-time check: *JetStreamHistory is an actors.History.
var _ actors.History = (*JetStreamHistory)(nil)

// Defaults for JetStreamOptions.
const (
	// DefaultHistoryRefresh is how long a JetStream history trusts what it
	// read of a stream (its epoch, its limits) before reading it again.
	DefaultHistoryRefresh = time.Minute
	// historyFetchBatch is the most messages one pull of a replay asks for.
	historyFetchBatch = 256
	// historyConsumerIdle is how long JetStream keeps a replay's consumer
	// that was not deleted (its Since ran out of time).
	historyConsumerIdle = 30 * time.Second
)

// JetStreamOptions configures a JetStream history.
type JetStreamOptions struct {
	// Rules are the hub's channel rules (actors.Options.Rules): every rule
	// that keeps history has a stream of its own, with its limits. A
	// channel takes the first rule that matches it, as in the hub; nil
	// (or no rule with history) keeps nothing. The hub's Rules must be
	// these.
	Rules *acl.Rules
	// SubjectPrefix is the first token(s) of the history's subjects and
	// streams, for NewJetStreamHistoryConn (default DefaultSubjectPrefix);
	// NewJetStreamHistory takes the broker's.
	SubjectPrefix string
	// Replicas is the number of copies JetStream keeps of each stream (1
	// to 5, default 1); a NATS cluster of three wants 3, so that a NATS
	// server's loss loses no history.
	Replicas int
	// Storage is where JetStream keeps the streams (default
	// jetstream.FileStorage; jetstream.MemoryStorage is lost when the
	// NATS server restarts).
	Storage jetstream.StorageType
	// MaxBytes bounds each stream (0: no bound but the rule's and the
	// account's); past it, the oldest messages of the rule's channels go
	// first.
	MaxBytes int64
	// Domain is the JetStream domain, for NATS systems with several
	// (leaf nodes); empty for the default.
	Domain string
	// Refresh is how long the history trusts what it read of a stream
	// before reading it again (default DefaultHistoryRefresh): a stream
	// deleted and made again has a new epoch.
	Refresh time.Duration
	// Logger receives stream creations and updates (info) and records
	// that cannot be read (warn); nil means no logs.
	Logger *zerolog.Logger
}

// JetStreamHistory is an actors.History kept in NATS JetStream, so that
// every hub of a cluster stores and replays the same history: a client
// whose hub went away replays what it missed from any other.
//
// # Streams and subjects
//
// Each channel rule with history (acl.Rule.History) has a stream,
// <PREFIX>_HISTORY_<key>, made by the first hub that stores a message on
// one of its channels, where key is 16 hex digits of a hash of the
// rule's pattern and PREFIX the subject prefix, upper case, dots as
// underscores (BAYEUX_HISTORY_5C0D2A1B9E3F4471). Its subjects are
// <prefix>.hist.<key>.>: a channel's messages go to <prefix>.hist.<key>
// followed by the channel's tokens as in the broker's message subjects
// (/chat/room1 -> bayeux.hist.5c0d2a1b9e3f4471.chat.room1). The key keeps
// the streams of overlapping rules (/chat/vip before /chat/**) apart.
// The rule's history size is the stream's MaxMsgsPerSubject, its TTL the
// stream's MaxAge; a hub whose rule says otherwise updates the stream
// (and logs it). JetStreamOptions.MaxBytes, Replicas and Storage apply to
// every stream.
//
// # Replay ids, epoch and horizon
//
// A message's replay id is its stream sequence: larger than every id
// before it on its channel, but not consecutive per channel (the rule's
// other channels share the sequence). A stream starts its sequence at the
// time it was made in milliseconds times 1024 (StreamConfig.FirstSeq),
// as the in-memory history does, so a stream made again (deleted, or
// lost) has larger ids than the old one had: a client with an old id is
// told it is not in the retained history rather than given a wrong
// position. The epoch is that first sequence in base 36, the same for
// every hub.
//
// JetStream drops a subject's messages oldest first (per-subject limit,
// age, stream bytes), so what it retains of a channel is everything from
// its first retained message F on. Replay.Oldest is F: a replay from F-1
// or later loses nothing. Since ids are not consecutive, the history
// cannot tell whether messages between an older id and F were dropped,
// so it refuses those (the in-memory history, whose ids are consecutive,
// also takes the id just before its oldest). F is read after the
// messages of a replay have been fetched, so a message dropped while
// they were being fetched cannot leave a gap that a replay accepts.
//
// # Consistency with live delivery
//
// The hub stamps a message (Append: published to JetStream, its ack
// awaited) before it routes it; the broker then carries the replay id
// and epoch to the other nodes, which deliver them as they are. A
// replaying subscribe is subscribed to the channel's NATS subject before
// it calls Since, and NewJetStreamHistory uses the broker's connection:
// the NATS server sees the subscription before the replay's requests, so
// a message is either in what Since returns or delivered live (or both:
// the hub drops the second copy). On one NATS server this is exact; in a
// NATS cluster a subscription takes a moment to reach the other servers
// (see "Guarantees between nodes" in the package documentation).
type JetStreamHistory struct {
	opts   JetStreamOptions
	log    zerolog.Logger
	b      *NATS      // the broker whose connection is used, or nil
	nc     *nats.Conn // the connection, without a broker
	prefix string     // "<prefix>.hist."

	jsMu   sync.Mutex
	jsConn *nats.Conn // the connection js was made for
	js     jetstream.JetStream

	streams []*ruleStream // by rule index; nil for rules without history
}

// ruleStream is the stream of one channel rule and what the history
// knows of it.
type ruleStream struct {
	rule    string // the rule's pattern
	name    string // the stream's name
	subject string // "<prefix>.hist.<key>", to which a channel's tokens are added

	mu      sync.Mutex // serialises reading and making the stream
	js      jetstream.JetStream
	stream  jetstream.Stream // nil until read
	epoch   string
	keep    actors.Retention // the limits last set or seen
	checked time.Time
}

// NewJetStreamHistory returns a history in NATS JetStream on the
// connection of the broker b, under b's subject prefix. Put it in
// actors.Options.History of the hub whose Broker is b (server.Config.NATS
// does both). It also makes b carry replay ids to the other nodes, which
// must use a JetStream history too: a node with its own in-memory
// history stamps other nodes' messages with its own ids. The NATS
// servers must have JetStream enabled; until they do, publishes on
// channels with history and replays are refused with
// actors.ErrHistoryUnavailable.
func NewJetStreamHistory(b *NATS, opts JetStreamOptions) (*JetStreamHistory, error) {
	if b == nil {
		return nil, errors.New("broker: JetStream history: nil broker")
	}
	opts.SubjectPrefix = b.opts.SubjectPrefix
	h, err := newJetStreamHistory(opts)
	if err != nil {
		return nil, err
	}
	h.b = b
	b.sharedHistory.Store(true)
	return h, nil
}

// NewJetStreamHistoryConn returns a history in NATS JetStream on nc, for
// programs that make their own connection. A replaying subscribe's NATS
// subscription and the replay's requests then go over different
// connections, so the NATS server may see them in either order (see
// JetStreamHistory). It does not make a broker carry replay ids.
func NewJetStreamHistoryConn(nc *nats.Conn, opts JetStreamOptions) (*JetStreamHistory, error) {
	if nc == nil {
		return nil, errors.New("broker: JetStream history: nil connection")
	}
	h, err := newJetStreamHistory(opts)
	if err != nil {
		return nil, err
	}
	h.nc = nc
	return h, nil
}

func newJetStreamHistory(opts JetStreamOptions) (*JetStreamHistory, error) {
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if !subjectPrefix.MatchString(opts.SubjectPrefix) || len(opts.SubjectPrefix) > maxPrefixLength {
		return nil, fmt.Errorf("broker: JetStream history: subject prefix %q: want at most %d bytes of dot-separated tokens of letters, digits, - and _",
			shorten(opts.SubjectPrefix), maxPrefixLength)
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 1
	case opts.Replicas < 1 || opts.Replicas > 5:
		return nil, fmt.Errorf("broker: JetStream history: %d replicas: want 1 to 5", opts.Replicas)
	}
	if opts.Storage != jetstream.FileStorage && opts.Storage != jetstream.MemoryStorage {
		return nil, fmt.Errorf("broker: JetStream history: unknown storage %v", opts.Storage)
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("broker: JetStream history: max bytes %d is negative", opts.MaxBytes)
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultHistoryRefresh
	}
	log := zerolog.Nop()
	if opts.Logger != nil {
		log = *opts.Logger
	}
	h := &JetStreamHistory{
		opts:   opts,
		log:    log.With().Str("component", "history").Logger(),
		prefix: opts.SubjectPrefix + ".hist.",
	}
	streamPrefix := strings.ToUpper(strings.ReplaceAll(opts.SubjectPrefix, ".", "_")) + "_HISTORY_"
	h.streams = make([]*ruleStream, opts.Rules.Len())
	for i := range opts.Rules.Len() {
		r := opts.Rules.Rule(i)
		if !r.History.Enabled() {
			continue
		}
		sum := sha256.Sum256([]byte(r.Pattern))
		key := hex.EncodeToString(sum[:8])
		h.streams[i] = &ruleStream{rule: r.Pattern, name: streamPrefix + strings.ToUpper(key), subject: h.prefix + key}
	}
	return h, nil
}

// StreamOf returns the name of the stream that keeps channel's history
// and the subject its messages are stored on; ok is false when no rule
// with history covers channel.
func (h *JetStreamHistory) StreamOf(channel string) (stream, subject string, ok bool) {
	rs := h.streamOf(channel)
	if rs == nil {
		return "", "", false
	}
	subj, err := appendSubject([]byte(rs.subject), channel, false)
	if err != nil {
		return "", "", false
	}
	return rs.name, string(subj), true
}

// streamOf returns the stream of the rule that covers channel, or nil.
func (h *JetStreamHistory) streamOf(channel string) *ruleStream {
	i := h.opts.Rules.Match(channel)
	if i < 0 {
		return nil
	}
	return h.streams[i]
}

// unavailable wraps err as actors.ErrHistoryUnavailable.
func unavailable(what, channel string, err error) error {
	return fmt.Errorf("%w: JetStream history: %s %s: %w", actors.ErrHistoryUnavailable, what, shorten(channel), err)
}

// jetStream returns the JetStream context of the current connection.
func (h *JetStreamHistory) jetStream() (jetstream.JetStream, *nats.Conn, error) {
	nc := h.nc
	if h.b != nil {
		var err error
		if nc, err = h.b.conn(); err != nil {
			return nil, nil, err
		}
	}
	if !nc.IsConnected() {
		// A request made now would be sent once the connection is back,
		// long after the hub gave up on it: a publish it refused would
		// be stored all the same.
		return nil, nil, errors.New("not connected to NATS")
	}
	h.jsMu.Lock()
	defer h.jsMu.Unlock()
	if h.js == nil || h.jsConn != nc {
		var js jetstream.JetStream
		var err error
		if h.opts.Domain != "" {
			js, err = jetstream.NewWithDomain(nc, h.opts.Domain)
		} else {
			js, err = jetstream.New(nc)
		}
		if err != nil {
			return nil, nil, err
		}
		h.js, h.jsConn = js, nc
	}
	return h.js, nc, nil
}

// subjectFor returns the subject of channel's messages in rs, checked
// against what the NATS server takes.
func (h *JetStreamHistory) subjectFor(rs *ruleStream, channel string) (string, error) {
	subj, err := appendSubject([]byte(rs.subject), channel, false)
	if err != nil {
		return "", err
	}
	subject := string(subj)
	if h.b != nil {
		if err := h.b.checkSubject(subject); err != nil {
			return "", h.b.refuse(err)
		}
	} else if len(subject) > DefaultMaxControlLine-controlLineReserve {
		return "", fmt.Errorf("%w: %d bytes", ErrSubjectTooLong, len(subject))
	}
	return subject, nil
}

// Append publishes m to its rule's stream (making the stream first, when
// it is not there) and returns the stream sequence JetStream acknowledged
// as its replay id.
func (h *JetStreamHistory) Append(ctx context.Context, m *actors.Message, keep actors.Retention) (actors.Position, error) {
	rs := h.streamOf(m.Channel)
	if rs == nil {
		return actors.Position{}, unavailable("append to", m.Channel, errors.New("no channel rule with history covers it"))
	}
	js, nc, err := h.jetStream()
	if err != nil {
		return actors.Position{}, unavailable("append to", m.Channel, err)
	}
	subject, err := h.subjectFor(rs, m.Channel)
	if err != nil {
		return actors.Position{}, unavailable("append to", m.Channel, err)
	}
	data := appendHistoryRecord(make([]byte, 0, 64+len(m.Channel)+len(m.ClientID)+len(m.ID)+len(m.Ext)+len(m.Data)), m)
	if h.b != nil {
		if err := h.b.checkPayload(nc, len(data)); err != nil {
			return actors.Position{}, unavailable("append to", m.Channel, h.b.refuse(err))
		}
	} else if limit := nc.MaxPayload(); limit > 0 && int64(len(data)) > limit {
		return actors.Position{}, unavailable("append to", m.Channel, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(data)))
	}
	_, epoch, err := h.ensure(ctx, js, rs, keep, true)
	if err != nil {
		return actors.Position{}, unavailable("append to", m.Channel, err)
	}
	ack, err := js.Publish(ctx, subject, data, jetstream.WithExpectStream(rs.name))
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrStreamNotFound) {
			rs.forget() // deleted under us: made again on the next append
		}
		return actors.Position{}, unavailable("append to", m.Channel, err)
	}
	return actors.Position{ID: int64(ack.Sequence), Epoch: epoch}, nil
}

// forget makes the next use of the stream read it again.
func (rs *ruleStream) forget() {
	rs.mu.Lock()
	rs.stream = nil
	rs.mu.Unlock()
}

// ensure returns the rule's stream and its epoch, reading it when it was
// not read on this connection or was read more than Refresh ago. With
// create, a stream that is not there is made with keep's limits, and a
// stream whose limits are not keep's is updated; without, a stream that
// is not there is nil, with no error.
func (h *JetStreamHistory) ensure(ctx context.Context, js jetstream.JetStream, rs *ruleStream, keep actors.Retention, create bool) (jetstream.Stream, string, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.stream != nil && rs.js == js && time.Since(rs.checked) < h.opts.Refresh && (!create || rs.keep == keep) {
		return rs.stream, rs.epoch, nil
	}
	s, err := js.Stream(ctx, rs.name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && !create:
		rs.stream = nil
		return nil, "", nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = js.CreateStream(ctx, h.streamConfig(rs, keep))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, rs.name) // another hub made it first
		} else if err == nil {
			h.log.Info().Str("stream", rs.name).Str("rule", rs.rule).Int("size", keep.Max).Dur("ttl", keep.TTL).
				Msg("history stream made")
		}
	}
	if err != nil {
		return nil, "", jetStreamHint(err)
	}
	info := s.CachedInfo()
	if create && !sameLimits(info.Config, keep) {
		cfg := info.Config
		cfg.MaxMsgsPerSubject, cfg.MaxAge = limitsOf(keep)
		if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
			cfg.Duplicates = cfg.MaxAge // JetStream wants the window within the age
		}
		h.log.Warn().Str("stream", rs.name).Str("rule", rs.rule).
			Int64("old_size", info.Config.MaxMsgsPerSubject).Dur("old_ttl", info.Config.MaxAge).
			Int("size", keep.Max).Dur("ttl", keep.TTL).
			Msg("history stream limits differ from the channel rule's; updating the stream (hubs with different rules update it in turn)")
		if s, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, "", fmt.Errorf("update stream %s: %w", rs.name, err)
		}
		info = s.CachedInfo()
	}
	rs.js, rs.stream, rs.keep, rs.checked = js, s, retentionOf(info.Config), time.Now()
	rs.epoch = epochOf(info)
	return s, rs.epoch, nil
}

// jetStreamHint adds to an error that says JetStream is off what to do.
func jetStreamHint(err error) error {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w (is JetStream enabled on the NATS servers? Enable it, or keep history in each hub's memory: history-store memory)", err)
	}
	return err
}

// limitsOf returns the stream limits for keep.
func limitsOf(keep actors.Retention) (maxPerSubject int64, maxAge time.Duration) {
	maxPerSubject = -1
	if keep.Max > 0 {
		maxPerSubject = int64(keep.Max)
	}
	return maxPerSubject, keep.TTL
}

// retentionOf returns the retention a stream's limits give.
func retentionOf(cfg jetstream.StreamConfig) actors.Retention {
	return actors.Retention{Max: int(max(cfg.MaxMsgsPerSubject, 0)), TTL: cfg.MaxAge}
}

// sameLimits reports whether a stream's limits are keep's.
func sameLimits(cfg jetstream.StreamConfig, keep actors.Retention) bool {
	n, age := limitsOf(keep)
	have := cfg.MaxMsgsPerSubject
	if have <= 0 {
		have = -1
	}
	return have == n && cfg.MaxAge == age
}

// streamConfig is the configuration of a new stream for rs.
func (h *JetStreamHistory) streamConfig(rs *ruleStream, keep actors.Retention) jetstream.StreamConfig {
	perSubject, age := limitsOf(keep)
	maxBytes := int64(-1)
	if h.opts.MaxBytes > 0 {
		maxBytes = h.opts.MaxBytes
	}
	return jetstream.StreamConfig{
		Name:              rs.name,
		Description:       "bayeuxhub history of the channels of rule " + rs.rule,
		Subjects:          []string{rs.subject + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: perSubject,
		MaxAge:            age,
		MaxMsgs:           -1,
		MaxBytes:          maxBytes,
		MaxConsumers:      -1,
		MaxMsgSize:        -1,
		Storage:           h.opts.Storage,
		Replicas:          h.opts.Replicas,
		FirstSeq:          uint64(time.Now().UnixMilli()) << 10,
		Metadata:          map[string]string{"bayeuxhub_rule": rs.rule},
	}
}

// epochOf returns a stream's epoch: its first sequence, in base 36, or
// for a stream made without one its creation time.
func epochOf(info *jetstream.StreamInfo) string {
	if info.Config.FirstSeq > 0 {
		return strconv.FormatUint(info.Config.FirstSeq, 36)
	}
	return strconv.FormatInt(info.Created.UnixNano(), 36)
}

// Since returns what the channel's stream retains after replay id after
// (actors.ReplayAll: everything it retains), fetched with a consumer of
// the channel's subject that is deleted when done.
func (h *JetStreamHistory) Since(ctx context.Context, channel string, after int64) (actors.Replay, error) {
	rs := h.streamOf(channel)
	if rs == nil {
		return actors.Replay{}, nil
	}
	if after < 0 && after != actors.ReplayAll {
		return actors.Replay{}, fmt.Errorf("JetStream history: replay of %s from %d: want a replay id or ReplayAll", shorten(channel), after)
	}
	js, _, err := h.jetStream()
	if err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	subject, err := h.subjectFor(rs, channel)
	if err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	s, epoch, err := h.ensure(ctx, js, rs, actors.Retention{}, false)
	if err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	if s == nil {
		return actors.Replay{}, nil // nothing stored on the rule's channels yet
	}
	r := actors.Replay{Epoch: epoch}
	first, ok, err := firstSeq(ctx, s, subject)
	if err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	if !ok {
		return r, nil // nothing retained
	}
	if after != actors.ReplayAll && after < int64(first)-1 {
		// Older than what is retained: refused, nothing to fetch.
		last, err := lastSeq(ctx, s, subject)
		if err != nil {
			return actors.Replay{}, unavailable("replay", channel, err)
		}
		r.Oldest, r.Newest = int64(first), int64(last)
		return r, nil
	}
	msgs, done, err := h.fetch(ctx, s, subject, after)
	if err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	var newest uint64
	if n := len(msgs); n > 0 && done {
		newest = uint64(msgs[n-1].ReplayID) // the subject's last when it was fetched
	} else if newest, err = lastSeq(ctx, s, subject); err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	if n := len(msgs); n > 0 {
		newest = max(newest, uint64(msgs[n-1].ReplayID))
	}
	// Read after the fetch: no message of the channel from first on was
	// dropped before the fetch read it.
	if first, ok, err = firstSeq(ctx, s, subject); err != nil {
		return actors.Replay{}, unavailable("replay", channel, err)
	}
	if !ok {
		first = newest + 1 // all dropped meanwhile: nothing after newest was
	}
	for _, m := range msgs {
		m.Epoch = epoch
	}
	r.Messages, r.Oldest, r.Newest = msgs, int64(first), int64(newest)
	if r.Newest == 0 {
		r.Oldest = 0
	}
	return r, nil
}

// firstSeq returns the sequence of the first message retained on
// subject; ok is false when there is none.
func firstSeq(ctx context.Context, s jetstream.Stream, subject string) (seq uint64, ok bool, err error) {
	m, err := s.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(subject))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("first message: %w", err)
	}
	return m.Sequence, true, nil
}

// lastSeq returns the sequence of the last message retained on subject,
// 0 when there is none.
func lastSeq(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("last message: %w", err)
	}
	return m.Sequence, nil
}

// fetch returns the messages on subject after sequence after
// (actors.ReplayAll: all), those the stream held when the fetch began;
// done reports that the last of them was the subject's last then.
func (h *JetStreamHistory) fetch(ctx context.Context, s jetstream.Stream, subject string, after int64) (msgs []*actors.Message, done bool, err error) {
	cfg := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     subject,
		InactiveThreshold: historyConsumerIdle,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if after == actors.ReplayAll {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	} else {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, uint64(after)+1
	}
	c, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("replay consumer: %w", err)
	}
	info := c.CachedInfo()
	defer func() {
		if ctx.Err() == nil { // else JetStream deletes it once idle
			_ = s.DeleteConsumer(ctx, info.Name)
		}
	}()
	pending := info.NumPending
	if pending == 0 {
		return nil, true, nil
	}
	msgs = make([]*actors.Message, 0, min(pending, 4096))
	for received := uint64(0); received < pending; {
		want := int(min(pending-received, historyFetchBatch))
		batch, err := c.FetchNoWait(want)
		if err != nil {
			return nil, false, fmt.Errorf("replay fetch: %w", err)
		}
		got := 0
	read:
		for {
			select {
			case jm, ok := <-batch.Messages():
				if !ok {
					break read
				}
				got++
				received++
				meta, err := jm.Metadata()
				if err != nil {
					return nil, false, fmt.Errorf("replay fetch: %w", err)
				}
				done = meta.NumPending == 0
				m, err := decodeHistoryRecord(jm.Data())
				if err != nil {
					h.log.Warn().Err(err).Str("stream", s.CachedInfo().Config.Name).Uint64("seq", meta.Sequence.Stream).
						Msg("skipping a history record that is not a hub's")
					continue
				}
				m.ReplayID = int64(meta.Sequence.Stream)
				msgs = append(msgs, m)
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		if err := batch.Error(); err != nil {
			return nil, false, fmt.Errorf("replay fetch: %w", err)
		}
		if got < want || done {
			break // fewer than were pending: dropped meanwhile
		}
	}
	return msgs, done, nil
}
