package actors

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestMemoryHistoryRetention(t *testing.T) {
	t.Parallel()
	h := newMemoryHistory(0)
	clock := time.Unix(1_800_000_000, 0)
	h.now = func() time.Time { return clock }
	ctx := context.Background()
	keep := Retention{Max: 3, TTL: time.Minute}
	var ids []int64
	for i := range 5 {
		pos, err := h.Append(ctx, &Message{Channel: "/a", Data: json.RawMessage(`1`)}, keep)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && pos.ID != ids[i-1]+1 {
			t.Fatalf("ids %v then %d: not consecutive", ids, pos.ID)
		}
		ids = append(ids, pos.ID)
	}
	r, _ := h.Since(ctx, "/a", ReplayAll)
	if len(r.Messages) != 3 || r.Oldest != ids[2] || r.Newest != ids[4] {
		t.Fatalf("by count: %d messages, oldest %d newest %d; want the last 3 of %v", len(r.Messages), r.Oldest, r.Newest, ids)
	}
	// Past the TTL nothing is replayed, and a replay from an old id is not
	// served (checkReplay), so the client learns it missed something.
	clock = clock.Add(2 * time.Minute)
	r, _ = h.Since(ctx, "/a", ids[3])
	if len(r.Messages) != 0 || r.Newest != 0 {
		t.Fatalf("after the TTL: %+v", r)
	}
	if checkReplay("/a", ids[3], r, nil) == nil {
		t.Error("a replay id past the TTL was accepted")
	}
	// A channel whose history begins again gets larger ids than before.
	pos, _ := h.Append(ctx, &Message{Channel: "/a", Data: json.RawMessage(`2`)}, keep)
	if pos.ID <= ids[4] {
		t.Errorf("new history's id %d is not above the old %d", pos.ID, ids[4])
	}
}

func TestMemoryHistoryTotalBound(t *testing.T) {
	t.Parallel()
	h := newMemoryHistory(10_000)
	ctx := context.Background()
	data := json.RawMessage(`"0123456789012345678901234567890123456789"`)
	for i := range 1000 {
		ch := "/a"
		if i%2 == 1 {
			ch = "/b"
		}
		if _, err := h.Append(ctx, &Message{Channel: ch, Data: data}, Retention{Max: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	bytes, evicted := h.stats()
	if bytes > 10_000 || evicted == 0 {
		t.Fatalf("holds %d bytes (bound 10000), evicted %d", bytes, evicted)
	}
	// The oldest were evicted first: both channels keep their newest.
	for _, ch := range []string{"/a", "/b"} {
		r, _ := h.Since(ctx, ch, ReplayAll)
		if len(r.Messages) == 0 || r.Messages[len(r.Messages)-1].ReplayID != r.Newest {
			t.Errorf("%s: %d messages kept", ch, len(r.Messages))
		}
	}
	if len(h.order)-h.head > 1000 {
		t.Errorf("order list holds %d entries", len(h.order)-h.head)
	}
}
