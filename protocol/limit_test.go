package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeLimit(t *testing.T) {
	t.Parallel()
	batch := func(n int) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(`{"channel":"/a","data":"x,]}"},`, n), ",") + "]")
	}
	for _, c := range []struct {
		n, max int
		ok     bool
	}{{1, 1, true}, {10, 10, true}, {11, 10, false}, {1000, 0, true}, {5000, 1000, false}} {
		msgs, err := DecodeLimit(batch(c.n), c.max)
		if c.ok && (err != nil || len(msgs) != c.n) {
			t.Errorf("%d messages, at most %d: %d decoded, %v", c.n, c.max, len(msgs), err)
		}
		var pe *Error
		if !c.ok && (!errors.As(err, &pe) || pe.Code != CodeBadRequest || !strings.Contains(pe.Message, "Too many messages")) {
			t.Errorf("%d messages, at most %d: %v, want a 400 Too many messages", c.n, c.max, err)
		}
	}
	if msgs, err := DecodeLimit([]byte(`{"channel":"/a","data":1}`), 1); err != nil || len(msgs) != 1 {
		t.Errorf("one object: %v", err)
	}
	if _, err := DecodeLimit([]byte(`[{},`), 10); err == nil {
		t.Error("malformed batch accepted")
	}
}

// A 1 MiB body of empty objects (350,000 messages) is refused without
// decoding: the scan allocates nothing.
func TestDecodeLimitAllocatesNothingForAFlood(t *testing.T) {
	body := []byte("[" + strings.TrimSuffix(strings.Repeat("{},", 350_000), ",") + "]")
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := DecodeLimit(body, DefaultMaxBatch); err == nil {
			t.Fatal("flood accepted")
		}
	})
	if allocs > 4 {
		t.Errorf("%v allocations to refuse the flood", allocs)
	}
}

func BenchmarkDecodeLimitFlood(b *testing.B) {
	body := []byte("[" + strings.TrimSuffix(strings.Repeat("{},", 350_000), ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = DecodeLimit(body, DefaultMaxBatch)
	}
}
