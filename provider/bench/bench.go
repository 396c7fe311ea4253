// Package bench measures p11kms under load: an operation run for a duration
// (or a count) at a concurrency, its throughput and latency percentiles, and
// — in the same run, at the same concurrency — the limit its primitives
// allow (token RNG + token AES-GCM + public-key encryption for the KMS
// operations, the token's private-key operation into a session key for the
// imports; each measured alone, costs summed), with the ratio
// achieved/limit.
package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one benchmarked operation.
type Op struct {
	Name string
	// Run performs one operation.
	Run func(ctx context.Context) error
	// Primitives are the steps the operation cannot avoid; each is measured
	// alone and their per-operation costs are summed into the limit.
	Primitives []Primitive
}

// Primitive is one step of an operation's cost floor.
type Primitive struct {
	Name string
	Run  func(ctx context.Context) error
}

// Options bound a run.
type Options struct {
	Concurrency int
	Duration    time.Duration // used when Count is 0
	Count       int
	// Progress, if set, is called about once a second with the operations
	// done so far.
	Progress func(done int64, elapsed time.Duration)
}

// Result is one operation's measurement.
type Result struct {
	Op          string             `json:"op"`
	Concurrency int                `json:"concurrency"`
	Ops         int64              `json:"ops"`
	Errors      int64              `json:"errors"`
	FirstError  string             `json:"firstError,omitempty"`
	Seconds     float64            `json:"seconds"`
	OpsPerSec   float64            `json:"opsPerSec"`
	P50Ms       float64            `json:"p50Ms"`
	P90Ms       float64            `json:"p90Ms"`
	P99Ms       float64            `json:"p99Ms"`
	LimitPerSec float64            `json:"limitOpsPerSec,omitempty"`
	Ratio       float64            `json:"ratio,omitempty"`
	Primitives  map[string]float64 `json:"primitiveOpsPerSec,omitempty"`
}

// Measure runs op, then its primitives, with the same options.
func Measure(ctx context.Context, op Op, opt Options) Result {
	r := run(ctx, op.Name, op.Run, opt)
	if len(op.Primitives) > 0 {
		popt := opt
		popt.Progress = nil
		if popt.Count == 0 && popt.Duration > 2*time.Second {
			popt.Duration = popt.Duration / 2
		}
		r.Primitives = map[string]float64{}
		cost := 0.0 // seconds per operation, summed
		for _, p := range op.Primitives {
			pr := run(ctx, p.Name, p.Run, popt)
			r.Primitives[p.Name] = pr.OpsPerSec
			if pr.OpsPerSec > 0 {
				cost += 1 / pr.OpsPerSec
			}
		}
		if cost > 0 {
			r.LimitPerSec = 1 / cost
			r.Ratio = r.OpsPerSec / r.LimitPerSec
		}
	}
	return r
}

func run(ctx context.Context, name string, fn func(context.Context) error, opt Options) Result {
	if opt.Concurrency < 1 {
		opt.Concurrency = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opt.Count == 0 {
		if opt.Duration <= 0 {
			opt.Duration = 5 * time.Second
		}
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, opt.Duration)
		defer c2()
	}
	var done, errs, issued atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, opt.Concurrency)
	start := time.Now()
	stopProgress := make(chan struct{})
	if opt.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					opt.Progress(done.Load(), time.Since(start))
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for w := 0; w < opt.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				if opt.Count > 0 && issued.Add(1) > int64(opt.Count) {
					return
				}
				t0 := time.Now()
				err := fn(ctx)
				if err != nil && ctx.Err() != nil {
					return // cut off by the deadline: not an error of the operation
				}
				lat[w] = append(lat[w], time.Since(t0))
				done.Add(1)
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	r := Result{Op: name, Concurrency: opt.Concurrency, Ops: done.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		OpsPerSec: float64(done.Load()) / elapsed.Seconds(), P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99)}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	return r
}

// Table formats results for people.
func Table(rs []Result) string {
	s := fmt.Sprintf("%-44s %5s %9s %10s %8s %8s %8s %10s %6s %6s\n", "operation", "conc", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "limit/s", "ratio", "errors")
	for _, r := range rs {
		limit, ratio := "-", "-"
		if r.LimitPerSec > 0 {
			limit, ratio = fmt.Sprintf("%.0f", r.LimitPerSec), fmt.Sprintf("%.0f%%", 100*r.Ratio)
		}
		s += fmt.Sprintf("%-44s %5d %9d %10.0f %8.3f %8.3f %8.3f %10s %6s %6d\n", r.Op, r.Concurrency, r.Ops, r.OpsPerSec, r.P50Ms, r.P90Ms, r.P99Ms, limit, ratio, r.Errors)
	}
	return s
}
