package wire

import (
	"time"

	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider"
)

// DefaultMaxBodyBytes is a dialect's request size limit when
// Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 64 << 10

// Config configures a dialect's handler (aliyun.Config and tencent.Config
// are this type).
type Config struct {
	// KMS runs the operations (required).
	KMS *provider.Service
	// Keys are the access keys (Alibaba AccessKeyId, Tencent SecretId)
	// whose signatures are accepted, with their secrets and policies
	// (required).
	Keys *AccessKeys
	// Observer receives one Record per request (nil: none), from the
	// serving goroutine after the answer is written; it must be safe for
	// concurrent use. If it is a Health reporting false, signed requests
	// are refused (Serve).
	Observer Observer
	// Limiter, if set, is asked once per authenticated request; a refusal
	// is the dialect's throttling code. It must be safe for concurrent use.
	Limiter Limiter
	// Now is the clock request timestamps and replay memory are checked
	// against and records are stamped with (default time.Now).
	Now func() time.Time
	// MaxBodyBytes bounds a request: its query string and body together,
	// since the Alibaba SDKs put every parameter in the query (default
	// DefaultMaxBodyBytes); a larger request gets the dialect's code.
	MaxBodyBytes int64
	// ExpectedHost, if set, is the only Host a signed request may name
	// (HostMatches, checked by Serve on Auth.Host); a request signed for
	// another host gets the dialect's signature error (serve --expected-host).
	ExpectedHost string
	// Replay is the node's replay memory (state.Open: in process, bounded,
	// or shared on Redis); nil: an in-process memory of the handler's own
	// (NewLocalReplayCache).
	Replay state.ReplayStore
	// ClockSkew is how far a request's timestamp may be from the clock
	// (0: the dialect's own); nonces are remembered for twice it.
	ClockSkew time.Duration
}

// ReplayCache is the dialect's replay memory for window over Replay.
func (c Config) ReplayCache(window time.Duration) *ReplayCache {
	if c.Replay == nil {
		return NewLocalReplayCache(window)
	}
	return NewReplayCache(c.Replay, window)
}

// WithDefaults fills in the defaults.
func (c Config) WithDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// Pipeline is what Serve runs a request of this configuration against.
func (c Config) Pipeline() Pipeline {
	return Pipeline{KMS: c.KMS, Limiter: c.Limiter, Observer: c.Observer, ExpectedHost: c.ExpectedHost}
}
