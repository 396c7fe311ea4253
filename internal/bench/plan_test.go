package bench_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/bench"
)

// opsWith are operations with these numbers of primitives.
func opsWith(primitives ...int) []bench.Op {
	nop := func(context.Context) error { return nil }
	var ops []bench.Op
	for i, n := range primitives {
		op := bench.Op{Name: string(rune('a' + i)), Run: nop}
		for range n {
			op.Primitives = append(op.Primitives, bench.Primitive{Name: "p", Run: nop})
		}
		ops = append(ops, op)
	}
	return ops
}

// The phases of a plan add up to its duration exactly, whatever the
// rounding; every operation has its rounds, every primitive phase is half
// its operation's phase (to a nanosecond) and none is under MinPhase.
func TestPlanAddsUpToTheDuration(t *testing.T) {
	// The in-process operations' primitives (2, 3, 3, 1, 1, 2) and three
	// server operations without any.
	ops := opsWith(2, 3, 3, 1, 1, 2, 0, 0, 0)
	for _, total := range []time.Duration{3 * time.Second, 3*time.Second + 7, time.Minute, 17*time.Hour + 1} {
		for _, rounds := range []int{1, 3, 7} {
			p, err := bench.NewPlan(total, rounds, ops)
			if err != nil {
				t.Fatalf("%v, %d rounds: %v", total, rounds, err)
			}
			if p.Sum() != total || p.Total != total || len(p.Ops) != len(ops) {
				t.Fatalf("%v, %d rounds: phases add up to %v (%d operations)", total, rounds, p.Sum(), len(p.Ops))
			}
			for i, o := range p.Ops {
				if o.Op != ops[i].Name || len(o.Rounds) != rounds {
					t.Fatalf("%v: operation %d is %q with %d rounds", total, i, o.Op, len(o.Rounds))
				}
				for _, r := range o.Rounds {
					if len(r.Primitives) != len(ops[i].Primitives) || r.Op < 2*bench.MinPhase {
						t.Fatalf("%v: round %+v of %q", total, r, o.Op)
					}
					for _, d := range r.Primitives {
						if diff := r.Op - 2*d; diff < -2 || diff > 2 || d < bench.MinPhase {
							t.Fatalf("%v: primitive phase %v, operation phase %v", total, d, r.Op)
						}
					}
				}
			}
		}
	}
}

// A duration too short for a MinPhase per phase is refused with the least
// that is accepted, which is accepted.
func TestPlanTooShort(t *testing.T) {
	ops := opsWith(2, 3, 3, 1, 1, 2)
	// 3 rounds × (6 operation phases of 2 units + 12 primitive phases of 1 unit).
	least := 3 * (6*2 + 12) * bench.MinPhase
	_, err := bench.NewPlan(least-1, 3, ops)
	if err == nil || !strings.Contains(err.Error(), "accepted at least "+least.String()) {
		t.Fatalf("%v: %v", least-1, err)
	}
	if _, err := bench.NewPlan(least, 3, ops); err != nil {
		t.Fatalf("%v: %v", least, err)
	}
	if _, err := bench.NewPlan(time.Minute, 0, ops); err == nil {
		t.Fatal("0 rounds accepted")
	}
}

// deadlines records the largest time left before the deadline that the
// calls of a phase saw: never more than the phase's length.
type deadlines struct {
	mu   sync.Mutex
	most time.Duration
}

func (d *deadlines) run(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		d.mu.Lock()
		d.most = max(d.most, left)
		d.mu.Unlock()
	}
	return nil
}

// Measure's Duration is the whole measurement: with 3 rounds and two
// primitives, the operation runs for a sixth of it per round and each
// primitive for a twelfth (it used to be a third each, so that the run took
// three times its Duration). Only upper bounds on the time left are
// checked: the time that passes can only lower it.
func TestMeasureDurationIsTheWholeRun(t *testing.T) {
	var op, p1, p2 deadlines
	o := bench.Op{Name: "op", Run: op.run, Primitives: []bench.Primitive{{Name: "p1", Run: p1.run}, {Name: "p2", Run: p2.run}}}
	const d = 240 * time.Millisecond
	r := bench.Measure(context.Background(), o, bench.Options{Duration: d, Rounds: 3})
	if op.most > d/6 || p1.most > d/12 || p2.most > d/12 {
		t.Fatalf("time left in a phase: operation %v (at most %v), primitives %v and %v (at most %v)", op.most, d/6, p1.most, p2.most, d/12)
	}
	if len(r.RoundRatios) != 3 || r.Ops == 0 {
		t.Fatalf("%d rounds, %d operations", len(r.RoundRatios), r.Ops)
	}
	// A plan's schedule is followed as given.
	var s deadlines
	sched := []bench.RoundPlan{{Op: 20 * time.Millisecond}, {Op: 30 * time.Millisecond}}
	r = bench.Measure(context.Background(), bench.Op{Name: "s", Run: s.run}, bench.Options{Schedule: sched, Rounds: 5})
	if s.most > 30*time.Millisecond || r.Ops == 0 {
		t.Fatalf("schedule of 20 and 30 ms: %v left at most, %d operations", s.most, r.Ops)
	}
}
