package state

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustAllow(t *testing.T, l RateLimiter, key string) bool {
	t.Helper()
	ok, err := l.Allow(context.Background(), key)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return ok
}

func TestLocalLimiterPerKeyRate(t *testing.T) {
	clock := newFakeClock()
	l, err := newLocalLimiter(10, 5, 0, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if !mustAllow(t, l, "AK1") {
			t.Fatalf("burst request %d refused", i)
		}
	}
	if mustAllow(t, l, "AK1") {
		t.Fatal("request beyond the burst allowed")
	}
	if !mustAllow(t, l, "AK2") {
		t.Fatal("another access key refused because of AK1")
	}
	clock.advance(100 * time.Millisecond)
	if !mustAllow(t, l, "AK1") || mustAllow(t, l, "AK1") {
		t.Fatal("after 1/rate exactly one more request should be allowed")
	}
}

func TestLocalLimiterEvictsIdleKeys(t *testing.T) {
	clock := newFakeClock()
	const maxKeys = 100
	l, err := newLocalLimiter(10, 1, maxKeys, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxKeys {
		mustAllow(t, l, "AK"+strconv.Itoa(i))
	}
	// All buckets are empty (burst 1, just used): no key is idle, so a new
	// key waits rather than reset someone's limit.
	if mustAllow(t, l, "new") {
		t.Fatal("a new key was let in by forgetting a busy key's limit")
	}
	clock.advance(time.Second) // every bucket refills
	for i := range 10 * maxKeys {
		if !mustAllow(t, l, "later"+strconv.Itoa(i)) {
			t.Fatalf("new key %d refused though the others are idle", i)
		}
		clock.advance(time.Second)
	}
	if n := l.Len(); n > maxKeys {
		t.Fatalf("limiter tracks %d keys, bound %d", n, maxKeys)
	}
}

func TestLocalLimiterBadArguments(t *testing.T) {
	for _, tc := range []struct {
		rate        float64
		burst, keys int
		want        string
	}{{0, 0, 0, "--rate"}, {-2, 0, 0, "--rate"}, {1, -1, 0, "--burst"}, {1, 0, -1, "maxKeys"}} {
		if _, err := NewLocalLimiter(tc.rate, tc.burst, tc.keys); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewLocalLimiter(%v, %d, %d) = %v, want an error naming %s", tc.rate, tc.burst, tc.keys, err, tc.want)
		}
	}
}
