package actors

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// memoryHistory is the History a hub uses when Options.History is nil: in
// this process's memory, bounded per channel by the rule's Retention and
// in total by Options.MaxHistoryBytes (the oldest messages of the hub,
// whatever their channel, evicted first). Replay ids start, for each
// channel's history, at the time it began in milliseconds times 1024, so
// ids of a history that began later (after a restart, or after all of a
// channel's messages expired) are larger than the old ones: a client with
// an old id is told it is older than what is retained, never given a
// wrong position.
type memoryHistory struct {
	mu       sync.Mutex
	channels map[string]*channelHistory
	order    []storedRef // every stored message in append order, for the total bound
	head     int         // order[head:] is live
	bytes    int64
	maxBytes int64

	evicted atomic.Uint64
	now     func() time.Time
}

// channelHistory is one channel's retained messages, oldest first.
type channelHistory struct {
	epoch string
	next  int64 // the next replay id
	ttl   time.Duration
	msgs  []storedMsg
}

type storedMsg struct {
	m    *Message
	at   time.Time
	size int64
}

type storedRef struct {
	channel string
	id      int64
}

func newMemoryHistory(maxBytes int64) *memoryHistory {
	return &memoryHistory{channels: make(map[string]*channelHistory), maxBytes: maxBytes, now: time.Now}
}

// Append stores m and evicts what keep and the total bound no longer allow.
func (h *memoryHistory) Append(_ context.Context, m *Message, keep Retention) (Position, error) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.channels[m.Channel]
	if c == nil {
		base := now.UnixMilli() << 10
		c = &channelHistory{epoch: strconv.FormatInt(base, 36), next: base + 1}
		h.channels[m.Channel] = c
	}
	id := c.next
	c.next++
	c.ttl = keep.TTL
	// The caller's message is routed as it is; keep one of our own with its
	// position (its delivery JSON is then built once for every replay).
	stored := &Message{Channel: m.Channel, Data: m.Data, ID: m.ID, Ext: m.Ext, ClientID: m.ClientID,
		ReplayID: id, Epoch: c.epoch, salesforce: m.salesforce}
	size := int64(len(m.Channel) + len(m.Data) + len(m.ID) + len(m.Ext) + 64)
	c.msgs = append(c.msgs, storedMsg{m: stored, at: now, size: size})
	h.order = append(h.order, storedRef{channel: m.Channel, id: id})
	h.bytes += size
	h.trim(m.Channel, c, keep, now)
	for h.maxBytes > 0 && h.bytes > h.maxBytes && h.head < len(h.order) {
		h.evictOldest()
	}
	h.compact()
	return Position{ID: id, Epoch: c.epoch}, nil
}

// trim drops what keep no longer allows from one channel.
func (h *memoryHistory) trim(name string, c *channelHistory, keep Retention, now time.Time) {
	drop := 0
	if keep.Max > 0 && len(c.msgs) > keep.Max {
		drop = len(c.msgs) - keep.Max
	}
	if keep.TTL > 0 {
		for drop < len(c.msgs) && now.Sub(c.msgs[drop].at) > keep.TTL {
			drop++
		}
	}
	h.dropFront(name, c, drop)
}

// dropFront drops a channel's n oldest messages.
func (h *memoryHistory) dropFront(name string, c *channelHistory, n int) {
	if n <= 0 {
		return
	}
	for i := range n {
		h.bytes -= c.msgs[i].size
		c.msgs[i] = storedMsg{}
	}
	c.msgs = c.msgs[n:]
	h.evicted.Add(uint64(n))
	if len(c.msgs) == 0 {
		// Keep the channel's ids going up: a history that begins again
		// starts from a larger base (see memoryHistory).
		delete(h.channels, name)
	}
}

// evictOldest drops the oldest message of the hub, if it is still held.
func (h *memoryHistory) evictOldest() {
	ref := h.order[h.head]
	h.order[h.head] = storedRef{}
	h.head++
	c := h.channels[ref.channel]
	if c != nil && len(c.msgs) > 0 && c.msgs[0].m.ReplayID == ref.id {
		h.dropFront(ref.channel, c, 1)
	}
}

// compact keeps the order list from growing without bound: its dead
// front (evicted, or dropped by a channel's own bound) is cut once it is
// most of the list.
func (h *memoryHistory) compact() {
	for h.head < len(h.order) {
		ref := h.order[h.head]
		c := h.channels[ref.channel]
		if c != nil && len(c.msgs) > 0 && c.msgs[0].m.ReplayID <= ref.id {
			break // still held (or a later message of its channel is)
		}
		h.order[h.head] = storedRef{}
		h.head++
	}
	if h.head > 1024 && h.head > len(h.order)/2 {
		h.order = append(h.order[:0:0], h.order[h.head:]...)
		h.head = 0
	}
}

// Since returns the channel's retained messages after id after.
func (h *memoryHistory) Since(_ context.Context, channel string, after int64) (Replay, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.channels[channel]
	if c == nil {
		return Replay{}, nil
	}
	live := c.msgs
	if c.ttl > 0 {
		now := h.now()
		for len(live) > 0 && now.Sub(live[0].at) > c.ttl {
			live = live[1:]
		}
	}
	if len(live) == 0 {
		return Replay{Epoch: c.epoch}, nil
	}
	r := Replay{Oldest: live[0].m.ReplayID, Newest: live[len(live)-1].m.ReplayID, Epoch: c.epoch}
	for _, s := range live {
		if after == ReplayAll || s.m.ReplayID > after {
			r.Messages = append(r.Messages, s.m)
		}
	}
	return r, nil
}

// stats returns the bytes held and the messages evicted so far.
func (h *memoryHistory) stats() (bytes int64, evicted uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytes, h.evicted.Load()
}
