package bench

import (
	"fmt"
	"math/bits"
	"time"
)

// Plan divides a run's whole duration among its operations, their rounds
// and, in each round, the operation and then each of its primitives for
// half as long as the operation. The phases add up to Total exactly.
type Plan struct {
	Total  time.Duration
	Rounds int
	Ops    []OpPlan
}

// OpPlan is one operation's share of a Plan, round by round.
type OpPlan struct {
	Op     string
	Rounds []RoundPlan
}

// RoundPlan is one round of an operation: the operation runs for Op, then
// its primitive i alone for Primitives[i].
type RoundPlan struct {
	Op         time.Duration
	Primitives []time.Duration
}

// MinPhase is the shortest phase NewPlan accepts: below it a phase measures
// little more than its start and stop.
const MinPhase = 10 * time.Millisecond

// Weights of a phase: the operation runs twice as long as each primitive.
const (
	opWeight        = 2
	primitiveWeight = 1
)

// NewPlan splits total among ops, each in rounds rounds. It refuses a total
// that would give a phase under MinPhase, saying the least it accepts.
func NewPlan(total time.Duration, rounds int, ops []Op) (*Plan, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("%d rounds: accepted 1 or more", rounds)
	}
	units := planUnits(rounds, ops)
	if least := MinPhase * time.Duration(units); total < least {
		return nil, fmt.Errorf("%v is too short for %d operation(s) × %d round(s) with their primitives: accepted at least %v (%v per primitive phase, twice that per operation phase)",
			total, len(ops), rounds, least, MinPhase)
	}
	return splitPlan(total, rounds, ops), nil
}

// planUnits is the number of weight units in a plan: a primitive phase is
// one unit.
func planUnits(rounds int, ops []Op) int64 {
	var units int64
	for _, op := range ops {
		units += int64(rounds) * (opWeight + primitiveWeight*int64(len(op.Primitives)))
	}
	return units
}

// splitPlan is NewPlan without the MinPhase check (Measure's own plan for
// one operation). Each phase ends where its share of total, counted from
// the start, ends: rounding never adds up to more or less than total.
func splitPlan(total time.Duration, rounds int, ops []Op) *Plan {
	units := planUnits(rounds, ops)
	var done int64 // units of the phases so far
	at := func(u int64) time.Duration {
		if units == 0 {
			return 0
		}
		// total·u/units, exactly and without overflow (total ≥ 0, u ≤ units).
		q, r := uint64(total)/uint64(units), uint64(total)%uint64(units)
		hi, lo := bits.Mul64(r, uint64(u))
		ru, _ := bits.Div64(hi, lo, uint64(units))
		return time.Duration(q*uint64(u) + ru)
	}
	next := func(weight int64) time.Duration {
		from := at(done)
		done += weight
		return at(done) - from
	}
	p := &Plan{Total: total, Rounds: rounds, Ops: make([]OpPlan, len(ops))}
	for i, op := range ops {
		p.Ops[i] = OpPlan{Op: op.Name, Rounds: make([]RoundPlan, rounds)}
		for r := range p.Ops[i].Rounds {
			rp := RoundPlan{Op: next(opWeight), Primitives: make([]time.Duration, len(op.Primitives))}
			for j := range rp.Primitives {
				rp.Primitives[j] = next(primitiveWeight)
			}
			p.Ops[i].Rounds[r] = rp
		}
	}
	return p
}

// Duration is the operation's whole share: every round, primitives included.
func (o *OpPlan) Duration() time.Duration {
	var d time.Duration
	for _, r := range o.Rounds {
		d += r.Op
		for _, p := range r.Primitives {
			d += p
		}
	}
	return d
}

// Sum is the sum of every phase of the plan (Total, by construction).
func (p *Plan) Sum() time.Duration {
	var d time.Duration
	for i := range p.Ops {
		d += p.Ops[i].Duration()
	}
	return d
}
