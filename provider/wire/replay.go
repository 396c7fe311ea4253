package wire

import (
	"sync"
	"time"
)

// ReplayCache remembers values (nonces, signatures) for a time window and
// reports repeats. It is safe for concurrent use and bounded by the window:
// expired entries are dropped as new ones arrive.
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

// NewReplayCache remembers each value for ttl; at most maxLen values (the
// oldest are forgotten first; 0 means 1,000,000).
func NewReplayCache(ttl time.Duration, maxLen int) *ReplayCache {
	if maxLen <= 0 {
		maxLen = 1_000_000
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
	c.seen[value] = entry{at: now, extra: extra}
	c.order = append(c.order, value)
	return false, ""
}

func (c *ReplayCache) expire(now time.Time) {
	n := 0
	for n < len(c.order) {
		v := c.order[n]
		e, ok := c.seen[v]
		if ok && now.Sub(e.at) <= c.ttl && len(c.order)-n <= c.maxLen {
			break
		}
		if ok && now.Sub(e.at) > c.ttl || len(c.order)-n > c.maxLen {
			delete(c.seen, v)
		}
		n++
	}
	c.order = c.order[n:]
}
