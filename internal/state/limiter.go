package state

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultLimiterKeys bounds how many access keys a LocalLimiter tracks.
const DefaultLimiterKeys = 65536

// LocalLimiter is the in-process RateLimiter: one token bucket
// (golang.org/x/time/rate) per access key, rate per second with burst. Its
// map is bounded: when it holds maxKeys access keys, the idle ones (whose
// bucket has refilled, so forgetting them changes nothing) are evicted; if
// none is idle, a new access key is refused until one is.
type LocalLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time
	keys    map[string]*rate.Limiter
}

// NewLocalLimiter allows each access key rate requests per second with
// bursts of burst (0 means max(1, rate)), tracking at most maxKeys access
// keys (0 means DefaultLimiterKeys).
func NewLocalLimiter(ratePerSecond float64, burst, maxKeys int) (*LocalLimiter, error) {
	return newLocalLimiter(ratePerSecond, burst, maxKeys, time.Now)
}

func newLocalLimiter(ratePerSecond float64, burst, maxKeys int, now func() time.Time) (*LocalLimiter, error) {
	if err := checkRate(ratePerSecond, burst); err != nil {
		return nil, err
	}
	if maxKeys < 0 {
		return nil, fmt.Errorf("state: rate limit maxKeys must be 0 (default %d) or positive (got %d)", DefaultLimiterKeys, maxKeys)
	}
	if burst == 0 {
		burst = max(1, int(ratePerSecond))
	}
	if maxKeys == 0 {
		maxKeys = DefaultLimiterKeys
	}
	return &LocalLimiter{limit: rate.Limit(ratePerSecond), burst: burst, maxKeys: maxKeys, now: now,
		keys: map[string]*rate.Limiter{}}, nil
}

// checkRate validates a rate and burst as --rate and --burst take them.
func checkRate(ratePerSecond float64, burst int) error {
	if !(ratePerSecond > 0) || math.IsInf(ratePerSecond, 0) {
		return fmt.Errorf("state: --rate must be a positive number of requests per second (got %v)", ratePerSecond)
	}
	if burst < 0 {
		return fmt.Errorf("state: --burst must be 0 (the rate) or a positive number of requests (got %d)", burst)
	}
	return nil
}

// Allow implements RateLimiter; it never returns an error.
func (l *LocalLimiter) Allow(_ context.Context, accessKeyID string) (bool, error) {
	now := l.now()
	l.mu.Lock()
	lim, ok := l.keys[accessKeyID]
	if !ok {
		if len(l.keys) >= l.maxKeys {
			l.evictIdle(now)
		}
		if len(l.keys) >= l.maxKeys {
			l.mu.Unlock()
			return false, nil
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.keys[accessKeyID] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(now, 1), nil
}

// evictIdle forgets every access key whose bucket is full again.
func (l *LocalLimiter) evictIdle(now time.Time) {
	for id, lim := range l.keys {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.keys, id)
		}
	}
}

// Len is the number of access keys tracked.
func (l *LocalLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
