package state

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// StateURLForm is the form --state accepts, for error messages.
const StateURLForm = "redis://[user:password@]host:port/db (or rediss:// for TLS)"

// DefaultRedisPrefix starts every key p11kms writes to Redis.
const DefaultRedisPrefix = "p11kms:"

// defaultPollInterval is how often Watch reads the access-key version
// counter, the safety net under pub/sub: a change is seen within it even if
// its message was lost (a node reconnecting, Redis restarting).
const defaultPollInterval = 500 * time.Millisecond

// ParseStateURL parses the --state URL. Errors name --state and the accepted
// form; they never repeat a password.
func ParseStateURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold a password
		}
		return nil, fmt.Errorf("state: --state: %v; the accepted form is %s", err, StateURLForm)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("state: --state: scheme %q is not supported; the accepted form is %s", u.Scheme, StateURLForm)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("state: --state %s: no host; the accepted form is %s", u.Redacted(), StateURLForm)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("state: --state %s: %v; the accepted form is %s", u.Redacted(), err, StateURLForm)
	}
	return opts, nil
}

// RedisOptions configures OpenRedis.
type RedisOptions struct {
	// Prefix starts every key (default DefaultRedisPrefix); nodes sharing
	// state use the same prefix.
	Prefix string
	// Secret keys the digests stored in Redis: every node sharing the state
	// must be given the same Secret, or a replay to another node is not
	// recognized. The digest key is HKDF-SHA256(Secret). When empty, the
	// Prefix is used, so the digests still have a fixed size and hide the
	// raw access key ids and nonces, but anyone who can read Redis can test
	// guesses; give a Secret (from the node's configuration, e.g. derived
	// from a key in the token) to make them unlinkable.
	Secret []byte
	// PollInterval is how often Watch reads the version counter
	// (default 500 ms; at most 1 s keeps changes within 1 s).
	PollInterval time.Duration
}

// Redis is the state shared by every node through one Redis database: it
// is a ReplayStore and a Changes, makes RateLimiters, and answers Ready.
// Every error from Redis wraps ErrUnavailable; the client reconnects by
// itself, so service resumes when Redis returns. Safe for concurrent use.
type Redis struct {
	client  *redis.Client
	prefix  string
	digests *digester
	poll    time.Duration
}

// OpenRedis connects lazily to the Redis at the --state URL (no round trip
// here: call Ready to check it).
func OpenRedis(stateURL string, opts RedisOptions) (*Redis, error) {
	ro, err := ParseStateURL(stateURL)
	if err != nil {
		return nil, err
	}
	// Fail fast while Redis is down: a request waits at most about a second.
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = time.Second, time.Second, time.Second
	ro.MaxRetries = 1
	ro.DialerRetries = 1 // the default (5 dials 100 ms apart) held each call ~1 s while Redis was down; now ~20 ms
	ro.ContextTimeoutEnabled = true
	ro.DisableIdentity = true
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	secret := opts.Secret
	if len(secret) == 0 {
		secret = []byte(opts.Prefix)
	}
	key, err := deriveKey(secret)
	if err != nil {
		return nil, fmt.Errorf("state: deriving the digest key: %w", err)
	}
	return &Redis{client: redis.NewClient(ro), prefix: opts.Prefix, digests: newDigester(key), poll: opts.PollInterval}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// unavailable wraps a Redis error so that errors.Is(err, ErrUnavailable).
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

// Ready reports whether Redis answers (for /readyz).
func (r *Redis) Ready(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return unavailable("PING", err)
	}
	return nil
}

// replayKey is the Redis key remembering one (access key, nonce).
func (r *Redis) replayKey(accessKeyID string, nonce []byte) string {
	d := r.digests.sum(accessKeyID, nonce)
	return r.prefix + "replay:" + base64.RawURLEncoding.EncodeToString(d[:])
}

// claimScript remembers a nonce: SET key token NX PX ms, and a key that
// already holds this same token counts as claimed by this call. The
// client retries a command whose reply timed out (MaxRetries), and a SET
// NX that ran but whose reply was lost would, retried, find its own key
// and refuse an honest request as a replay (seen in the 30-min two-node
// sustain run under load: 11 of 4.1 million). With a token unique to the
// call, the retry finds its own token and still succeeds; another node's
// or another request's claim holds another token. One round trip, atomic.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0`)

// Seen implements ReplayStore with claimScript on <prefix>replay:<digest>
// for <window ms>: atomic, so of two nodes given the same nonce exactly one
// sees it as new, and a retried claim is not its own replay. What Redis
// remembers survives a Redis restart only if Redis persists it (appendonly
// with fsync always); without persistence a restart forgets the nonces of
// the last window, which may then replay.
func (r *Redis) Seen(ctx context.Context, accessKeyID string, nonce []byte, window time.Duration) (bool, error) {
	if err := checkSeenArgs(accessKeyID, nonce, window); err != nil {
		return false, err
	}
	ms := int64(math.Ceil(float64(window) / float64(time.Millisecond)))
	var token [16]byte
	rand.Read(token[:])
	claimed, err := claimScript.Run(ctx, r.client, []string{r.replayKey(accessKeyID, nonce)},
		base64.RawURLEncoding.EncodeToString(token[:]), ms).Int()
	if err != nil {
		return false, unavailable("replay claim", err)
	}
	return claimed != 1, nil
}

// Peek implements ReplayStore with EXISTS <prefix>replay:<digest>.
func (r *Redis) Peek(ctx context.Context, accessKeyID string, nonce []byte) (bool, error) {
	if err := checkSeenArgs(accessKeyID, nonce, time.Second); err != nil {
		return false, err
	}
	n, err := r.client.Exists(ctx, r.replayKey(accessKeyID, nonce)).Result()
	if err != nil {
		return false, unavailable("EXISTS", err)
	}
	return n == 1, nil
}

// accessKeysChannel and accessKeysVersion carry access-key changes.
func (r *Redis) accessKeysChannel() string { return r.prefix + "access-keys" }
func (r *Redis) accessKeysVersion() string { return r.prefix + "access-keys:version" }

// Notify implements Changes: INCR the version counter and PUBLISH on the
// channel, in one round trip.
func (r *Redis) Notify(ctx context.Context) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, r.accessKeysVersion())
		p.Publish(ctx, r.accessKeysChannel(), "changed")
		return nil
	})
	if err != nil {
		return unavailable("INCR/PUBLISH", err)
	}
	return nil
}

// Watch implements Changes: a message on the channel, or a version counter
// that differs from the last one read (one call per version) (checked every PollInterval, so a
// lost message or a Redis restart is caught too), calls onChange. While
// Redis is down nothing is called; after it returns, a changed (or reset)
// counter calls onChange once.
func (r *Redis) Watch(ctx context.Context, onChange func()) {
	// The version is read before subscribing: a change in between is not
	// delivered as a message, but the counter moved, so the check finds it.
	last, lastErr := r.version(ctx)
	sub := r.client.Subscribe(ctx, r.accessKeysChannel())
	defer sub.Close()
	messages := sub.Channel()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-messages:
			v, err := r.version(ctx)
			if err != nil || lastErr != nil || v != last {
				onChange() // unless the periodic check already reported this version
			}
			last, lastErr = v, err
		case <-tick.C:
			v, err := r.version(ctx)
			if err != nil {
				continue
			}
			if lastErr != nil || v != last {
				onChange()
			}
			last, lastErr = v, nil
		}
	}
}

// version reads the access-key version counter ("" when never set).
func (r *Redis) version(ctx context.Context) (string, error) {
	v, err := r.client.Get(ctx, r.accessKeysVersion()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// LocalChanges is the in-process Changes: with one process there is no
// other node to tell, so Notify does nothing and Watch only waits for ctx.
type LocalChanges struct{}

// Notify does nothing.
func (LocalChanges) Notify(context.Context) error { return nil }

// Watch returns when ctx is done, never calling onChange.
func (LocalChanges) Watch(ctx context.Context, _ func()) { <-ctx.Done() }
