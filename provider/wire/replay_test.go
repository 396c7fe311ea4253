package wire

import (
	"testing"
	"time"
)

func TestReplayCache(t *testing.T) {
	c := NewReplayCache(time.Minute, 3)
	t0 := time.Unix(1000, 0)
	if seen, _ := c.Seen("a", t0, "x"); seen {
		t.Fatal("first use seen")
	}
	if seen, extra := c.Seen("a", t0.Add(time.Second), "y"); !seen || extra != "x" {
		t.Fatalf("repeat: %v %q", seen, extra)
	}
	c.Seen("b", t0, "")
	c.Seen("c", t0, "")
	// Full of unexpired values: a new one is refused, never let through by forgetting.
	if seen, extra := c.Seen("d", t0.Add(2*time.Second), ""); !seen || extra != ErrReplayCacheFull {
		t.Fatalf("full cache: %v %q", seen, extra)
	}
	if seen, _ := c.Seen("a", t0.Add(30*time.Second), ""); !seen {
		t.Fatal("a forgotten inside its window")
	}
	// After the window everything expires and new values fit again.
	if seen, _ := c.Seen("d", t0.Add(2*time.Minute), ""); seen {
		t.Fatal("expired cache still full")
	}
	if seen, _ := c.Seen("a", t0.Add(2*time.Minute), ""); seen {
		t.Fatal("a remembered past its window")
	}
}
