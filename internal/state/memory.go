package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"time"
)

// memoryBuckets is how many time buckets cover one window. A value is
// remembered for at least the window and at most window × 9/8: a bucket is
// dropped whole once its newest value is older than the window.
const memoryBuckets = 8

// Fair-share rule constants (see Memory).
const (
	shareNum, shareDen = 7, 8 // the part of a bucket shared out between access keys
	maxMemoryEntries   = 1 << 32
	perKeyOverhead     = 64       // estimated bytes per access key counted in a bucket
	fixedOverhead      = 64 << 10 // the struct, the digester's pool, map headers, with room to spare
)

// Memory is the in-process ReplayStore, bounded by design. It keeps a
// 16-byte keyed digest (HMAC-SHA256 under a random per-process key) of each
// (access key, nonce) in one of memoryBuckets+1 fixed-size open-addressing
// tables, one per time bucket of window/8; the oldest table is cleared
// whole when its time has passed, so there is no per-entry expiry and no
// allocation after NewMemory. Each table holds maxRate × window/8 × 8/7
// digests at a load of at most 3/4.
//
// Fair share: while a bucket is less than half full every request is
// remembered; after that an access key is refused with ErrThrottled once it
// holds 7/8 of the bucket divided by the number of access keys active in
// this bucket or the one before. So one access key alone may sustain
// maxRate; a flooding key is held to its share and the others keep being
// accepted. Only when many access keys all send near their share at once can
// a bucket fill; then every new request in it is refused with ErrThrottled
// (fail closed) until the next bucket starts.
type Memory struct {
	mu        sync.Mutex
	digests   *digester
	window    time.Duration
	width     time.Duration // window / memoryBuckets
	perBucket int           // digests one bucket takes
	capacity  int64         // window × maxRate
	start     time.Time
	now       func() time.Time
	newest    int64 // highest bucket epoch seen; time never runs back
	buckets   [memoryBuckets + 1]memoryBucket
}

// memoryBucket is one time bucket: an open-addressing table of digests
// (the zero digest marks an empty slot) and per-access-key counts.
type memoryBucket struct {
	epoch  int64
	used   int
	slots  []digest
	perKey map[string]int
}

// NewMemory returns an in-process ReplayStore that remembers each nonce for
// window, sized for maxRate remembered requests per second
// (capacity = window × maxRate, see Memory for the fair share).
func NewMemory(window time.Duration, maxRate float64) (*Memory, error) {
	return newMemory(window, maxRate, time.Now)
}

func newMemory(window time.Duration, maxRate float64, now func() time.Time) (*Memory, error) {
	if window < memoryBuckets*time.Millisecond {
		return nil, fmt.Errorf("state: replay window must be at least 8ms (got %v)", window)
	}
	if !(maxRate > 0) || math.IsInf(maxRate, 0) {
		return nil, fmt.Errorf("state: replay maxRate must be a positive number of requests per second (got %v)", maxRate)
	}
	width := window / memoryBuckets
	perBucket := math.Ceil(maxRate * width.Seconds() * shareDen / shareNum)
	if perBucket*(memoryBuckets+1) > maxMemoryEntries {
		return nil, fmt.Errorf("state: replay window × maxRate (%v × %v/s) needs more than %d entries: lower maxRate or the window",
			window, maxRate, maxMemoryEntries)
	}
	m := &Memory{digests: newProcessDigester(), window: window, width: width, perBucket: int(perBucket),
		capacity: int64(math.Ceil(maxRate * window.Seconds())), start: now(), now: now}
	slots := tableSlots(m.perBucket)
	for i := range m.buckets {
		t, err := newTable(slots)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.buckets[i] = memoryBucket{epoch: math.MinInt64, slots: t, perKey: map[string]int{}}
	}
	runtime.SetFinalizer(m, (*Memory).Close)
	return m, nil
}

// Close unmaps the store's tables (see newTable); the store must not be
// used after. Calling it again does nothing.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for i := range m.buckets {
		if b := &m.buckets[i]; b.slots != nil {
			if err := freeTable(b.slots); err != nil && first == nil {
				first = err
			}
			b.slots = nil
		}
	}
	runtime.SetFinalizer(m, nil)
	return first
}

// tableSlots is the table size for n digests at a load of at most 3/4.
func tableSlots(n int) int { return n + n/3 + 1 }

// MemoryBytes estimates the memory the store holds, all costs included, to
// print at start-up: the tables (mapped by NewMemory, outside the Go heap;
// resident as they fill), the
// per-access-key counts for up to 16 keys per bucket and 64 KiB fixed.
func (m *Memory) MemoryBytes() int64 {
	per := int64(len(m.buckets[0].slots))*digestSize + 16*perKeyOverhead
	return per*int64(len(m.buckets)) + fixedOverhead
}

// Capacity is the number of requests the store is sized to remember:
// window × maxRate.
func (m *Memory) Capacity() int64 {
	return m.capacity
}

// Seen implements ReplayStore. window may be at most the window the store
// was made with (a shorter one is remembered for the store's window).
func (m *Memory) Seen(_ context.Context, accessKeyID string, nonce []byte, window time.Duration) (bool, error) {
	if err := checkSeenArgs(accessKeyID, nonce, window); err != nil {
		return false, err
	}
	if window > m.window {
		return false, fmt.Errorf("state: replay window %v is longer than the in-process replay memory's %v", window, m.window)
	}
	d := m.digests.sum(accessKeyID, nonce)
	d[0] |= 1 // never the zero digest, which marks an empty slot
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.epoch()
	if m.remembered(e, d) {
		return true, nil
	}
	cur := m.bucket(e)
	if !m.admits(cur, m.prev(e), accessKeyID) {
		return false, fmt.Errorf("%w (access key %q)", ErrThrottled, accessKeyID)
	}
	cur.insert(d)
	cur.perKey[accessKeyID]++
	return false, nil
}

// Peek implements ReplayStore: whether nonce is remembered, recording
// nothing.
func (m *Memory) Peek(_ context.Context, accessKeyID string, nonce []byte) (bool, error) {
	if err := checkSeenArgs(accessKeyID, nonce, m.window); err != nil {
		return false, err
	}
	d := m.digests.sum(accessKeyID, nonce)
	d[0] |= 1
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.remembered(m.epoch(), d), nil
}

// remembered reports whether d is in an unexpired bucket of epoch e.
func (m *Memory) remembered(e int64, d digest) bool {
	for i := range m.buckets {
		if b := &m.buckets[i]; b.epoch >= e-memoryBuckets && b.contains(d) {
			return true
		}
	}
	return false
}

// Window is the longest window the store remembers for.
func (m *Memory) Window() time.Duration { return m.window }

// epoch is the current bucket number, from the monotonic clock.
func (m *Memory) epoch() int64 {
	e := int64(m.now().Sub(m.start) / m.width)
	if e < m.newest {
		return m.newest
	}
	m.newest = e
	return e
}

// bucket returns epoch e's bucket, clearing it whole if it held an older
// (expired) epoch.
func (m *Memory) bucket(e int64) *memoryBucket {
	b := &m.buckets[e%int64(len(m.buckets))]
	if b.epoch != e {
		clearTable(b.slots)
		clear(b.perKey)
		b.epoch, b.used = e, 0
	}
	return b
}

// prev is epoch e-1's bucket, or nil if it holds another epoch.
func (m *Memory) prev(e int64) *memoryBucket {
	b := &m.buckets[(e+int64(len(m.buckets))-1)%int64(len(m.buckets))]
	if b.epoch != e-1 {
		return nil
	}
	return b
}

// admits applies the fair-share rule to one more digest from accessKeyID.
func (m *Memory) admits(cur, prev *memoryBucket, accessKeyID string) bool {
	if cur.used >= m.perBucket {
		return false
	}
	if cur.used < m.perBucket/2 {
		return true
	}
	count, ok := cur.perKey[accessKeyID]
	active := len(cur.perKey)
	if !ok {
		active++
	}
	if prev != nil {
		active = max(active, len(prev.perKey))
	}
	return count < max(1, m.perBucket*shareNum/shareDen/active)
}

// home is d's first slot: its leading 64 bits mapped onto the table
// (the digest is uniformly distributed, so no further hashing is needed).
func (b *memoryBucket) home(d digest) int {
	hi, _ := bits.Mul64(binary.LittleEndian.Uint64(d[:8]), uint64(len(b.slots)))
	return int(hi)
}

// contains reports whether d is in the table (linear probing).
func (b *memoryBucket) contains(d digest) bool {
	for i := b.home(d); ; i = (i + 1) % len(b.slots) {
		switch b.slots[i] {
		case d:
			return true
		case digest{}:
			return false
		}
	}
}

// insert adds d, which is not in the table; the table is never full
// (admits keeps used below three quarters of the slots).
func (b *memoryBucket) insert(d digest) {
	i := b.home(d)
	for b.slots[i] != (digest{}) {
		i = (i + 1) % len(b.slots)
	}
	b.slots[i] = d
	b.used++
}

// checkSeenArgs validates the arguments every ReplayStore takes.
func checkSeenArgs(accessKeyID string, nonce []byte, window time.Duration) error {
	switch {
	case accessKeyID == "":
		return fmt.Errorf("state: replay accessKeyID must not be empty")
	case len(nonce) == 0:
		return fmt.Errorf("state: replay nonce must not be empty")
	case window <= 0:
		return fmt.Errorf("state: replay window must be positive (got %v)", window)
	}
	return nil
}
