package wire

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/state"
)

var (
	errReplayed    = errors.New("replayed")
	errThrottled   = errors.New("throttled")
	errUnavailable = errors.New("unavailable")
)

// testRefusals stands for a dialect's Refuse.
func testRefusals(kind Refusal) error {
	switch kind {
	case Replayed:
		return errReplayed
	case Throttled:
		return errThrottled
	case StateUnavailable:
		return errUnavailable
	}
	return errors.New("unexpected refusal")
}

// closedRedis is the --state URL of a port nothing listens on.
func closedRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "redis://" + addr + "/0"
}

// The replay cache answers each outcome of the store with the dialect's
// refusal: a repeat is Replayed, an access key over its share Throttled
// (another key still passes), an unreachable shared store
// StateUnavailable. (The limiter's refusals are tested through serve:
// TestTwoNodesFailClosedWhileRedisIsDown, TestTwoNodesShareTheRateLimit.)
func TestReplayCacheRefusals(t *testing.T) {
	ctx := context.Background()
	mem, err := state.NewMemory(time.Minute, 1) // 8 entries a bucket
	if err != nil {
		t.Fatal(err)
	}
	c := NewReplayCache(mem, time.Minute)
	if err := c.Claim(ctx, "AK1", "n1", testRefusals); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if seen, err := c.Peek(ctx, "AK1", "n1", testRefusals); !seen || err != nil {
		t.Fatalf("Peek after Claim: %v %v", seen, err)
	}
	if err := c.Claim(ctx, "AK1", "n1", testRefusals); err != errReplayed {
		t.Fatalf("repeat: %v, want replayed", err)
	}
	var throttled bool
	for i := 0; i < 64 && !throttled; i++ {
		err := c.Claim(ctx, "AK1", "flood"+string(rune('a'+i)), testRefusals)
		throttled = err == errThrottled
	}
	if !throttled {
		t.Fatal("a flooding access key was never throttled")
	}
	if err := c.Claim(ctx, "AK2", "n1", testRefusals); err != nil {
		t.Fatalf("another access key while AK1 floods: %v", err)
	}
	r, err := state.OpenRedis(closedRedis(t), state.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	down := NewReplayCache(r, time.Minute)
	if err := down.Claim(ctx, "AK1", "n2", testRefusals); err != errUnavailable {
		t.Fatalf("Claim with Redis down: %v, want unavailable", err)
	}
	if _, err := down.Peek(ctx, "AK1", "n2", testRefusals); err != errUnavailable {
		t.Fatalf("Peek with Redis down: %v, want unavailable", err)
	}
}
