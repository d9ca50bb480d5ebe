package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histSubBits sets the histogram's precision: every power of two of
// nanoseconds is split into 2^histSubBits linear buckets, so a recorded
// value is off by at most 1/2^histSubBits (under 1%).
const histSubBits = 7

const (
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// Histogram is a log-linear latency histogram with sub-1% relative error.
// Record is safe for concurrent use and lock-free; reading methods may run
// concurrently with Record and then see a slightly stale state.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
	min    atomic.Int64 // 0 means unset; values are stored +1
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - histSubBits // >= 1
	return exp*histSub + int((v>>uint(exp-1))&(histSub-1))
}

// bucketUpper returns the highest value that falls in bucket i.
func bucketUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i / histSub
	sub := uint64(i % histSub)
	lo := (histSub | sub) << uint(exp-1)
	return lo + (1 << uint(exp-1)) - 1
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if int64(v) <= m || h.max.CompareAndSwap(m, int64(v)) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && int64(v)+1 >= m) || h.min.CompareAndSwap(m, int64(v)+1) {
			break
		}
	}
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest observation exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest observation exactly, or 0 when empty.
func (h *Histogram) Min() time.Duration {
	m := h.min.Load()
	if m == 0 {
		return 0
	}
	return time.Duration(m - 1)
}

// Mean returns the arithmetic mean, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the value at quantile q in [0,1]: the upper bound of
// the bucket holding the ceil(q*n)-th smallest observation, capped at Max.
// It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return h.Min()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.Max()
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(bucketUpper(i))
			if mx := h.Max(); v > mx {
				v = mx
			}
			if mn := h.Min(); v < mn {
				v = mn
			}
			return v
		}
	}
	return h.Max()
}

// Merge adds all observations of o into h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if o.n.Load() > 0 {
		for {
			m := h.max.Load()
			v := o.max.Load()
			if v <= m || h.max.CompareAndSwap(m, v) {
				break
			}
		}
		for {
			m := h.min.Load()
			v := o.min.Load()
			if v == 0 || (m != 0 && v >= m) || h.min.CompareAndSwap(m, v) {
				break
			}
		}
	}
}

// HistBucket is one non-empty bucket of a histogram: observations at most
// Upper (and above the previous bucket's Upper) were seen Count times.
type HistBucket struct {
	Upper time.Duration `json:"upper_ns"`
	Count uint64        `json:"count"`
}

// Buckets returns the non-empty buckets in increasing order.
func (h *Histogram) Buckets() []HistBucket {
	var out []HistBucket
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			out = append(out, HistBucket{Upper: time.Duration(bucketUpper(i)), Count: c})
		}
	}
	return out
}

func durationOf(ns float64) time.Duration { return time.Duration(ns) }
