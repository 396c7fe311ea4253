package wire

import (
	"sync"
	"time"
)

// ReplayCache remembers values (nonces, signatures) for a time window and
// reports repeats. It is safe for concurrent use; expired entries are
// dropped as new ones arrive. It never forgets an unexpired value to make
// room: when maxLen unexpired values are held, a new value is refused as if
// it were a repeat (fail closed), so a replay can never slip through under
// load.
type ReplayCache struct {
	mu     sync.Mutex
	ttl    time.Duration
	seen   map[string]entry
	order  []string
	maxLen int
}

type entry struct {
	at    time.Time
	extra string
}

// DefaultReplayCacheLen bounds a ReplayCache: 4 million values, about
// 2,200 requests/s sustained over a 30-minute window.
const DefaultReplayCacheLen = 4_000_000

// ErrReplayCacheFull is the extra Seen returns when it refuses a new value
// because the cache is full of unexpired ones.
const ErrReplayCacheFull = "replay cache full"

// NewReplayCache remembers each value for ttl, at most maxLen values
// (0 means DefaultReplayCacheLen).
func NewReplayCache(ttl time.Duration, maxLen int) *ReplayCache {
	if maxLen <= 0 {
		maxLen = DefaultReplayCacheLen
	}
	return &ReplayCache{ttl: ttl, seen: map[string]entry{}, maxLen: maxLen}
}

// Seen records value at now and reports whether it was already recorded
// within the window. extra is stored with it; the previous extra is
// returned (Tencent's signature-reuse rule compares the action and region).
func (c *ReplayCache) Seen(value string, now time.Time, extra string) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e, ok := c.seen[value]; ok && now.Sub(e.at) <= c.ttl {
		return true, e.extra
	}
	if len(c.seen) >= c.maxLen {
		return true, ErrReplayCacheFull
	}
	c.seen[value] = entry{at: now, extra: extra}
	c.order = append(c.order, value)
	return false, ""
}

func (c *ReplayCache) expire(now time.Time) {
	n := 0
	for n < len(c.order) {
		v := c.order[n]
		if e, ok := c.seen[v]; ok && now.Sub(e.at) <= c.ttl {
			break
		}
		delete(c.seen, v)
		n++
	}
	c.order = c.order[n:]
}
