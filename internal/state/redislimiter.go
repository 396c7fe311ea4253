package state

import (
	"context"
	"encoding/base64"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is the generic cell rate algorithm in one atomic step, on
// Redis's clock (so the nodes' clocks do not matter). KEYS[1] holds the
// theoretical arrival time (TAT) in microseconds; ARGV[1] is the emission
// interval (1/rate) and ARGV[2] the tolerance (burst × interval), both in
// microseconds. A request is allowed when the TAT it would leave is at most
// the tolerance ahead of now; the key expires once the TAT has passed.
// Returns 1 (allowed) or 0.
const gcraScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next = tat + interval
if next - now > tolerance then return 0 end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return 1
`

// gcra is the script, run by EVALSHA (EVAL once after a Redis restart
// emptied the script cache).
var gcra = redis.NewScript(gcraScript)

// RedisLimiter is the RateLimiter shared by every node on one Redis: GCRA,
// one EVALSHA round trip per request. Safe for concurrent use.
type RedisLimiter struct {
	r         *Redis
	interval  int64 // µs
	tolerance int64 // µs
}

// Limiter returns a RateLimiter allowing each access key ratePerSecond
// requests per second across all nodes, with bursts of burst (0 means
// max(1, rate)).
func (r *Redis) Limiter(ratePerSecond float64, burst int) (*RedisLimiter, error) {
	if err := checkRate(ratePerSecond, burst); err != nil {
		return nil, err
	}
	if burst == 0 {
		burst = max(1, int(ratePerSecond))
	}
	interval := int64(math.Max(1, math.Round(float64(time.Second/time.Microsecond)/ratePerSecond)))
	return &RedisLimiter{r: r, interval: interval, tolerance: interval * int64(burst)}, nil
}

// Allow implements RateLimiter; a Redis error wraps ErrUnavailable.
func (l *RedisLimiter) Allow(ctx context.Context, accessKeyID string) (bool, error) {
	d := l.r.digests.sum(accessKeyID, nil)
	key := l.r.prefix + "rate:" + base64.RawURLEncoding.EncodeToString(d[:])
	n, err := gcra.Run(ctx, l.r.client, []string{key}, l.interval, l.tolerance).Int64()
	if err != nil {
		return false, unavailable("EVALSHA gcra", err)
	}
	return n == 1, nil
}
