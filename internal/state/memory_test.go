package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/state/redistest"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustSeen(t *testing.T, s ReplayStore, key, nonce string, window time.Duration) bool {
	t.Helper()
	seen, err := s.Seen(context.Background(), key, []byte(nonce), window)
	if err != nil {
		t.Fatalf("Seen(%q, %q): %v", key, nonce, err)
	}
	return seen
}

func TestMemoryRemembersForTheWindowThenDropsWhole(t *testing.T) {
	clock := newFakeClock()
	const window = 80 * time.Second
	m, err := newMemory(window, 100, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(5 * time.Second) // mid-bucket
	if mustSeen(t, m, "AK1", "n1", window) {
		t.Fatal("first n1 reported seen")
	}
	if !mustSeen(t, m, "AK1", "n1", window) {
		t.Fatal("repeated n1 not seen")
	}
	if mustSeen(t, m, "AK2", "n1", window) {
		t.Fatal("same nonce from another access key reported seen")
	}
	clock.advance(window - time.Nanosecond)
	if !mustSeen(t, m, "AK1", "n1", window) {
		t.Fatal("n1 forgotten before its window ended")
	}
	clock.advance(window/memoryBuckets + time.Nanosecond)
	if mustSeen(t, m, "AK1", "n1", window) {
		t.Fatal("n1 still remembered a bucket after its window")
	}
}

func TestMemoryOneKeyFloodsAnotherStaysAccepted(t *testing.T) {
	clock := newFakeClock()
	const window, maxRate = 8 * time.Second, 1000.0
	m, err := newMemory(window, maxRate, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 3 { // three buckets in a row
		accepted := 0
		for i := 0; ; i++ {
			_, err := m.Seen(ctx, "flood", []byte(fmt.Sprintf("f%d-%d", round, i)), window)
			if errors.Is(err, ErrThrottled) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
			if i > 10*m.perBucket {
				t.Fatal("flooding key never throttled")
			}
		}
		if round == 0 && accepted < int(maxRate*window.Seconds()/memoryBuckets) {
			t.Errorf("a lone access key got %d in a bucket, below maxRate × width", accepted)
		}
		// The first bucket of a flood leaves the newcomer the reserve (1/8);
		// from the next one on each of the two keys has 7/16.
		honest := 100
		if round > 0 {
			honest = 400
		}
		for i := range honest {
			if mustSeen(t, m, "honest", fmt.Sprintf("h%d-%d", round, i), window) {
				t.Fatalf("round %d: honest nonce %d reported seen", round, i)
			}
		}
		if _, err := m.Seen(ctx, "flood", []byte("one more"+strconv.Itoa(round)), window); !errors.Is(err, ErrThrottled) {
			t.Fatalf("round %d: flooding key accepted again after the honest key: %v", round, err)
		}
		t.Logf("round %d: flooding key accepted %d of a bucket of %d", round, accepted, m.perBucket)
		clock.advance(window / memoryBuckets)
	}
}

func TestMemoryBadArguments(t *testing.T) {
	for _, tc := range []struct {
		window time.Duration
		rate   float64
		want   string
	}{
		{0, 10, "window"}, {time.Minute, 0, "maxRate"}, {time.Minute, -1, "maxRate"},
		{time.Hour, 1e9, "maxRate"},
	} {
		if _, err := NewMemory(tc.window, tc.rate); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMemory(%v, %v) = %v, want an error naming %s", tc.window, tc.rate, err, tc.want)
		}
	}
	m, err := NewMemory(time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		key, nonce string
		window     time.Duration
		want       string
	}{
		{"", "n", time.Minute, "accessKeyID"}, {"k", "", time.Minute, "nonce"},
		{"k", "n", 0, "window"}, {"k", "n", time.Hour, "window"},
	} {
		if _, err := m.Seen(ctx, tc.key, []byte(tc.nonce), tc.window); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Seen(%q, %q, %v) = %v, want an error naming %s", tc.key, tc.nonce, tc.window, err, tc.want)
		}
	}
}

// TestMemoryBytesPerRequest measures the heap one remembered request costs,
// tables and per-key counts included, at the configured rate over a full
// window plus one bucket (the most the store ever holds).
func TestMemoryBytesPerRequest(t *testing.T) {
	clock := newFakeClock()
	const window, maxRate = 16 * time.Second, 5000.0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := newMemory(window, maxRate, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	perBucket := int(maxRate * (window / memoryBuckets).Seconds())
	n := 0
	nonce := make([]byte, 16)
	for b := range memoryBuckets + 1 {
		for i := range perBucket {
			key := "AK" + strconv.Itoa(i%16)
			binary.BigEndian.PutUint64(nonce, uint64(b))
			binary.BigEndian.PutUint64(nonce[8:], uint64(i))
			if seen, err := m.Seen(ctx, key, nonce, window); err != nil || seen {
				t.Fatalf("bucket %d entry %d: seen=%v err=%v", b, i, seen, err)
			}
			n++
		}
		clock.advance(window / memoryBuckets)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	perRequest := float64(used) / float64(n)
	t.Logf("%d remembered requests: heap +%d bytes = %.1f bytes each; MemoryBytes() = %d (%.1f per capacity entry)",
		n, used, perRequest, m.MemoryBytes(), float64(m.MemoryBytes())/float64(m.Capacity()))
	if perRequest > 64 {
		t.Errorf("%.1f bytes per remembered request, want ≤ 64", perRequest)
	}
	if used > m.MemoryBytes() {
		t.Errorf("heap grew %d bytes, above the MemoryBytes() estimate %d", used, m.MemoryBytes())
	}
}

// Peek answers whether a nonce is remembered and records nothing, in
// process and on Redis alike.
func TestPeekRecordsNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	mem, err := NewMemory(time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, s := range map[string]ReplayStore{"memory": mem, "redis": openNode(t, srv.URL(3), RedisOptions{})} {
		for range 2 {
			if seen, err := s.Peek(ctx, "AK1", []byte("n1")); err != nil || seen {
				t.Fatalf("%s: Peek of a new nonce: %v %v", name, seen, err)
			}
		}
		if mustSeen(t, s, "AK1", "n1", time.Minute) {
			t.Fatalf("%s: nonce only peeked at was recorded", name)
		}
		if seen, err := s.Peek(ctx, "AK1", []byte("n1")); err != nil || !seen {
			t.Fatalf("%s: Peek of a recorded nonce: %v %v", name, seen, err)
		}
		if _, err := s.Peek(ctx, "", []byte("n1")); err == nil {
			t.Fatalf("%s: Peek with an empty access key accepted", name)
		}
	}
}
