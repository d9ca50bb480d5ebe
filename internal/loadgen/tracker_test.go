package loadgen

import (
	"testing"
)

func TestSubTrackerAccounting(t *testing.T) {
	t.Parallel()
	// Two publishers, channels 0 and 1; the subscriber is on channel 0 only.
	pubs := []*PubLog{{}, {}}
	for s := range uint64(10) {
		pubs[0].Sent(s, int(s%2)) // even seqs on channel 0
		pubs[0].Acked(s)
		pubs[1].Sent(s, 0)
		if s != 7 {
			pubs[1].Acked(s) // seq 7 of pub 1 never acknowledged
		}
	}
	tr := NewSubTracker([]int{0}, 2)
	for _, s := range []int64{0, 2, 6, 4, 8} { // 4 after 6: out of order
		tr.Observe(0, s, 0)
	}
	tr.Observe(0, 2, 0) // duplicate
	for _, s := range []int64{0, 1, 2, 3, 7, 9} {
		tr.Observe(1, s, 0)
	}
	tr.Observe(1, 3, 1)  // wrong channel
	tr.Observe(5, 0, 0)  // unknown publisher
	tr.Observe(0, -1, 0) // bad seq

	exp, lost, unacked := tr.Loss(pubs, 2)
	// pub 0: 5 even seqs expected, all received; pub 1: 9 acked, received 0,1,2,3,9.
	if exp != 5+9 {
		t.Errorf("expected = %d, want 14", exp)
	}
	if lost != 4 { // pub 1 seqs 4,5,6,8
		t.Errorf("lost = %d, want 4", lost)
	}
	if unacked != 1 { // pub 1 seq 7
		t.Errorf("unacked = %d, want 1", unacked)
	}
	if tr.Dup != 1 {
		t.Errorf("dup = %d, want 1", tr.Dup)
	}
	if tr.OutOrder != 1 {
		t.Errorf("out of order = %d, want 1", tr.OutOrder)
	}
	if tr.Stray != 3 {
		t.Errorf("stray = %d, want 3", tr.Stray)
	}
	if tr.Received != 12 {
		t.Errorf("received = %d, want 12", tr.Received)
	}
}

func TestSubTrackerOrderPerChannel(t *testing.T) {
	t.Parallel()
	// One publisher alternating two channels: per-channel streams are in
	// order even when the channels interleave differently.
	tr := NewSubTracker([]int{0, 1}, 1)
	for _, x := range []struct {
		seq int64
		ch  int
	}{{1, 1}, {3, 1}, {0, 0}, {2, 0}, {5, 1}, {4, 0}} {
		tr.Observe(0, x.seq, x.ch)
	}
	if tr.OutOrder != 0 || tr.Dup != 0 {
		t.Fatalf("out of order %d dup %d, want 0 0", tr.OutOrder, tr.Dup)
	}
	tr.Observe(0, 1, 1)
	if tr.Dup != 1 {
		t.Fatalf("dup %d, want 1", tr.Dup)
	}
}

func TestBitsetLarge(t *testing.T) {
	t.Parallel()
	var b bitset
	for i := uint64(0); i < 100000; i += 3 {
		if b.set(i) {
			t.Fatalf("bit %d set before", i)
		}
	}
	for i := range uint64(100000) {
		if got, want := b.has(i), i%3 == 0; got != want {
			t.Fatalf("has(%d) = %v", i, got)
		}
	}
	if !b.set(99999) {
		t.Fatal("re-setting 99999 not reported")
	}
	if b.has(1 << 40) {
		t.Fatal("far bit reported set")
	}
}

func TestPubLogGaps(t *testing.T) {
	t.Parallel()
	var l PubLog
	l.Sent(0, 3)
	l.Sent(2, 1)
	l.Acked(2)
	if l.Count() != 3 || l.AckedCount() != 1 {
		t.Fatalf("count %d acked %d", l.Count(), l.AckedCount())
	}
	tr := NewSubTracker([]int{1, 3}, 1)
	exp, lost, _ := tr.Loss([]*PubLog{&l}, 4)
	if exp != 1 || lost != 1 {
		t.Fatalf("expected %d lost %d, want 1 1", exp, lost)
	}
}

func TestSubscriberChannelsSpread(t *testing.T) {
	t.Parallel()
	c := Config{Channels: 100, SubsPerClient: 10}
	members := make([]int, 100)
	for i := range 1000 {
		chans := c.SubscriberChannels(i)
		if len(chans) != 10 {
			t.Fatalf("client %d has %d channels", i, len(chans))
		}
		seen := map[int]bool{}
		for _, ch := range chans {
			if seen[ch] || ch < 0 || ch >= 100 {
				t.Fatalf("client %d: bad or duplicate channel %d in %v", i, ch, chans)
			}
			seen[ch] = true
			members[ch]++
		}
	}
	for ch, n := range members {
		if n != 100 {
			t.Fatalf("channel %d has %d members, want 100", ch, n)
		}
	}
	c = Config{Channels: 3, SubsPerClient: 3}
	if got := c.SubscriberChannels(7); len(got) != 3 {
		t.Fatalf("got %v", got)
	}
}

func TestChannelIndex(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"/bench/0": 0, "/bench/42": 42, "/bench/": -1, "/bench/x": -1, "/other/1": -1, "/bench/1/2": -1} {
		if got := channelIndex([]byte(in)); got != want {
			t.Errorf("channelIndex(%q) = %d, want %d", in, got, want)
		}
	}
}
