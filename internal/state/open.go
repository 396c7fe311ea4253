package state

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// Config is what the server's flags give Open.
type Config struct {
	// URL is --state: "" keeps everything in process (the embedded
	// default); redis://host:port/db shares it through Redis.
	URL string
	// Window is the longest nonce window of the enabled dialects.
	Window time.Duration
	// MaxRate sizes the in-process replay memory (requests per second
	// remembered over Window); unused with Redis.
	MaxRate float64
	// Rate and Burst are --rate and --burst per access key; Rate 0 means no
	// rate limit (State.Limiter is nil).
	Rate  float64
	Burst int
	// Secret keys the Redis digests (see RedisOptions.Secret).
	Secret []byte
}

// State is the shared or in-process state one node uses.
type State struct {
	// Replay remembers nonces.
	Replay ReplayStore
	// Limiter limits each access key; nil when Config.Rate is 0.
	Limiter RateLimiter
	// Changes announces and delivers access-key changes.
	Changes Changes
	// Describe says, for the start-up log, where the state lives and, in
	// process, how much memory the replay store holds.
	Describe string
	// MemoryBytes is what the in-process replay store holds when full
	// (Memory.MemoryBytes); 0 with Redis.
	MemoryBytes int64

	ready func(context.Context) error
	close func() error
}

// Open builds the node's state from cfg: in process when cfg.URL is empty,
// else on the Redis it names (no round trip: call Ready).
func Open(cfg Config) (*State, error) {
	if cfg.URL == "" {
		return openLocal(cfg)
	}
	r, err := OpenRedis(cfg.URL, RedisOptions{Secret: cfg.Secret})
	if err != nil {
		return nil, err
	}
	s := &State{Replay: r, Changes: r, ready: r.Ready, close: r.Close,
		Describe: fmt.Sprintf("state: shared on Redis %s", redactedURL(cfg.URL))}
	if cfg.Rate != 0 {
		l, err := r.Limiter(cfg.Rate, cfg.Burst)
		if err != nil {
			r.Close()
			return nil, err
		}
		s.Limiter = l
	}
	return s, nil
}

func openLocal(cfg Config) (*State, error) {
	m, err := NewMemory(cfg.Window, cfg.MaxRate)
	if err != nil {
		return nil, err
	}
	s := &State{Replay: m, Changes: LocalChanges{}, MemoryBytes: m.MemoryBytes(),
		ready: func(context.Context) error { return nil }, close: m.Close,
		Describe: fmt.Sprintf("state: in process; replay memory %d MiB for %d requests (%v × %v/s)",
			(m.MemoryBytes()+1<<20-1)>>20, m.Capacity(), cfg.Window, cfg.MaxRate)}
	if cfg.Rate != 0 {
		l, err := NewLocalLimiter(cfg.Rate, cfg.Burst, 0)
		if err != nil {
			return nil, err
		}
		s.Limiter = l
	}
	return s, nil
}

// Ready reports whether the state can be used (for /readyz): always nil in
// process; with Redis, an error wrapping ErrUnavailable while it is down.
func (s *State) Ready(ctx context.Context) error { return s.ready(ctx) }

// Close releases the connections.
func (s *State) Close() error { return s.close() }

// redactedURL is the --state URL without its password, for logs.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
