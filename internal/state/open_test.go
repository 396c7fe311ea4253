package state

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/state/redistest"
)

func TestOpenInProcess(t *testing.T) {
	s, err := Open(Config{Window: 30 * time.Minute, MaxRate: 2000, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Log(s.Describe)
	if !strings.Contains(s.Describe, "in process") || !strings.Contains(s.Describe, "MiB") {
		t.Errorf("Describe = %q, want where the state lives and the memory it holds", s.Describe)
	}
	if err := s.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mustSeen(t, s.Replay, "AK1", "n", time.Minute) || !mustSeen(t, s.Replay, "AK1", "n", time.Minute) {
		t.Fatal("in-process replay store does not remember")
	}
	if s.Limiter == nil || !mustAllow(t, s.Limiter, "AK1") {
		t.Fatal("in-process limiter missing or refusing the first request")
	}
	if s, err := Open(Config{Window: time.Minute, MaxRate: 10}); err != nil || s.Limiter != nil {
		t.Fatalf("Open without Rate: limiter %v, err %v; want no limiter", s.Limiter, err)
	}
	if _, err := Open(Config{Window: time.Minute}); err == nil || !strings.Contains(err.Error(), "maxRate") {
		t.Fatalf("Open without MaxRate = %v, want an error naming maxRate", err)
	}
}

func TestOpenRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := Open(Config{URL: srv.URL(1), Window: time.Minute, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if mustSeen(t, s.Replay, "AK1", "n", time.Minute) || !mustSeen(t, s.Replay, "AK1", "n", time.Minute) {
		t.Fatal("Redis replay store does not remember")
	}
	if s.Limiter == nil || !mustAllow(t, s.Limiter, "AK1") {
		t.Fatal("Redis limiter missing or refusing the first request")
	}
	p, err := Open(Config{URL: "redis://user:hunter2@127.0.0.1:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if strings.Contains(p.Describe, "hunter2") {
		t.Fatalf("Describe %q shows the password", p.Describe)
	}
	if _, err := Open(Config{URL: "redis://h:1/x"}); err == nil || !strings.Contains(err.Error(), "--state") {
		t.Fatalf("Open with a bad --state = %v, want an error naming --state", err)
	}
}
