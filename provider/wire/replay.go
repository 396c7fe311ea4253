package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/p11kms/p11kms/internal/state"
)

// DefaultMaxRate sizes the in-process replay memory when nothing else is
// configured (serve's --max-rate): requests per second remembered over the
// longest nonce window. At 30 minutes that is 1,800,000 requests in about
// 48 MiB, allocated at start-up (state.Memory.MemoryBytes).
const DefaultMaxRate = 1000

// ReplayCache is a dialect's replay memory: its window over the node's
// state.ReplayStore (in process, bounded, or shared on Redis). What it
// remembers is a keyed digest of (access key, value); values of different
// dialects or rules are told apart by the dialect's prefix. Safe for
// concurrent use.
type ReplayCache struct {
	store  state.ReplayStore
	window time.Duration
}

// NewReplayCache remembers values in store for window.
func NewReplayCache(store state.ReplayStore, window time.Duration) *ReplayCache {
	return &ReplayCache{store: store, window: window}
}

// NewLocalReplayCache is a ReplayCache over an in-process store of its own,
// sized for window × DefaultMaxRate (for a dialect handler used without
// the composed server). It panics only on a window under 8 ms.
func NewLocalReplayCache(window time.Duration) *ReplayCache {
	m, err := state.NewMemory(window, DefaultMaxRate)
	if err != nil {
		panic(fmt.Sprintf("wire.NewLocalReplayCache: %v", err))
	}
	return NewReplayCache(m, window)
}

// refuse maps a state error to the dialect's refusal: Throttled for an
// access key over its share of the memory, else StateUnavailable (an
// unexpected error, such as an empty access key, fails closed as well).
func refuse(err error, refuse func(Refusal) error) error {
	if errors.Is(err, state.ErrThrottled) {
		return refuse(Throttled)
	}
	return refuse(StateUnavailable)
}

// Claim records value for accessKeyID and returns nil when it was new, or
// the dialect's refusal (its Refuse): Replayed, Throttled (the access key
// is over its share of the memory) or StateUnavailable.
func (c *ReplayCache) Claim(ctx context.Context, accessKeyID, value string, refusal func(Refusal) error) error {
	seen, err := c.Seen(ctx, accessKeyID, value, refusal)
	switch {
	case err != nil:
		return err
	case seen:
		return refusal(Replayed)
	}
	return nil
}

// Seen records value and reports whether it was remembered already; the
// error is the dialect's refusal when the store could not answer.
func (c *ReplayCache) Seen(ctx context.Context, accessKeyID, value string, refusal func(Refusal) error) (bool, error) {
	seen, err := c.store.Seen(ctx, accessKeyID, []byte(value), c.window)
	if err != nil {
		return false, refuse(err, refusal)
	}
	return seen, nil
}

// Peek reports whether value is remembered, recording nothing: a dialect
// peeks while verifying (so a replay is refused as such at once) and
// claims only when the request passed its checks (ReplayClaim). The error
// is the dialect's refusal when the store could not answer.
func (c *ReplayCache) Peek(ctx context.Context, accessKeyID, value string, refusal func(Refusal) error) (bool, error) {
	seen, err := c.store.Peek(ctx, accessKeyID, []byte(value))
	if err != nil {
		return false, refuse(err, refusal)
	}
	return seen, nil
}

// limit asks the pipeline's limiter (nil: no limit) for one request of
// a's access key: nil when allowed, else the dialect's Throttled, or
// StateUnavailable when a shared limiter cannot be reached (fail closed).
func limit(ctx context.Context, lim Limiter, d Dialect, a *Auth) error {
	if lim == nil {
		return nil
	}
	ok, err := lim.Allow(ctx, a.AccessKey.AccessKeyId)
	switch {
	case err != nil:
		return d.Refuse(StateUnavailable, a)
	case !ok:
		return d.Refuse(Throttled, a)
	}
	return nil
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
