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

// Peek is Seen without recording: whether value is remembered within the
// window, and its extra. A dialect peeks while authenticating (so a replay
// is refused as such at once) and records only when the request passed its
// checks (ReplayClaim).
func (c *ReplayCache) Peek(value string, now time.Time) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.seen[value]; ok && now.Sub(e.at) <= c.ttl {
		return true, e.extra
	}
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

// ReplayClaim is a request's replay check, made late: the dialect builds it
// when the signature verified and claims it only once the rate limit and
// the policy check passed (AuthorizeTouched's caller), so a request refused
// for its signature, its rate or its policy consumes no replay memory.
type ReplayClaim struct {
	check   func() error
	claimed bool
	err     error
}

// NewReplayClaim wraps check, which records the request's nonce or
// signature and returns the dialect's error for a replay.
func NewReplayClaim(check func() error) *ReplayClaim { return &ReplayClaim{check: check} }

// Claim runs the check once; later calls return the first call's answer.
// A nil claim (no replay rule) claims nothing.
func (c *ReplayClaim) Claim() error {
	if c == nil {
		return nil
	}
	if !c.claimed {
		c.claimed, c.err = true, c.check()
	}
	return c.err
}

// Claimed reports whether Claim ran.
func (c *ReplayClaim) Claimed() bool { return c == nil || c.claimed }
