package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds the server's own view of sessions and channels: the
// listings and the per-user operations that the backend API (package api)
// offers. With a Broker they cover every node: the question goes to the
// other nodes (Broker.Query) and their answers are merged.

// SessionInfo describes one client session.
type SessionInfo struct {
	ClientID   string          `json:"client_id"`
	UserID     string          `json:"user,omitempty"`
	Info       json.RawMessage `json:"info,omitempty"`
	RemoteAddr string          `json:"remote_addr,omitempty"`
	Local      bool            `json:"local,omitempty"`
	Node       string          `json:"node"`
	Since      time.Time       `json:"since"`
}

// ChannelInfo is a channel name or pattern with subscribers, and how many.
type ChannelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// SessionFilter selects the sessions ListSessions returns. With Channel
// set, the sessions that receive a publish on it (through the name or a
// pattern matching it; for a pattern, the sessions subscribed to exactly
// that pattern); with UserID set, that user's sessions; both: both must
// hold; neither: every session. Limit bounds the answer per node (0:
// DefaultSessionListLimit).
type SessionFilter struct {
	Channel string `json:"channel,omitempty"`
	UserID  string `json:"user,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// DefaultSessionListLimit bounds a session listing per node when
// SessionFilter.Limit is 0.
const DefaultSessionListLimit = 1000

// Coverage says which nodes a cluster-wide answer covers: with a Broker,
// a node known to be alive that did not answer before the context ended
// is Missing; without one, Nodes is this node alone.
type Coverage struct {
	Nodes   []string `json:"nodes"`
	Missing []string `json:"missing,omitempty"`
}

// userIndex finds the sessions of a user on this node.
type userIndex struct {
	mu sync.Mutex
	m  map[string]map[*sessionRef]struct{}
}

func (u *userIndex) add(ref *sessionRef) {
	user := ref.subject.UserID
	if user == "" {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string]map[*sessionRef]struct{})
	}
	set := u.m[user]
	if set == nil {
		set = make(map[*sessionRef]struct{})
		u.m[user] = set
	}
	set[ref] = struct{}{}
}

func (u *userIndex) remove(ref *sessionRef) {
	user := ref.subject.UserID
	if user == "" {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if set := u.m[user]; set != nil {
		delete(set, ref)
		if len(set) == 0 {
			delete(u.m, user)
		}
	}
}

// of returns the user's sessions.
func (u *userIndex) of(user string) []*sessionRef {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]*sessionRef, 0, len(u.m[user]))
	for ref := range u.m[user] {
		out = append(out, ref)
	}
	return out
}

// The operations other nodes are asked with Broker.Query.
const (
	queryChannels         = "channels"
	querySessions         = "sessions"
	queryPushUser         = "push-user"
	queryDisconnectUser   = "disconnect-user"
	queryDisconnectClient = "disconnect-client"
)

// DefaultClusterTimeout bounds how long Disconnect waits for another node
// to say whether it holds a client.
const DefaultClusterTimeout = 2 * time.Second

// clientKick is a disconnect-client query's body; userKick a
// disconnect-user one's.
type clientKick struct {
	ClientID    string `json:"client_id"`
	NoReconnect bool   `json:"no_reconnect,omitempty"`
}

type userKick struct {
	UserID      string `json:"user"`
	NoReconnect bool   `json:"no_reconnect,omitempty"`
}

// userPush is a push-user query's body.
type userPush struct {
	UserID  string          `json:"user"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// ListChannels returns the channels and patterns with subscribers, sorted
// by name, with their subscriber counts summed over the nodes.
func (h *Hub) ListChannels(ctx context.Context) ([]ChannelInfo, Coverage, error) {
	counts := make(map[string]int)
	for _, c := range h.localChannels() {
		counts[c.Channel] += c.Subscribers
	}
	cov, err := h.askCluster(ctx, queryChannels, nil, func(body []byte) error {
		var list []ChannelInfo
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		for _, c := range list {
			counts[c.Channel] += c.Subscribers
		}
		return nil
	})
	out := make([]ChannelInfo, 0, len(counts))
	for name, n := range counts {
		out = append(out, ChannelInfo{Channel: name, Subscribers: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Channel < out[j].Channel })
	return out, cov, err
}

// ListSessions returns the sessions f selects, on every node, sorted by
// node and client id.
func (h *Hub) ListSessions(ctx context.Context, f SessionFilter) ([]SessionInfo, Coverage, error) {
	if f.Channel != "" {
		if err := h.checkName(f.Channel); err != nil {
			return nil, Coverage{}, fmt.Errorf("list sessions on %s: %w", f.Channel, err)
		}
		if _, err := protocol.ParseChannel(f.Channel); err != nil {
			return nil, Coverage{}, fmt.Errorf("list sessions on %s: %w", f.Channel, err)
		}
	}
	out := h.localSessions(f)
	body, err := json.Marshal(f)
	if err != nil {
		return nil, Coverage{}, fmt.Errorf("list sessions: %w", err)
	}
	cov, err := h.askCluster(ctx, querySessions, body, func(body []byte) error {
		var list []SessionInfo
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		out = append(out, list...)
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].ClientID < out[j].ClientID
	})
	return out, cov, err
}

// PushUser sends a message to every session of a user, on every node, as
// Push does to one client (Perl: client_push), and returns how many
// sessions it reached. The channel and data are checked as Push checks
// them.
func (h *Hub) PushUser(ctx context.Context, userID, channel string, data any) (int, Coverage, error) {
	if userID == "" {
		return 0, Coverage{}, fmt.Errorf("push to user: %w", errNoUser)
	}
	raw, err := h.checkPush(channel, data)
	if err != nil {
		return 0, Coverage{}, fmt.Errorf("push to user %s: %w", userID, err)
	}
	n := h.pushUserLocal(userID, channel, raw)
	body, err := json.Marshal(userPush{UserID: userID, Channel: channel, Data: raw})
	if err != nil {
		return n, Coverage{}, fmt.Errorf("push to user %s: %w", userID, err)
	}
	cov, err := h.askCluster(ctx, queryPushUser, body, countInto(&n))
	return n, cov, err
}

// DisconnectUser ends every session of a user, on every node, as
// Disconnect does one, and returns how many it ended.
func (h *Hub) DisconnectUser(ctx context.Context, userID string, opts ...DisconnectOption) (int, Coverage, error) {
	if userID == "" {
		return 0, Coverage{}, fmt.Errorf("disconnect user: %w", errNoUser)
	}
	k := newKick(opts)
	n := h.disconnectUserLocal(userID, k)
	body, err := json.Marshal(userKick{UserID: userID, NoReconnect: k.noReconnect})
	if err != nil {
		return n, Coverage{}, fmt.Errorf("disconnect user %s: %w", userID, err)
	}
	cov, err := h.askCluster(ctx, queryDisconnectUser, body, countInto(&n))
	return n, cov, err
}

// errNoUser refuses a per-user operation without a user id.
var errNoUser = protocol.ErrBadRequest("Missing user id")

func countInto(n *int) func([]byte) error {
	return func(body []byte) error {
		var k int
		if err := json.Unmarshal(body, &k); err != nil {
			return err
		}
		*n += k
		return nil
	}
}

// askCluster asks the other nodes op and hands each answer to take; it
// returns the coverage of the answer. Without a broker it covers this node
// only. Answers that cannot be read are logged and their node counted as
// missing.
func (h *Hub) askCluster(ctx context.Context, op string, body []byte, take func([]byte) error) (Coverage, error) {
	cov := Coverage{Nodes: []string{h.opts.NodeName}}
	b := h.opts.Broker
	if b == nil {
		return cov, nil
	}
	answers, missing, err := b.Query(ctx, op, body)
	if err != nil {
		return cov, fmt.Errorf("ask the other nodes (%s): %w", op, err)
	}
	cov.Missing = missing
	for _, a := range answers {
		if a.Err == "" {
			if err := take(a.Body); err != nil {
				a.Err = "unreadable answer: " + err.Error()
			}
		}
		if a.Err != "" {
			h.log.Warn().Str("node", a.Node).Str("query", op).Str("error", a.Err).Msg("a node could not answer")
			cov.Missing = append(cov.Missing, a.Node)
			continue
		}
		cov.Nodes = append(cov.Nodes, a.Node)
	}
	sort.Strings(cov.Missing)
	return cov, nil
}

// answer answers another node's question (BrokerInbox.Answer).
func (h *Hub) answer(op string, body []byte) ([]byte, error) {
	switch op {
	case queryChannels:
		return json.Marshal(h.localChannels())
	case querySessions:
		var f SessionFilter
		if err := json.Unmarshal(body, &f); err != nil {
			return nil, fmt.Errorf("sessions query: %w", err)
		}
		return json.Marshal(h.localSessions(f))
	case queryPushUser:
		var p userPush
		if err := json.Unmarshal(body, &p); err != nil || p.UserID == "" || !json.Valid(p.Data) {
			return nil, fmt.Errorf("push-user query: malformed")
		}
		if _, err := h.checkPush(p.Channel, p.Data); err != nil {
			return nil, err
		}
		return json.Marshal(h.pushUserLocal(p.UserID, p.Channel, p.Data))
	case queryDisconnectUser:
		var k userKick
		if err := json.Unmarshal(body, &k); err != nil || k.UserID == "" {
			return nil, fmt.Errorf("disconnect-user query: malformed")
		}
		return json.Marshal(h.disconnectUserLocal(k.UserID, &kick{noReconnect: k.NoReconnect}))
	case queryDisconnectClient:
		var k clientKick
		if err := json.Unmarshal(body, &k); err != nil || k.ClientID == "" {
			return nil, fmt.Errorf("disconnect-client query: malformed")
		}
		ref := h.lookupSession(k.ClientID)
		if ref == nil {
			return []byte("0"), nil
		}
		h.root.Send(ref.pid, &kick{noReconnect: k.NoReconnect})
		return []byte("1"), nil
	}
	if out, ok, err := h.presenceQuery(op, body); ok { // presence.go
		return out, err
	}
	return nil, fmt.Errorf("unknown query %q", op)
}

// localChannels lists this node's channel actors.
func (h *Hub) localChannels() []ChannelInfo {
	h.chanMu.RLock()
	defer h.chanMu.RUnlock()
	out := make([]ChannelInfo, 0, len(h.channels))
	for name, e := range h.channels {
		if n := int(e.live.Load()); n > 0 {
			out = append(out, ChannelInfo{Channel: name, Subscribers: n})
		}
	}
	return out
}

// localSessions lists this node's sessions that f selects.
func (h *Hub) localSessions(f SessionFilter) []SessionInfo {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultSessionListLimit
	}
	var refs []*sessionRef
	switch {
	case f.Channel != "":
		refs = h.receivers(f.Channel)
	case f.UserID != "":
		refs = h.users.of(f.UserID)
	default:
		h.sessions.Range(func(_, v any) bool {
			refs = append(refs, v.(*sessionRef))
			return len(refs) < limit
		})
	}
	out := make([]SessionInfo, 0, min(len(refs), limit))
	for _, ref := range refs {
		if f.UserID != "" && ref.subject.UserID != f.UserID {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, h.sessionInfo(ref))
	}
	return out
}

func (h *Hub) sessionInfo(ref *sessionRef) SessionInfo {
	return SessionInfo{ClientID: ref.id, UserID: ref.subject.UserID, Info: ref.info, RemoteAddr: ref.remote,
		Local: ref.local, Node: h.opts.NodeName, Since: ref.since}
}

// receivers returns the sessions a publish on channel reaches (for a
// pattern: those subscribed to exactly that pattern).
func (h *Hub) receivers(channel string) []*sessionRef {
	var entries []*channelEntry
	h.chanMu.RLock()
	if strings.HasSuffix(channel, "*") {
		if e := h.channels[channel]; e != nil {
			entries = append(entries, e)
		}
	} else {
		protocol.Patterns(channel, func(p []byte) {
			if e := h.channels[string(p)]; e != nil {
				entries = append(entries, e)
			}
		})
	}
	h.chanMu.RUnlock()
	seen := make(map[string]bool)
	var out []*sessionRef
	prefix := h.supervisor.Id + "/"
	for _, e := range entries {
		l := e.subs.Load()
		if l == nil {
			continue
		}
		for i := 0; i < l.n; i++ {
			pid := l.slots[i].Load()
			if pid == nil || seen[pid.Id] {
				continue
			}
			seen[pid.Id] = true
			if ref := h.lookupSession(strings.TrimPrefix(pid.Id, prefix)); ref != nil {
				out = append(out, ref)
			}
		}
	}
	return out
}

// pushUserLocal pushes to the user's sessions on this node.
func (h *Hub) pushUserLocal(userID, channel string, data json.RawMessage) int {
	refs := h.users.of(userID)
	for _, ref := range refs {
		h.root.Send(ref.pid, &Push{ClientID: ref.id, Channel: channel, Data: data})
	}
	return len(refs)
}

// disconnectUserLocal ends the user's sessions on this node.
func (h *Hub) disconnectUserLocal(userID string, k *kick) int {
	refs := h.users.of(userID)
	for _, ref := range refs {
		h.root.Send(ref.pid, k)
	}
	return len(refs)
}
