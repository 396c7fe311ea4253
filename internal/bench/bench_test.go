package bench_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/p11kms/p11kms/internal/bench"
)

// Measure sums its rounds: every operation counted once, errors with the
// first message, one ratio per round, the limit from the primitives.
func TestMeasureSumsRounds(t *testing.T) {
	var calls, prim, inPrim, mostInPrim atomic.Int64
	work := make([]byte, 4096)
	op := bench.Op{
		Name: "test op",
		Run: func(context.Context) error {
			if calls.Add(1)%10 == 0 {
				return errors.New("every tenth fails")
			}
			return nil
		},
		Primitives: []bench.Primitive{{Name: "p", Run: func(context.Context) error {
			prim.Add(1)
			if n := inPrim.Add(1); n > mostInPrim.Load() {
				mostInPrim.Store(n)
			}
			defer inPrim.Add(-1)
			for range 20 { // enough CPU for getrusage to see
				sha256.Sum256(work)
			}
			return nil
		}}},
	}
	r := bench.Measure(context.Background(), op, bench.Options{Concurrency: 3, Count: 300, Rounds: 3})
	if r.Ops != 300 || calls.Load() != 300 {
		t.Fatalf("ops %d, calls %d, want 300", r.Ops, calls.Load())
	}
	if r.Errors != 30 || r.FirstError != "every tenth fails" {
		t.Fatalf("errors %d %q, want 30", r.Errors, r.FirstError)
	}
	if prim.Load() != 300 || len(r.RoundRatios) != 3 {
		t.Fatalf("primitive calls %d, round ratios %v: want 300 and 3", prim.Load(), r.RoundRatios)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }
	// The limit is derived from the primitive's CPU cost, measured by one
	// goroutine (it ran at the operation's concurrency, 3, and its wall
	// time was the limit).
	cores := min(bench.UsableCores(), 3)
	want := bench.Limit(bench.UsableCores(), 3, []float64{r.PrimitiveCPUUs["p"] / 1e6})
	if mostInPrim.Load() != 1 || r.LimitCores != cores || r.LimitPerSec <= 0 || !near(r.LimitPerSec, want) || !near(r.Ratio, r.OpsPerSec/r.LimitPerSec) {
		t.Fatalf("primitive at %d at once; limit %v over %d cores, want %v over %d; ratio %v, ops/s %v, primitive CPU µs %v",
			mostInPrim.Load(), r.LimitPerSec, r.LimitCores, want, cores, r.Ratio, r.OpsPerSec, r.PrimitiveCPUUs)
	}
	if r.P50Ms > r.P90Ms || r.P90Ms > r.P99Ms || r.Concurrency != 3 {
		t.Fatalf("percentiles %v %v %v, concurrency %d", r.P50Ms, r.P90Ms, r.P99Ms, r.Concurrency)
	}
}

// CPU time is read for this process, this thread and another process by
// PID; it only grows.
func TestCPUTime(t *testing.T) {
	read, err := bench.PIDCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	a, err := read()
	if err != nil {
		t.Fatal(err)
	}
	self0, err := bench.ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	thread0, err := bench.ThreadCPU()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 20_000_000; i++ {
		x += i ^ x>>3
	}
	_ = x
	b, _ := read()
	self1, _ := bench.ProcessCPU()
	thread1, _ := bench.ThreadCPU()
	if b < a || self1 <= self0 || thread1 <= thread0 {
		t.Fatalf("CPU time went back: /proc %v → %v, getrusage %v → %v, this thread %v → %v", a, b, self0, self1, thread0, thread1)
	}
	if _, err := bench.PIDCPU(1 << 30); err == nil {
		t.Fatal("PIDCPU of a process that cannot exist succeeded")
	}
}

// A count that the rounds do not divide is still run exactly.
func TestMeasureUnevenCount(t *testing.T) {
	var calls atomic.Int64
	op := bench.Op{Name: "count", Run: func(context.Context) error { calls.Add(1); return nil }}
	r := bench.Measure(context.Background(), op, bench.Options{Concurrency: 2, Count: 10, Rounds: 3})
	if r.Ops != 10 || calls.Load() != 10 {
		t.Fatalf("ops %d, calls %d, want 10", r.Ops, calls.Load())
	}
	r = bench.Measure(context.Background(), op, bench.Options{Count: 2, Rounds: 5})
	if r.Ops != 2 {
		t.Fatalf("ops %d, want 2 (more rounds than operations)", r.Ops)
	}
}

// The limit's arithmetic: min(cores, concurrency) cores over the summed
// CPU seconds per operation (costs in powers of two, so exact).
func TestLimitArithmetic(t *testing.T) {
	costs := []float64{1.0 / 1024, 1.0 / 512} // 3/1024 s per operation
	for _, c := range []struct {
		cores, concurrency int
		costs              []float64
		want               float64
	}{
		{1, 16, costs, 1024.0 / 3},
		{2, 16, costs, 2048.0 / 3},
		{2, 1, costs, 1024.0 / 3}, // one caller keeps one core busy
		{8, 3, costs, 3072.0 / 3},
		{0, 0, costs, 1024.0 / 3}, // at least one core, one caller
		{2, 16, []float64{1.0 / 4096}, 8192},
		{2, 16, nil, 0},
		{2, 16, []float64{0, 0}, 0},
	} {
		if got := bench.Limit(c.cores, c.concurrency, c.costs); got != c.want {
			t.Errorf("Limit(%d, %d, %v) = %v, want %v", c.cores, c.concurrency, c.costs, got, c.want)
		}
	}
}
