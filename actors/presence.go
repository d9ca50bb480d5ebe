package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bayeuxhub/bayeuxhub/acl"
	"github.com/bayeuxhub/bayeuxhub/protocol"
)

// This file holds presence: who is subscribed to the channels whose rule
// asks for it (acl.Rule.Presence). The session calls presenceJoined when
// one of its subscriptions to such a channel takes effect and presenceLeft
// when it ends (unsubscribe, or the session ending).
//
// A member is a user (every session of one user id counts as one member)
// or an anonymous session. Each hub keeps one view of every presence
// channel, under presence.mu: its own sessions (exact) and, with a
// Broker, the other hubs' (replicated). A member's sessions are summed
// over the hubs; when the sum leaves 0 the hub publishes a join event on
// the channel's companion channel, /bayeuxhub/presence<channel>, to its
// own subscribers; when it comes back to 0, a leave event. Every hub does
// that from its own view, so the events are never passed between hubs
// (they would arrive twice): what travels over the broker, on the
// internal channel presenceWire that the hub never routes to clients, are
// the hubs' changes to their own sessions, each numbered, with a
// heartbeat every PresenceOptions.Heartbeat that carries the last number.
// A hub that misses a number (NATS is at most once), that hears of a hub
// it does not know (at its start), or that finds a hub restarted (a new
// epoch) fetches that hub's state whole with Broker.Query (presence-sync:
// a snapshot, in pages) and publishes the difference as events. A hub
// that says goodbye (Shutdown) or that has not been heard from for
// presenceMissed heartbeats is gone: its members' sessions are taken out
// of the view, and the members that had no other session leave.
//
// Events are published in the order the view changed, by one goroutine
// (presenceLoop): presenceJoined and presenceLeft, on session goroutines,
// only change the view under the lock and queue what is to be sent.

// PresenceChannelPrefix is put before a channel's name to name its
// companion channel, where join and leave events are published:
// /bayeuxhub/presence/chat/demo for /chat/demo.
const PresenceChannelPrefix = "/bayeuxhub/presence"

// Defaults of PresenceOptions.
const (
	DefaultMaxPresenceMembers  = 10000
	DefaultMaxPresenceChannels = 10000
	DefaultPresenceHeartbeat   = time.Second
)

const (
	// presenceService is the built-in service: /service/presence.
	presenceService = "presence"
	// presenceWire is the internal channel the hubs tell each other their
	// changes on; the hub never routes it to subscribers (clients cannot
	// subscribe to /meta channels).
	presenceWire = "/meta/bayeuxhub/presence"
	// presenceMissed is how many heartbeats a hub may miss before the
	// others take it to be gone.
	presenceMissed = 3
	// presenceQueueMax bounds the events waiting for presenceLoop; past it
	// they are dropped and counted (a dropped change for the other hubs
	// makes them fetch this hub's state again).
	presenceQueueMax = 1 << 16
	// presenceBufferMax bounds the changes of another hub kept while its
	// state is being fetched.
	presenceBufferMax = 1 << 16
	// presencePageBytes is the most member JSON in one page of a snapshot,
	// well under NATS's 1 MiB max_payload once base64-encoded.
	presencePageBytes = 256 << 10
	// presenceSnapshots bounds the snapshots kept for hubs fetching them
	// page by page, each for presenceSnapshotTTL.
	presenceSnapshots   = 16
	presenceSnapshotTTL = 30 * time.Second

	queryPresence     = "presence"
	queryPresenceSync = "presence-sync"
)

// PresenceOptions bounds and paces presence (Options.Presence). The zero
// value has the defaults.
type PresenceOptions struct {
	// MaxMembers bounds the members of one channel, as a hub sees them
	// (every hub's members together); a join past it is not tracked (no
	// event, not in answers) for as long as that subscription lasts, and
	// is counted in PresenceStats.Untracked. Default
	// DefaultMaxPresenceMembers, negative for no bound.
	MaxMembers int
	// MaxChannels bounds the presence channels with members; a join to a
	// further channel is not tracked, and counted. Default
	// DefaultMaxPresenceChannels, negative for no bound.
	MaxChannels int
	// Heartbeat is how often, with a Broker, a hub tells the others that
	// it is there and how far its presence changes have got (default
	// DefaultPresenceHeartbeat). A hub not heard from for three
	// heartbeats is taken to be gone and its members leave: within four
	// heartbeats of its last one.
	Heartbeat time.Duration
}

// Member is one member of a presence channel: a user, all of its
// sessions together, or an anonymous session.
type Member struct {
	// UserID is the user's id; empty for an anonymous session.
	UserID string `json:"user,omitempty"`
	// Anonymous, for an anonymous session, is an opaque id derived from
	// its client id (which clients must not learn: it would let them poll
	// as that client).
	Anonymous string `json:"anonymous,omitempty"`
	// Info is the user's info from its handshake (token or hook), when
	// there is one: that of its first session.
	Info json.RawMessage `json:"info,omitempty"`
	// Sessions is how many of the member's sessions are subscribed.
	Sessions int `json:"sessions"`
	// ClientIDs are those sessions' client ids, sorted: in Hub.Presence's
	// answer only (the backend API), never in what clients get.
	ClientIDs []string `json:"client_ids,omitempty"`
}

// PresenceStats are a hub's presence figures (Stats.Presence).
type PresenceStats struct {
	// Channels and Members are the presence channels with members and
	// their members (summed over the channels), as this hub sees them:
	// other hubs' members included.
	Channels, Members int
	// Untracked counts joins not tracked: past MaxMembers or MaxChannels.
	Untracked uint64
	// EventsDropped counts join and leave events not published: the hub
	// was draining, or too far behind (and the changes other hubs missed
	// for that reason).
	EventsDropped uint64
	// Syncs counts other hubs' states fetched whole (at a hub's start, or
	// after a lost change); SyncFailures the fetches that failed and were
	// tried again.
	Syncs, SyncFailures uint64
}

// presence is a hub's presence state (Hub.presence).
type presence struct {
	ready  atomic.Bool // startPresence found a rule with Presence
	rules  []bool      // per rule index: has Presence
	broker bool
	node   string
	epoch  string // this run of the hub: a restarted hub starts afresh
	max    struct{ members, channels int }
	beat   time.Duration

	mu       sync.Mutex
	channels map[string]*presenceChannel
	members  int                      // over channels
	nodes    map[string]*presenceNode // the other hubs heard from
	seq      uint64                   // changes of this hub's own sessions told to the others
	queue    []presenceOut
	snaps    map[string]*presenceSnap

	wake, syncWake chan struct{} // capacity 1
	stop           chan struct{}
	stopOnce       sync.Once
	cancel         context.CancelFunc
	wg             sync.WaitGroup

	untracked, dropped, syncs, syncFailures atomic.Uint64
}

type presenceChannel struct {
	members map[string]*presenceMember // by memberKey
}

// presenceMember is one member of a channel in a hub's view.
type presenceMember struct {
	user   string
	anon   string // the client id of an anonymous member
	info   json.RawMessage
	own    map[string]struct{} // this hub's sessions, by client id
	remote map[string]int      // other hubs' sessions, by node
	total  int
}

// presenceNode is what a hub knows of another hub's presence.
type presenceNode struct {
	epoch   string
	seq     uint64 // its last change applied
	seen    uint64 // the highest change number heard of
	heard   time.Time
	beat    time.Duration // its heartbeat interval
	syncing bool          // a change was missed: its state is being fetched
	buf     []presenceBuffered
	over    bool // buf overflowed during a fetch
}

type presenceBuffered struct {
	seq uint64
	e   presenceEntry
}

// presenceOut is what presenceLoop sends: an event for this hub's
// subscribers, or a change for the other hubs.
type presenceOut struct {
	local *Message
	wire  []byte
}

// presenceEntry is one member's sessions on one hub, as hubs tell each
// other.
type presenceEntry struct {
	Channel  string          `json:"c"`
	User     string          `json:"u,omitempty"`
	Anon     string          `json:"a,omitempty"`
	Info     json.RawMessage `json:"i,omitempty"`
	Sessions int             `json:"k"`
}

// presenceWireMsg is a message on presenceWire: a change, a heartbeat
// or a goodbye.
type presenceWireMsg struct {
	Node  string `json:"n"`
	Epoch string `json:"e"`
	Seq   uint64 `json:"s"`
	Beat  int64  `json:"b,omitempty"` // the sender's heartbeat interval, in milliseconds
	HB    bool   `json:"hb,omitempty"`
	Bye   bool   `json:"bye,omitempty"`
	presenceEntry
}

// presenceEvent is the data of a join or leave event.
type presenceEvent struct {
	Action    string          `json:"action"`
	Channel   string          `json:"channel"`
	User      string          `json:"user,omitempty"`
	Anonymous string          `json:"anonymous,omitempty"`
	Info      json.RawMessage `json:"info,omitempty"`
}

// presenceAnswer is /service/presence's answer.
type presenceAnswer struct {
	Channel string   `json:"channel"`
	Members []Member `json:"members"`
}

// presenceSyncReq asks a hub (Node) for a page of its snapshot; the
// first page (no ID) makes the snapshot.
type presenceSyncReq struct {
	Node string `json:"node"`
	ID   string `json:"id,omitempty"`
	Page int    `json:"page,omitempty"`
}

type presenceSyncAnswer struct {
	Epoch   string          `json:"e"`
	Seq     uint64          `json:"s"`
	ID      string          `json:"id,omitempty"`
	Pages   int             `json:"pages"`
	Members json.RawMessage `json:"m"`
}

// presenceSnap is a snapshot of this hub's own members, kept while
// another hub fetches its pages.
type presenceSnap struct {
	seq   uint64
	pages [][]byte
	at    time.Time
}

// startPresence sets presence up when a rule asks for it: with a broker,
// it subscribes to the other hubs' changes and starts fetching their
// states.
func (h *Hub) startPresence() {
	p := &h.presence
	rules := h.opts.Rules
	p.rules = make([]bool, rules.Len())
	on := false
	for i := range p.rules {
		p.rules[i] = rules.Rule(i).Presence
		on = on || p.rules[i]
	}
	if !on {
		return
	}
	o := h.opts.Presence
	p.max.members = limit(o.MaxMembers, DefaultMaxPresenceMembers)
	p.max.channels = limit(o.MaxChannels, DefaultMaxPresenceChannels)
	p.beat = o.Heartbeat
	if p.beat <= 0 {
		p.beat = DefaultPresenceHeartbeat
	}
	p.broker, p.node, p.epoch = h.opts.Broker != nil, h.opts.NodeName, newClientID()[:16]
	p.channels = make(map[string]*presenceChannel)
	p.nodes = make(map[string]*presenceNode)
	p.snaps = make(map[string]*presenceSnap)
	p.wake, p.syncWake, p.stop = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go h.presenceLoop()
	if p.broker {
		h.brokerSubscription(presenceWire, true)
		p.wg.Add(1)
		go h.presenceSyncLoop(ctx)
	}
	p.ready.Store(true)
}

// stopPresence stops presence's goroutines, once the sessions have
// stopped: the other hubs are sent this hub's last changes and its
// goodbye.
func (h *Hub) stopPresence() {
	p := &h.presence
	if !p.ready.Load() {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stop)
		p.cancel()
	})
	p.wg.Wait()
}

// tracks reports whether a session's subscription to channel is
// presence's: a remote session, a channel name (not a pattern) whose
// first matching rule has Presence, outside the hub's own channels.
func (p *presence) tracks(ref *sessionRef, rules *acl.Rules, channel string) bool {
	return p.ready.Load() && !ref.local && p.channelTracked(rules, channel)
}

func (p *presence) channelTracked(rules *acl.Rules, channel string) bool {
	if strings.HasPrefix(channel, "/bayeuxhub/") || protocol.IsMeta(channel) || protocol.IsService(channel) {
		return false
	}
	i := rules.Match(channel)
	return i >= 0 && i < len(p.rules) && p.rules[i]
}

// memberKey is the key of a session's member: its user, or itself.
func memberKey(user, clientID string) string {
	if user != "" {
		return "u" + user
	}
	return "a" + clientID
}

// anonymousID is the opaque id of an anonymous member.
func anonymousID(clientID string) string {
	if clientID == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("bayeuxhub presence\x00" + clientID))
	return hex.EncodeToString(sum[:12])
}

// cleanInfo returns info if it may be passed on (valid JSON in UTF-8),
// else nil.
func cleanInfo(info []byte) json.RawMessage {
	if len(info) == 0 || !json.Valid(info) || !utf8.Valid(info) {
		return nil
	}
	return json.RawMessage(info)
}

// presenceJoined notes that ref's client is now subscribed to channel.
func (h *Hub) presenceJoined(ref *sessionRef, channel string) {
	p := &h.presence
	if !p.tracks(ref, h.opts.Rules, channel) {
		return
	}
	key := memberKey(ref.subject.UserID, ref.id)
	p.mu.Lock()
	c, m := p.member(channel, key, true)
	if m == nil {
		p.mu.Unlock()
		p.untracked.Add(1)
		return
	}
	if m.total == 0 && len(m.own) == 0 && len(m.remote) == 0 { // new
		m.user = ref.subject.UserID
		if m.user == "" {
			m.anon = ref.id
		}
	}
	if m.info == nil {
		m.info = cleanInfo(ref.info)
	}
	if _, dup := m.own[ref.id]; !dup {
		if m.own == nil {
			m.own = make(map[string]struct{}, 1)
		}
		m.own[ref.id] = struct{}{}
		h.presenceTell(channel, m)
		h.presenceAdjust(channel, c, key, m, 1)
	}
	p.mu.Unlock()
	p.signal()
}

// presenceLeft notes that ref's client is no longer subscribed to channel.
func (h *Hub) presenceLeft(ref *sessionRef, channel string) {
	p := &h.presence
	if !p.tracks(ref, h.opts.Rules, channel) {
		return
	}
	key := memberKey(ref.subject.UserID, ref.id)
	p.mu.Lock()
	c, m := p.member(channel, key, false)
	if m == nil {
		p.mu.Unlock()
		return
	}
	if _, ok := m.own[ref.id]; !ok { // its join was not tracked
		p.mu.Unlock()
		return
	}
	delete(m.own, ref.id)
	h.presenceTell(channel, m)
	h.presenceAdjust(channel, c, key, m, -1)
	p.mu.Unlock()
	p.signal()
}

// member returns channel's member for key, creating it (and the
// channel) when create is set and the limits allow; m is nil otherwise.
// Under p.mu.
func (p *presence) member(channel, key string, create bool) (c *presenceChannel, m *presenceMember) {
	c = p.channels[channel]
	if c == nil {
		if !create || p.max.channels > 0 && len(p.channels) >= p.max.channels {
			return nil, nil
		}
		c = &presenceChannel{members: make(map[string]*presenceMember)}
		p.channels[channel] = c
	}
	if m = c.members[key]; m != nil || !create {
		return c, m
	}
	if p.max.members > 0 && len(c.members) >= p.max.members {
		return c, nil
	}
	m = &presenceMember{}
	c.members[key] = m
	p.members++
	return c, m
}

// presenceAdjust adds delta to a member's sessions and, when they leave
// or come back to 0, queues its join or leave event (and forgets it).
// Under p.mu.
func (h *Hub) presenceAdjust(channel string, c *presenceChannel, key string, m *presenceMember, delta int) {
	p := &h.presence
	before := m.total
	m.total += delta
	switch {
	case before <= 0 && m.total > 0:
		h.presenceEvent("join", channel, m)
	case m.total <= 0:
		if before > 0 {
			h.presenceEvent("leave", channel, m)
		}
		delete(c.members, key)
		p.members--
		if len(c.members) == 0 {
			delete(p.channels, channel)
		}
	}
}

// presenceEvent queues a join or leave event for this hub's subscribers
// of the channel's companion channel. Under p.mu.
func (h *Hub) presenceEvent(action, channel string, m *presenceMember) {
	name := PresenceChannelPrefix + channel
	if h.checkName(name) != nil {
		return // nobody can subscribe to it
	}
	data, err := json.Marshal(presenceEvent{Action: action, Channel: channel, User: m.user,
		Anonymous: anonymousID(m.anon), Info: m.info})
	if err != nil {
		return
	}
	h.presence.enqueue(presenceOut{local: &Message{Channel: name, Data: data}})
}

// presenceTell queues the change of a member's sessions on this hub for
// the other hubs. Under p.mu.
func (h *Hub) presenceTell(channel string, m *presenceMember) {
	p := &h.presence
	if !p.broker {
		return
	}
	p.seq++
	data, err := json.Marshal(presenceWireMsg{Node: p.node, Epoch: p.epoch, Seq: p.seq, Beat: p.beat.Milliseconds(),
		presenceEntry: presenceEntry{Channel: channel, User: m.user, Anon: m.anon, Info: m.info, Sessions: len(m.own)}})
	if err != nil {
		return // the others will see the gap and fetch this hub's state
	}
	p.enqueue(presenceOut{wire: data})
}

// enqueue queues what presenceLoop is to send, or drops it past
// presenceQueueMax. Under p.mu.
func (p *presence) enqueue(o presenceOut) {
	if len(p.queue) >= presenceQueueMax {
		p.dropped.Add(1)
		return
	}
	p.queue = append(p.queue, o)
}

// signal wakes presenceLoop.
func (p *presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// presenceLoop sends what the view's changes queued, in order: events to
// this hub's subscribers, changes and heartbeats to the other hubs. With
// a broker it also sends a heartbeat every PresenceOptions.Heartbeat and
// forgets the hubs that have been silent for presenceMissed of them.
func (h *Hub) presenceLoop() {
	p := &h.presence
	defer p.wg.Done()
	var tick <-chan time.Time
	if p.broker {
		t := time.NewTicker(p.beat)
		defer t.Stop()
		tick = t.C
		h.presenceFlush(true) // a hello: the others fetch this hub's state if they need to
	}
	for {
		select {
		case <-p.wake:
			h.presenceFlush(false)
		case now := <-tick:
			if h.presenceExpire(now) {
				select {
				case p.syncWake <- struct{}{}:
				default:
				}
			}
			h.presenceFlush(true)
		case <-p.stop:
			h.presenceFlush(false)
			if p.broker {
				h.presenceSendWire(presenceWireMsg{Bye: true})
			}
			return
		}
	}
}

// presenceFlush sends what is queued and, when beat is set, a heartbeat
// with the number of the last change sent.
func (h *Hub) presenceFlush(beat bool) {
	p := &h.presence
	p.mu.Lock()
	out, seq := p.queue, p.seq
	p.queue = nil
	p.mu.Unlock()
	for _, o := range out {
		if o.wire != nil {
			h.brokerPublish(&Message{Channel: presenceWire, Data: o.wire})
		}
		if o.local != nil {
			h.presencePublish(o.local)
		}
	}
	if beat {
		h.presenceSendWire(presenceWireMsg{HB: true, Seq: seq})
	}
}

// presenceSendWire sends a heartbeat or a goodbye to the other hubs.
func (h *Hub) presenceSendWire(w presenceWireMsg) {
	p := &h.presence
	if w.Bye {
		p.mu.Lock()
		w.Seq = p.seq
		p.mu.Unlock()
	}
	w.Node, w.Epoch, w.Beat = p.node, p.epoch, p.beat.Milliseconds()
	if c, ok := h.opts.Broker.(interface{ Connected() bool }); ok && !c.Connected() {
		return // not an error to count every heartbeat while NATS is away
	}
	if data, err := json.Marshal(w); err == nil {
		h.brokerPublish(&Message{Channel: presenceWire, Data: data})
	}
}

// presencePublish routes a join or leave event to this hub's
// subscribers, as a server publish that does not go to the broker (every
// hub publishes its own). While the hub drains it is dropped.
func (h *Hub) presencePublish(m *Message) {
	if !h.publishing.enter() {
		h.presence.dropped.Add(1)
		return
	}
	defer h.publishing.leave()
	h.stats.published.Add(1)
	h.routeLocal(h.root, m)
	h.emit(Event{Type: EventPublish, Channel: m.Channel, Data: m.Data})
}

// presenceExpire forgets the hubs not heard from for presenceMissed of
// their heartbeats (their members' sessions leave) and reports whether
// any hub's state is still to be fetched.
func (h *Hub) presenceExpire(now time.Time) (syncing bool) {
	p := &h.presence
	p.mu.Lock()
	for name, nx := range p.nodes {
		if now.Sub(nx.heard) > presenceMissed*nx.beat {
			h.presenceDrop(name)
			delete(p.nodes, name)
			continue
		}
		syncing = syncing || nx.syncing
	}
	p.mu.Unlock()
	p.signal()
	return syncing
}

// presenceDrop takes a hub's sessions out of the view. Under p.mu.
func (h *Hub) presenceDrop(node string) {
	p := &h.presence
	for name, c := range p.channels {
		for key, m := range c.members {
			if k := m.remote[node]; k > 0 {
				delete(m.remote, node)
				h.presenceAdjust(name, c, key, m, -k)
			}
		}
	}
}

// presenceSet sets a member's sessions on another hub. Under p.mu.
func (h *Hub) presenceSet(node string, e *presenceEntry) {
	p := &h.presence
	if !p.channelTracked(h.opts.Rules, e.Channel) || e.Sessions < 0 || (e.User == "") == (e.Anon == "") {
		return
	}
	key := memberKey(e.User, e.Anon)
	c, m := p.member(e.Channel, key, false)
	old := 0
	if m != nil {
		old = m.remote[node]
	}
	if e.Sessions == old {
		return
	}
	if m == nil {
		if c, m = p.member(e.Channel, key, true); m == nil {
			p.untracked.Add(1)
			return
		}
		m.user, m.anon, m.info = e.User, e.Anon, cleanInfo(e.Info)
	}
	if e.Sessions == 0 {
		delete(m.remote, node)
	} else {
		if m.remote == nil {
			m.remote = make(map[string]int, 1)
		}
		m.remote[node] = e.Sessions
	}
	h.presenceAdjust(e.Channel, c, key, m, e.Sessions-old)
}

// presenceReceive takes a message another hub sent on presenceWire
// (the broker's delivering goroutine calls it through the inbox).
func (h *Hub) presenceReceive(m *Message) {
	p := &h.presence
	if !p.ready.Load() || !p.broker {
		return
	}
	var w presenceWireMsg
	if json.Unmarshal(m.Data, &w) != nil || w.Node == p.node || !nodeName.MatchString(w.Node) || w.Epoch == "" {
		return
	}
	fetch := false
	p.mu.Lock()
	nx := p.nodes[w.Node]
	if nx != nil && nx.epoch != w.Epoch { // it restarted
		h.presenceDrop(w.Node)
		delete(p.nodes, w.Node)
		nx = nil
	}
	switch {
	case w.Bye:
		if nx != nil {
			h.presenceDrop(w.Node)
			delete(p.nodes, w.Node)
		}
	default:
		if nx == nil {
			nx = &presenceNode{epoch: w.Epoch}
			p.nodes[w.Node] = nx
		}
		nx.heard, nx.beat = time.Now(), p.beat
		if w.Beat > 0 {
			nx.beat = time.Duration(w.Beat) * time.Millisecond
		}
		nx.seen = max(nx.seen, w.Seq)
		switch {
		case nx.syncing:
			if !w.HB {
				if len(nx.buf) < presenceBufferMax {
					nx.buf = append(nx.buf, presenceBuffered{w.Seq, w.presenceEntry})
				} else {
					nx.over = true
				}
			}
		case w.Seq <= nx.seq: // a heartbeat in step
		case !w.HB && w.Seq == nx.seq+1:
			h.presenceSet(w.Node, &w.presenceEntry)
			nx.seq = w.Seq
		default: // a change was missed, or this hub has just heard of it
			nx.syncing, fetch = true, true
		}
	}
	p.mu.Unlock()
	p.signal()
	if fetch {
		select {
		case p.syncWake <- struct{}{}:
		default:
		}
	}
}

// presenceSyncLoop fetches the states of the hubs whose changes were
// missed, when told to (by presenceReceive, and by presenceLoop at every
// heartbeat while some are left).
func (h *Hub) presenceSyncLoop(ctx context.Context) {
	p := &h.presence
	defer p.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.syncWake:
		}
		p.mu.Lock()
		var todo []string
		for name, nx := range p.nodes {
			if nx.syncing {
				todo = append(todo, name)
			}
		}
		p.mu.Unlock()
		sort.Strings(todo)
		for _, node := range todo {
			if ctx.Err() != nil {
				return
			}
			if err := h.presenceSync(ctx, node); err != nil {
				p.syncFailures.Add(1)
				h.log.Debug().Err(err).Str("node", node).Msg("presence: fetching a hub's state failed; trying again")
			}
		}
	}
}

// presenceSync fetches a hub's state and puts it in the view in place of
// what the view had of it; the changes it made meanwhile are applied on
// top. Events go out for the difference.
func (h *Hub) presenceSync(ctx context.Context, node string) error {
	p := &h.presence
	p.mu.Lock()
	nx := p.nodes[node]
	if nx == nil || !nx.syncing {
		p.mu.Unlock()
		return nil
	}
	// Every change with a number above the snapshot's reaches this hub
	// after this point: the snapshot is taken after the question.
	epoch := nx.epoch
	nx.buf, nx.over = nil, false
	p.mu.Unlock()

	qctx, cancel := context.WithTimeout(ctx, DefaultClusterTimeout)
	defer cancel()
	snapEpoch, snapSeq, entries, err := h.presenceFetch(qctx, node)
	if err != nil {
		return err
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	nx = p.nodes[node]
	switch {
	case nx == nil || !nx.syncing:
		return nil // gone, or restarted
	case nx.epoch != epoch || snapEpoch != epoch:
		return errors.New("it restarted meanwhile")
	case nx.over:
		return errors.New("too many changes meanwhile")
	}
	final := make(map[[2]string]presenceEntry, len(entries))
	for _, e := range entries {
		if e.Sessions > 0 && (e.User == "") != (e.Anon == "") {
			final[[2]string{e.Channel, memberKey(e.User, e.Anon)}] = e
		}
	}
	last := snapSeq
	for _, b := range nx.buf {
		if b.seq <= last {
			continue
		}
		if b.seq != last+1 {
			return fmt.Errorf("change %d missed meanwhile", last+1)
		}
		final[[2]string{b.e.Channel, memberKey(b.e.User, b.e.Anon)}] = b.e
		last = b.seq
	}
	if nx.seen > last {
		return fmt.Errorf("changes up to %d missed meanwhile", nx.seen)
	}
	// Replace: what the view has of the hub, then what it lacks.
	for name, c := range p.channels {
		for key, m := range c.members {
			old := m.remote[node]
			if old == 0 {
				continue
			}
			e, ok := final[[2]string{name, key}]
			if !ok {
				e = presenceEntry{Channel: name, User: m.user, Anon: m.anon}
			}
			delete(final, [2]string{name, key})
			h.presenceSet(node, &e)
		}
	}
	keys := make([][2]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	for _, k := range keys {
		e := final[k]
		h.presenceSet(node, &e)
	}
	nx.seq, nx.syncing, nx.buf = last, false, nil
	p.syncs.Add(1)
	p.signal()
	return nil
}

// presenceFetch asks a hub for its snapshot, page by page.
func (h *Hub) presenceFetch(ctx context.Context, node string) (epoch string, seq uint64, entries []presenceEntry, err error) {
	ask := func(req presenceSyncReq) (*presenceSyncAnswer, error) {
		body, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		answers, _, err := h.opts.Broker.Query(ctx, queryPresenceSync, body)
		if err != nil {
			return nil, err
		}
		for _, a := range answers {
			if a.Node != node {
				continue
			}
			if a.Err != "" {
				return nil, errors.New(a.Err)
			}
			var ans presenceSyncAnswer
			if err := json.Unmarshal(a.Body, &ans); err != nil {
				return nil, fmt.Errorf("unreadable snapshot: %w", err)
			}
			return &ans, nil
		}
		return nil, errors.New("no answer")
	}
	first, err := ask(presenceSyncReq{Node: node})
	if err != nil {
		return "", 0, nil, err
	}
	for page := 0; page < first.Pages; page++ {
		a := first
		if page > 0 {
			if a, err = ask(presenceSyncReq{Node: node, ID: first.ID, Page: page}); err != nil {
				return "", 0, nil, err
			}
			if a.Epoch != first.Epoch || a.Seq != first.Seq {
				return "", 0, nil, errors.New("snapshot changed")
			}
		}
		var list []presenceEntry
		if err := json.Unmarshal(a.Members, &list); err != nil {
			return "", 0, nil, fmt.Errorf("unreadable snapshot page: %w", err)
		}
		entries = append(entries, list...)
	}
	return first.Epoch, first.Seq, entries, nil
}

// presenceSyncAnswer answers another hub's presence-sync question: a
// page of this hub's snapshot ("null" when the question is for another
// hub: every hub is asked).
func (h *Hub) presenceSyncAnswer(body []byte) ([]byte, error) {
	p := &h.presence
	var req presenceSyncReq
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("presence-sync query: %w", err)
	}
	if req.Node != h.opts.NodeName {
		return []byte("null"), nil
	}
	if !p.ready.Load() {
		return nil, errors.New("presence is off on this hub")
	}
	now := time.Now()
	if req.ID == "" {
		p.mu.Lock()
		seq := p.seq
		var entries []presenceEntry
		for name, c := range p.channels {
			for _, m := range c.members {
				if len(m.own) > 0 {
					entries = append(entries, presenceEntry{Channel: name, User: m.user, Anon: m.anon, Info: m.info, Sessions: len(m.own)})
				}
			}
		}
		p.mu.Unlock()
		snap := &presenceSnap{seq: seq, pages: presencePages(entries), at: now}
		id := ""
		if len(snap.pages) > 1 {
			id = newClientID()[:16]
			p.mu.Lock()
			for k, s := range p.snaps {
				if now.Sub(s.at) > presenceSnapshotTTL {
					delete(p.snaps, k)
				}
			}
			if len(p.snaps) < presenceSnapshots {
				p.snaps[id] = snap
			}
			p.mu.Unlock()
		}
		return json.Marshal(presenceSyncAnswer{Epoch: p.epoch, Seq: snap.seq, ID: id, Pages: len(snap.pages), Members: snap.pages[0]})
	}
	p.mu.Lock()
	snap := p.snaps[req.ID]
	if snap != nil && req.Page == len(snap.pages)-1 {
		delete(p.snaps, req.ID)
	}
	p.mu.Unlock()
	if snap == nil || req.Page < 1 || req.Page >= len(snap.pages) {
		return nil, errors.New("no such snapshot page (expired?)")
	}
	return json.Marshal(presenceSyncAnswer{Epoch: p.epoch, Seq: snap.seq, ID: req.ID, Pages: len(snap.pages), Members: snap.pages[req.Page]})
}

// presencePages encodes entries as JSON arrays of at most about
// presencePageBytes each; there is at least one.
func presencePages(entries []presenceEntry) [][]byte {
	var pages [][]byte
	page := []byte{'['}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			continue
		}
		if len(page) > 1 && len(page)+len(b) > presencePageBytes {
			pages = append(pages, append(page, ']'))
			page = []byte{'['}
		}
		if len(page) > 1 {
			page = append(page, ',')
		}
		page = append(page, b...)
	}
	return append(pages, append(page, ']'))
}

// presenceQuery answers the presence questions of other hubs
// (Hub.answer); ok is false for another op.
func (h *Hub) presenceQuery(op string, body []byte) (out []byte, ok bool, err error) {
	switch op {
	case queryPresence:
		var req struct {
			Channel string `json:"channel"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, true, fmt.Errorf("presence query: %w", err)
		}
		if err := h.checkPresenceChannel(req.Channel); err != nil {
			return nil, true, err
		}
		out, err = json.Marshal(h.presenceOwn(req.Channel))
		return out, true, err
	case queryPresenceSync:
		out, err = h.presenceSyncAnswer(body)
		return out, true, err
	}
	return nil, false, nil
}

// errNoPresence refuses a presence question about a channel whose rule
// does not keep presence.
func errNoPresence(channel string) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeBadRequest, Args: []string{channel}, Message: "Presence is not kept for this channel"}
}

// checkPresenceChannel refuses a presence question about anything but a
// channel name whose rule keeps presence.
func (h *Hub) checkPresenceChannel(channel string) *protocol.Error {
	if err := h.checkName(channel); err != nil {
		return err
	}
	kind, err := protocol.ParseChannel(channel)
	if err != nil {
		return protocol.AsError(err)
	}
	if kind != protocol.KindRegular || !h.presence.ready.Load() || !h.presence.channelTracked(h.opts.Rules, channel) {
		return errNoPresence(channel)
	}
	return nil
}

// presenceOwn lists the members of channel on this hub, with their
// sessions' client ids.
func (h *Hub) presenceOwn(channel string) []Member {
	p := &h.presence
	if !p.ready.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.channels[channel]
	if c == nil {
		return nil
	}
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		if len(m.own) == 0 {
			continue
		}
		ids := make([]string, 0, len(m.own))
		for id := range m.own {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out = append(out, Member{UserID: m.user, Anonymous: anonymousID(m.anon), Info: m.info, Sessions: len(m.own), ClientIDs: ids})
	}
	return out
}

// presenceView lists the members of channel as this hub sees them, every
// hub's sessions counted, without client ids: what clients get.
func (h *Hub) presenceView(channel string) []Member {
	p := &h.presence
	out := []Member{}
	p.mu.Lock()
	if c := p.channels[channel]; c != nil {
		for _, m := range c.members {
			out = append(out, Member{UserID: m.user, Anonymous: anonymousID(m.anon), Info: m.info, Sessions: m.total})
		}
	}
	p.mu.Unlock()
	sortMembers(out)
	return out
}

// sortMembers sorts users by id, then anonymous members by their id.
func sortMembers(list []Member) {
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if (a.UserID == "") != (b.UserID == "") {
			return a.UserID != ""
		}
		if a.UserID != b.UserID {
			return a.UserID < b.UserID
		}
		return a.Anonymous < b.Anonymous
	})
}

// Presence returns the members of a presence channel (a channel name
// whose first matching rule has acl.Rule.Presence), on every hub, sorted:
// users by id, then anonymous sessions. A user's sessions on several
// hubs are one member; ClientIDs lists them all. Other channels are
// refused with a *protocol.Error (400 "Presence is not kept for this
// channel", or the channel name's error).
func (h *Hub) Presence(ctx context.Context, channel string) ([]Member, Coverage, error) {
	if err := h.checkPresenceChannel(channel); err != nil {
		return nil, Coverage{}, fmt.Errorf("presence of %s: %w", channel, err)
	}
	merged := make(map[string]*Member)
	add := func(list []Member) {
		for _, m := range list {
			key := memberKey(m.UserID, m.Anonymous)
			cur := merged[key]
			if cur == nil {
				first := m
				first.ClientIDs = slices.Clone(m.ClientIDs)
				merged[key] = &first
				continue
			}
			cur.Sessions += m.Sessions
			cur.ClientIDs = append(cur.ClientIDs, m.ClientIDs...)
			if cur.Info == nil {
				cur.Info = m.Info
			}
		}
	}
	add(h.presenceOwn(channel))
	body, err := json.Marshal(struct {
		Channel string `json:"channel"`
	}{channel})
	if err != nil {
		return nil, Coverage{}, fmt.Errorf("presence of %s: %w", channel, err)
	}
	cov, err := h.askCluster(ctx, queryPresence, body, func(b []byte) error {
		var list []Member
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		add(list)
		return nil
	})
	out := make([]Member, 0, len(merged))
	for _, m := range merged {
		sort.Strings(m.ClientIDs)
		m.ClientIDs = slices.Compact(m.ClientIDs)
		out = append(out, *m)
	}
	sortMembers(out)
	return out, cov, err
}

// presenceServiceFunc is the built-in /service/presence: for a request
// with data {"channel": "/chat/demo"} it answers the caller with
// {"channel": ..., "members": [...]} as this hub sees them (every hub's
// members, without client ids), when the caller may subscribe to the
// channel under the channel rules.
func (h *Hub) presenceServiceFunc(c *Client, m *protocol.Message) ([]ServiceReply, error) {
	var req struct {
		Channel string `json:"channel"`
	}
	if len(m.Data) == 0 || json.Unmarshal(m.Data, &req) != nil || req.Channel == "" {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Args: []string{m.Channel}, Message: `Ask with data {"channel": "<channel name>"}`}
	}
	ref := h.lookupSession(c.ID)
	if ref == nil {
		return nil, protocol.ErrUnknownClient(c.ID)
	}
	if err := h.checkPresenceChannel(req.Channel); err != nil {
		return nil, err
	}
	if _, perr := h.checkRule(ref.subject, acl.Subscribe, req.Channel, c.ID); perr != nil {
		return nil, perr
	}
	return []ServiceReply{{Data: presenceAnswer{Channel: req.Channel, Members: h.presenceView(req.Channel)}}}, nil
}

// presenceService returns the built-in service handler for name, when it
// is "presence" and presence is on (callService: Options.Services comes
// first).
func (h *Hub) presenceService(name string) ServiceFunc {
	if name != presenceService || !h.presence.ready.Load() {
		return nil
	}
	return h.presenceServiceFunc
}

// presenceUnderlying returns the channels whose presence events a
// subscription to pattern can receive ("" for none): /chat/demo for
// /bayeuxhub/presence/chat/demo, /chat/** for /bayeuxhub/presence/chat/**,
// /** for /bayeuxhub/presence/**, /bayeuxhub/** and /**.
func presenceUnderlying(pattern string) string {
	switch {
	case pattern == "/**" || pattern == "/bayeuxhub/**" || pattern == PresenceChannelPrefix+"/**":
		return "/**"
	case strings.HasPrefix(pattern, PresenceChannelPrefix+"/"):
		return pattern[len(PresenceChannelPrefix):]
	}
	return ""
}

// checkPresenceSubscribe refuses a subscription that can receive the
// presence events of channels the subject may not subscribe to (the
// companion channels are under /bayeuxhub/**, which anyone may subscribe
// to). checkRule calls it with the decision d of the rules, which
// allowed the subscription.
func (h *Hub) checkPresenceSubscribe(d acl.Decision, sub acl.Subject, pattern, clientID string) (acl.Decision, *protocol.Error) {
	under := ""
	if h.presence.ready.Load() {
		under = presenceUnderlying(pattern)
	}
	if under == "" {
		return d, nil
	}
	if u := h.opts.Rules.Check(sub, acl.Subscribe, under); !u.Allowed {
		d = u
	} else {
		return d, nil
	}
	return d, h.refuse(acl.Subscribe.String(), d.RuleName, refusedByRule, clientID,
		protocol.ErrDenied(pattern, "Presence of channels you may not subscribe to"))
}

// presenceStats returns the figures of Stats.Presence.
func (h *Hub) presenceStats() PresenceStats {
	p := &h.presence
	st := PresenceStats{Untracked: p.untracked.Load(), EventsDropped: p.dropped.Load(),
		Syncs: p.syncs.Load(), SyncFailures: p.syncFailures.Load()}
	if p.ready.Load() {
		p.mu.Lock()
		st.Channels, st.Members = len(p.channels), p.members
		p.mu.Unlock()
	}
	return st
}
