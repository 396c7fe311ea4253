package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/state"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/provider/xks"
)

// stateFlags are serve's flags for its replay memory and rate state.
type stateFlags struct {
	url       string        // --state
	maxRate   float64       // --max-rate
	clockSkew time.Duration // --clock-skew
}

// stateKeyLabel labels the token's HMAC key the Redis digest secret is
// derived from: every node on the token derives the same secret, and it
// is never stored.
const stateKeyLabel = "p11kms/state-hmac"

func (s *stateFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&s.url, "state", "", "share the replay memory, the rate limits and access-key changes with the other nodes on Redis: "+
		state.StateURLForm+" (default: in process)")
	fl.Float64Var(&s.maxRate, "max-rate", wire.DefaultMaxRate, "requests per second the in-process replay memory is sized for over the nonce window "+
		"(one access key alone may sustain it; over its share of the memory an access key is throttled); unused with --state")
	fl.DurationVar(&s.clockSkew, "clock-skew", 0, "how far a request's timestamp may be from this server's clock, both APIs "+
		"(0: Alibaba 15m, Tencent 5m); nonces are remembered for twice it")
}

// check refuses bad state flags before serve opens anything.
func (s *stateFlags) check() error {
	bad := func(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }
	switch {
	case !(s.maxRate > 0) || math.IsInf(s.maxRate, 0):
		return bad("--max-rate %v: accepted a positive number of requests per second", s.maxRate)
	case s.clockSkew < 0 || (s.clockSkew > 0 && s.clockSkew < time.Second) || s.clockSkew > time.Hour:
		return bad("--clock-skew %v: accepted 0 (each API's own) or 1s to 1h", s.clockSkew)
	}
	if s.url != "" {
		if _, err := state.ParseStateURL(s.url); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// openState opens the node's state: in process, or on the Redis of
// --state with the digest secret from the token. It prints where the state
// lives and, in process, how much memory the replay store holds.
func openState(ctx context.Context, f *serveFlags, tok *hsm.Token, log *slog.Logger) (*state.State, error) {
	window := server.ReplayWindow(f.state.clockSkew)
	if f.xks.on { // XKS remembers signatures for its own window, whatever --clock-skew
		window = max(window, xks.ReplayWindow)
	}
	cfg := state.Config{URL: f.state.url, Window: window, MaxRate: f.state.maxRate, Rate: f.rate, Burst: f.burst}
	if cfg.URL != "" {
		key, err := tok.HMACKey(ctx, stateKeyLabel)
		if err != nil {
			return nil, fmt.Errorf("state key: %w", err)
		}
		if cfg.Secret, err = key.Sign(ctx, []byte("p11kms state digest secret v1")); err != nil {
			return nil, fmt.Errorf("state key: %w", err)
		}
	}
	st, err := state.Open(cfg)
	clear(cfg.Secret)
	if err != nil {
		return nil, err
	}
	line := st.Describe + "; " + memoryCeiling(st.MemoryBytes)
	log.Info(line)
	if !isServeChild() {
		fmt.Fprintf(os.Stdout, "p11kms serve: %s\n", line)
	}
	return st, nil
}

// heapAllowance is what memoryCeiling allows above the start-up RSS and the
// replay memory: the Go heap under load (live request state of a few
// hundred connections, twice over with GOGC=100), the token module's own
// allocations and the runtime's stacks.
const heapAllowance = 96 << 20

// memoryCeiling is the start-up estimate of the most this process should
// hold: its RSS now, the replay memory once full (outside the Go heap, see
// internal/state) and heapAllowance. scripts/sustain --strict checks it.
func memoryCeiling(replayBytes int64) string {
	now := residentBytes()
	if now == 0 {
		return "RSS unknown (no /proc/self/status)"
	}
	return fmt.Sprintf("RSS %d MiB at start-up, estimated at most %d MiB under load (+ the replay memory + %d MiB)",
		now>>20, (now+replayBytes+heapAllowance)>>20, heapAllowance>>20)
}

// residentBytes is this process's VmRSS, 0 if it cannot be read.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// watchSharedAccessKeys applies the access-key changes other nodes announce on
// the shared state (in process: none; see state.Changes): it reloads the
// access-keys file and refuses every id revoked on any node, at start-up
// and within about a second of each change.
func watchSharedAccessKeys(ctx context.Context, st *state.State, keys *wire.AccessKeys, log *slog.Logger) {
	apply := func() {
		if _, err := keys.Reload(); err != nil {
			log.Error("access keys changed; reloading the file failed, its old keys stay", "err", err)
		}
		ids, err := st.Changes.Revoked(ctx)
		if err != nil {
			log.Error("access keys changed; reading the revoked ids failed (retried at the next change or when the state returns)", "err", err)
			return
		}
		keys.SetRevoked(ids)
		log.Info("access keys applied", "revoked", len(ids))
	}
	if _, local := st.Changes.(state.LocalChanges); local {
		return
	}
	apply()
	st.Changes.Watch(ctx, apply)
}
