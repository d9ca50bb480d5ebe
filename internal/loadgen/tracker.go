package loadgen

import "sync"

// bitset is a growable set of small non-negative integers.
type bitset []uint64

func (b *bitset) set(i uint64) (already bool) {
	w := i >> 6
	if w >= uint64(len(*b)) {
		n := max(uint64(len(*b))*2, w+1, 4)
		nb := make(bitset, n)
		copy(nb, *b)
		*b = nb
	}
	m := uint64(1) << (i & 63)
	already = (*b)[w]&m != 0
	(*b)[w] |= m
	return already
}

func (b bitset) has(i uint64) bool {
	w := i >> 6
	return w < uint64(len(b)) && b[w]&(uint64(1)<<(i&63)) != 0
}

// PubLog records what one publisher sent: for every sequence number the
// channel index it went to and whether the server acknowledged it. It is
// safe for concurrent use: an open-loop publisher records its sends on
// its own goroutine and the acknowledgements where they arrive.
//
// It also keeps the publisher's completed prefix (Prefix): the number of
// leading sequence numbers whose publish has completed (acknowledged,
// refused or failed). A message sent while the prefix is p can only be
// required to arrive after messages below p: the others were still in
// flight, possibly on another connection.
type PubLog struct {
	mu     sync.Mutex
	chans  []uint32 // chans[seq] = channel index
	acked  bitset
	done   bitset // completed publishes, acknowledged or not
	prefix uint64 // every seq below it is in done
}

// Sent records that seq went out to channel ch. Sequence numbers start at
// 0 and must be given in increasing order without gaps.
func (l *PubLog) Sent(seq uint64, ch int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for uint64(len(l.chans)) < seq {
		l.chans = append(l.chans, ^uint32(0)) // never sent
	}
	if uint64(len(l.chans)) == seq {
		l.chans = append(l.chans, uint32(ch))
	} else {
		l.chans[seq] = uint32(ch)
	}
}

// Acked records that the server acknowledged seq as successfully
// published; it also completes seq (Done).
func (l *PubLog) Acked(seq uint64) {
	l.mu.Lock()
	l.acked.set(seq)
	l.complete(seq)
	l.mu.Unlock()
}

// Done records that the publish of seq completed without an
// acknowledgement (refused, failed or abandoned).
func (l *PubLog) Done(seq uint64) {
	l.mu.Lock()
	l.complete(seq)
	l.mu.Unlock()
}

func (l *PubLog) complete(seq uint64) {
	l.done.set(seq)
	for l.done.has(l.prefix) {
		l.prefix++
	}
}

// Prefix returns the number of leading sequence numbers whose publish
// has completed.
func (l *PubLog) Prefix() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.prefix
}

// Count returns how many sequence numbers were sent.
func (l *PubLog) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.chans)
}

// AckedCount returns how many sequence numbers were acknowledged.
func (l *PubLog) AckedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for s := range l.chans {
		if l.acked.has(uint64(s)) {
			n++
		}
	}
	return n
}

// SubTracker checks off every delivery one subscriber receives: one
// growable bitmap of sequence numbers per publisher, and the highest
// sequence number seen per (publisher, channel) stream to count
// out-of-order deliveries. It is used by one goroutine only.
type SubTracker struct {
	chans    []int // channel indices this subscriber is subscribed to
	recv     []bitset
	last     []uint64 // [pub*len(chans)+local] = highest seq-window seen (see ObserveWindow)
	Received uint64   // deliveries checked off, duplicates included
	Dup      uint64   // deliveries of an already received (pub, seq)
	OutOrder uint64   // deliveries older than one already seen in the same stream
	Stray    uint64   // deliveries on channels not subscribed or from unknown publishers
}

// NewSubTracker returns a tracker for a subscriber subscribed to chans
// with publishers publishers.
func NewSubTracker(chans []int, publishers int) *SubTracker {
	return &SubTracker{
		chans: chans,
		recv:  make([]bitset, publishers),
		last:  make([]uint64, publishers*len(chans)),
	}
}

// local returns the position of channel ch among the tracker's
// channels, or -1.
func (t *SubTracker) local(ch int) int {
	for i, c := range t.chans {
		if c == ch {
			return i
		}
	}
	return -1
}

// Observe checks off one delivery of (pub, seq) on channel ch, from a
// publisher whose messages were sent in order (window 0).
func (t *SubTracker) Observe(pub, seq int64, ch int) { t.ObserveWindow(pub, seq, 0, ch) }

// ObserveWindow checks off one delivery of (pub, seq) on channel ch that
// was sent while the window messages before it (seq-window … seq-1) could
// still be in flight, as Payload.Window says. A delivery counts as out of
// order when it is older than seq-window of an earlier delivery in the
// same (publisher, channel) stream: that message's publish had completed
// before the earlier one was sent. With window 0 that is any delivery
// older than one already seen.
func (t *SubTracker) ObserveWindow(pub, seq, window int64, ch int) {
	local := t.local(ch)
	if local < 0 || pub < 0 || pub >= int64(len(t.recv)) || seq < 0 {
		t.Stray++
		return
	}
	t.Received++
	if t.recv[pub].set(uint64(seq)) {
		t.Dup++
		return
	}
	k := int(pub)*len(t.chans) + local
	if uint64(seq) < t.last[k] {
		t.OutOrder++
	}
	if window < 0 || window > seq {
		window = seq
	}
	if f := uint64(seq - window); f > t.last[k] {
		t.last[k] = f
	}
}

// Loss compares the deliveries against what the publishers had
// acknowledged. expected counts acknowledged messages on this subscriber's
// channels, lost those of them never received, and unacked deliveries of
// messages the server never acknowledged (neither lost nor duplicated).
// The logs must no longer be written to.
func (t *SubTracker) Loss(pubs []*PubLog, numChannels int) (expected, lost, unacked uint64) {
	in := make([]bool, numChannels)
	for _, c := range t.chans {
		if c >= 0 && c < numChannels {
			in[c] = true
		}
	}
	for p, l := range pubs {
		if l == nil || p >= len(t.recv) {
			continue
		}
		r := t.recv[p]
		for s, ch := range l.chans {
			if int(ch) >= numChannels || !in[ch] {
				continue
			}
			got := r.has(uint64(s))
			if l.acked.has(uint64(s)) {
				expected++
				if !got {
					lost++
				}
			} else if got {
				unacked++
			}
		}
	}
	return expected, lost, unacked
}
