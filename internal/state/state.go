package state

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"
)

// ErrThrottled is returned (wrapped or bare: test with errors.Is) when an
// access key exceeds its share of the replay memory. The request was not
// remembered; the server answers it with the dialect's throttling code.
var ErrThrottled = errors.New("state: access key over its share of the replay memory")

// ErrUnavailable is wrapped by every error from the shared store (Redis
// unreachable, timed out, or answering an error). The server must fail
// closed: answer the dialect's service-unavailable code, never treat the
// request as new or allowed.
var ErrUnavailable = errors.New("state: shared state unavailable")

// ReplayStore remembers (access key, nonce) pairs for a window and reports
// repeats. Implementations are safe for concurrent use.
type ReplayStore interface {
	// Seen records nonce (a nonce, or a signature where the dialect has no
	// nonce) for accessKeyID, to be remembered for at least window, and
	// reports whether it was already remembered. Errors: ErrThrottled
	// (in-process store, this key over its share), ErrUnavailable (shared
	// store), or an invalid argument. On any error seen is false and the
	// request must be refused. Call it only after the signature verified,
	// so unauthenticated requests do not consume memory.
	Seen(ctx context.Context, accessKeyID string, nonce []byte, window time.Duration) (seen bool, err error)
	// Peek reports whether nonce is remembered for accessKeyID, recording
	// nothing: a dialect peeks while authenticating, so a replay is refused
	// as such at once, and records (Seen) only once the request passed its
	// checks. Errors: ErrUnavailable (shared store) or an invalid argument.
	Peek(ctx context.Context, accessKeyID string, nonce []byte) (seen bool, err error)
}

// RateLimiter limits requests per access key. Implementations are safe for
// concurrent use.
type RateLimiter interface {
	// Allow takes one request from accessKeyID's allowance and reports
	// whether it was available. Errors: ErrUnavailable (shared store); the
	// request must then be refused (fail closed).
	Allow(ctx context.Context, accessKeyID string) (bool, error)
}

// Changes announces and delivers "the access keys changed" across nodes.
type Changes interface {
	// Notify tells every node that the access keys changed.
	Notify(ctx context.Context) error
	// Revoke records, for every node, that the access keys ids were
	// deleted (so a node whose own access-keys file still lists one
	// refuses it), and announces the change as Notify does.
	Revoke(ctx context.Context, ids ...string) error
	// Revoked lists the access key ids revoked on any node.
	Revoked(ctx context.Context) ([]string, error)
	// Watch calls onChange (from one goroutine, never concurrently) after
	// every change Notify announced on any node, at most about a second
	// late, until ctx is done. Watch blocks; run it in its own goroutine.
	Watch(ctx context.Context, onChange func())
}

// digestSize is the length of a remembered digest: 128 bits of
// HMAC-SHA256, so two different requests collide with probability 2^-128.
const digestSize = 16

// digest is the fixed-size keyed digest of (access key, nonce).
type digest [digestSize]byte

// digester computes digests under one key. Keyed, so what is stored (in
// memory or in Redis) reveals neither access key ids nor nonces, and an
// outsider cannot aim two requests at one slot.
type digester struct {
	pool sync.Pool // of hash.Hash
}

// newDigester returns a digester keyed with key (at least 32 bytes).
func newDigester(key []byte) *digester {
	k := append([]byte(nil), key...)
	return &digester{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

// newProcessDigester returns a digester keyed with 32 random bytes, for
// state that lives and dies with the process.
func newProcessDigester() *digester {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand.Read crashes the program rather than return an error)
	return newDigester(key)
}

// sum is HMAC-SHA256(key, len(accessKeyID) || accessKeyID || nonce)
// truncated to 16 bytes. The length prefix keeps ("ab","c") and ("a","bc")
// apart.
func (d *digester) sum(accessKeyID string, nonce []byte) digest {
	h := d.pool.Get().(hash.Hash)
	defer d.pool.Put(h)
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(accessKeyID)))])
	h.Write([]byte(accessKeyID))
	h.Write(nonce)
	var full [sha256.Size]byte
	var out digest
	copy(out[:], h.Sum(full[:0]))
	return out
}

// deriveKey derives the digest key shared by nodes from a configured
// secret: HKDF-SHA256(secret, info "p11kms state digest v1").
func deriveKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "p11kms state digest v1", 32)
}
