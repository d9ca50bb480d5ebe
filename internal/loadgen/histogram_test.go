package loadgen

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramQuantilesExact(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	for i := 1; i <= 100; i++ { // values below histSub are exact
		h.Record(time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 0.999: 100, 1: 100, 0: 1} {
		if got := h.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %d, want %d", q, got, want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Min() != 1 || h.Mean() != 50 {
		t.Errorf("count %d max %d min %d mean %d", h.Count(), h.Max(), h.Min(), h.Mean())
	}
}

func TestHistogramRelativeError(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	vals := make([]time.Duration, 20000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(5*time.Millisecond))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if d := float64(got-exact) / float64(exact); d < -0.01 || d > 0.01 {
			t.Errorf("q%v: got %v, exact %v (%.2f%%)", q, got, exact, 100*d)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("max %v, want %v", h.Max(), vals[len(vals)-1])
	}
}

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<63 - 1} {
		i := bucketOf(v)
		if i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		if up := bucketUpper(i); up < v {
			t.Errorf("bucketUpper(bucketOf(%d)) = %d < value", v, up)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Errorf("value %d also fits bucket %d", v, i-1)
		}
	}
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(g*1000 + i + 1))
			}
		}()
	}
	wg.Wait()
	if h.Count() != 8000 || h.Max() != 8000 || h.Min() != 1 {
		t.Fatalf("count %d max %d min %d", h.Count(), h.Max(), h.Min())
	}
	o := NewHistogram()
	o.Record(time.Hour)
	o.Merge(h)
	if o.Count() != 8001 || o.Max() != time.Hour || o.Min() != 1 {
		t.Fatalf("merged count %d max %v min %v", o.Count(), o.Max(), o.Min())
	}
	var n uint64
	for _, b := range o.Buckets() {
		n += b.Count
	}
	if n != 8001 {
		t.Fatalf("buckets hold %d", n)
	}
	if NewHistogram().Quantile(0.5) != 0 {
		t.Fatal("empty quantile not 0")
	}
}
