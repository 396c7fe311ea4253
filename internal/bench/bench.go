// Package bench measures p11kms under load: an operation run for a duration
// (or a count) at a concurrency, its throughput and latency percentiles, and
// — in the same run — the upper bound its primitives allow (token RNG +
// token AES-GCM + public-key encryption for the KMS operations, the token's
// private-key operation into a session key for the imports; each measured
// alone by one goroutine, their CPU costs summed and spread over the cores:
// see Limit), with the ratio achieved/limit.
package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Op is one benchmarked operation.
type Op struct {
	Name string
	// Run performs one operation.
	Run func(ctx context.Context) error
	// Primitives are the steps the operation cannot avoid; each is measured
	// alone by one goroutine and their CPU costs per operation are summed
	// into the limit (see Limit).
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
	// Duration is the whole measurement of the operation when Count is 0
	// and Schedule is nil (default 5 s): its rounds, each running the
	// operation and then each of its primitives for half as long, add up
	// to Duration (see NewPlan).
	Duration time.Duration
	// Schedule, when Count is 0, gives the rounds and the length of each
	// phase (a Plan's OpPlan.Rounds, so that a whole run keeps to its
	// plan); it overrides Duration and Rounds.
	Schedule []RoundPlan
	// Count, if above 0, is the number of operations instead, shared by
	// the rounds; each primitive runs as many times in a round as the
	// operation.
	Count int
	// Rounds splits the run into this many rounds (default 3); each round
	// runs the operation, then each of its primitives, so that the limit
	// is measured in the same stretches of a noisy machine's time as the
	// operation. Figures are summed over the rounds.
	Rounds int
	// Progress, if set, is called about once a second with the operations
	// done so far.
	Progress func(done int64, elapsed time.Duration)
	// ServerCPU, if set, returns the CPU time used so far by a server
	// measured from outside (see ProcessCPU); its share per operation is
	// reported as ServerCPUMsPerOp.
	ServerCPU func() (time.Duration, error)
	// alone runs fn on one goroutine locked to its OS thread and counts
	// that thread's CPU time only (a primitive's phase; see Limit).
	alone bool
}

// Result is one operation's measurement.
type Result struct {
	Op          string  `json:"op"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"opsPerSec"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	// LimitPerSec is Limit(UsableCores(), Concurrency, primitive CPU
	// costs per call): the upper
	// bound the primitives allow, and Ratio is OpsPerSec/LimitPerSec.
	LimitPerSec float64   `json:"limitOpsPerSec,omitempty"`
	Ratio       float64   `json:"ratio,omitempty"`
	RoundRatios []float64 `json:"roundRatios,omitempty"`
	// LimitCores is the cores the limit spreads the primitives' CPU over:
	// min(UsableCores, Concurrency).
	LimitCores int `json:"limitCores,omitempty"`
	// PrimitiveCPUUs is each primitive's CPU time per call in µs, measured
	// alone by one goroutine (summed over the rounds).
	PrimitiveCPUUs map[string]float64 `json:"primitiveCpuUsPerOp,omitempty"`
	// CPUMsPerOp is this process's CPU time (user + system, SoftHSM's
	// included) per operation.
	CPUMsPerOp float64 `json:"cpuMsPerOp"`
	// ServerCPUMsPerOp is the outside server's CPU time per operation
	// (Options.ServerCPU).
	ServerCPUMsPerOp float64 `json:"serverCpuMsPerOp,omitempty"`
	// CeilingOpsPerSec is, for a server operation, the trivial handler's
	// rate in the same run (AddCeilings), and CeilingRatio is OpsPerSec
	// over it.
	CeilingOpsPerSec float64 `json:"ceilingOpsPerSec,omitempty"`
	CeilingRatio     float64 `json:"ceilingRatio,omitempty"`
	// CombinedOpsPerSec is Combined(CeilingOpsPerSec, the in-process
	// operation's rate), and CombinedRatio is OpsPerSec over it.
	CombinedOpsPerSec float64 `json:"ceilingWithInProcessOpsPerSec,omitempty"`
	CombinedRatio     float64 `json:"ceilingWithInProcessRatio,omitempty"`
}

// tally accumulates the rounds of one operation or primitive.
type tally struct {
	ops, errs int64
	firstErr  string
	elapsed   time.Duration
	cpu       time.Duration
	serverCPU time.Duration
	lat       []time.Duration
}

func (t *tally) perSec() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.ops) / t.elapsed.Seconds()
}

// Measure runs op and its primitives, alternating in rounds, with the same
// concurrency.
func Measure(ctx context.Context, op Op, opt Options) Result {
	rounds := opt.Rounds
	if rounds < 1 {
		rounds = 3
	}
	schedule := opt.Schedule
	switch {
	case opt.Count > 0:
		rounds = min(rounds, opt.Count)
	case schedule == nil:
		d := opt.Duration
		if d <= 0 {
			d = 5 * time.Second
		}
		schedule = splitPlan(d, rounds, []Op{op}).Ops[0].Rounds
		fallthrough
	default:
		rounds = len(schedule)
	}
	var main tally
	prims := make([]tally, len(op.Primitives))
	var roundRatios []float64
	for round := 0; round < rounds && ctx.Err() == nil; round++ {
		o, popts := roundOptions(opt, round, rounds, len(op.Primitives), schedule)
		if opt.Progress != nil {
			base, begun := main.ops, main.elapsed
			o.Progress = func(done int64, el time.Duration) { opt.Progress(base+done, begun+el) }
		}
		before := main
		run(ctx, op.Run, o, &main)
		costs := make([]float64, len(op.Primitives)) // CPU seconds per call, this round
		for i, p := range op.Primitives {
			var pt tally
			run(ctx, p.Run, popts[i], &pt)
			costs[i] = pt.cpuPerOp()
			prims[i].ops += pt.ops
			prims[i].elapsed += pt.elapsed
			prims[i].cpu += pt.cpu
		}
		limit := Limit(UsableCores(), opt.Concurrency, costs)
		if limit > 0 && main.elapsed > before.elapsed {
			achieved := float64(main.ops-before.ops) / (main.elapsed - before.elapsed).Seconds()
			roundRatios = append(roundRatios, achieved/limit)
		}
	}
	return summarize(op, opt, &main, prims, roundRatios)
}

// roundOptions are the options of one round's operation phase and of each
// of its n primitive phases: their share of Count, or their Schedule (a
// primitive the schedule misses runs half as long as the operation). A
// primitive runs on one goroutine, alone: its CPU cost is then free of
// contention (see Limit).
func roundOptions(opt Options, round, rounds, n int, schedule []RoundPlan) (o Options, prims []Options) {
	o = opt
	o.Schedule = nil
	if opt.Count > 0 { // the rounds share Count exactly
		o.Count = opt.Count/rounds + btoi(round < opt.Count%rounds)
	} else {
		o.Duration = schedule[round].Op
	}
	prims = make([]Options, n)
	for i := range prims {
		p := o
		p.Progress, p.ServerCPU, p.Concurrency, p.alone = nil, nil, 1, true
		if opt.Count == 0 {
			p.Duration = o.Duration / 2
			if i < len(schedule[round].Primitives) {
				p.Duration = schedule[round].Primitives[i]
			}
		}
		prims[i] = p
	}
	return o, prims
}

// summarize turns the tallies of a measurement into its Result.
func summarize(op Op, opt Options, main *tally, prims []tally, roundRatios []float64) Result {
	sort.Slice(main.lat, func(i, j int) bool { return main.lat[i] < main.lat[j] })
	pct := func(p float64) float64 {
		if len(main.lat) == 0 {
			return 0
		}
		return float64(main.lat[min(len(main.lat)-1, int(p*float64(len(main.lat))))].Microseconds()) / 1000
	}
	r := Result{Op: op.Name, Concurrency: max(1, opt.Concurrency), Ops: main.ops, Errors: main.errs, FirstError: main.firstErr,
		Seconds: main.elapsed.Seconds(), OpsPerSec: main.perSec(), P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99),
		RoundRatios: roundRatios}
	if main.ops > 0 {
		r.CPUMsPerOp = float64(main.cpu.Microseconds()) / 1000 / float64(main.ops)
		if opt.ServerCPU != nil {
			r.ServerCPUMsPerOp = float64(main.serverCPU.Microseconds()) / 1000 / float64(main.ops)
		}
	}
	if len(op.Primitives) > 0 {
		r.PrimitiveCPUUs = map[string]float64{}
		costs := make([]float64, len(op.Primitives))
		for i, p := range op.Primitives {
			costs[i] = prims[i].cpuPerOp()
			r.PrimitiveCPUUs[p.Name] = 1e6 * costs[i]
		}
		r.LimitCores = min(UsableCores(), r.Concurrency)
		if r.LimitPerSec = Limit(UsableCores(), r.Concurrency, costs); r.LimitPerSec > 0 {
			r.Ratio = r.OpsPerSec / r.LimitPerSec
		}
	}
	return r
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ProcessCPU returns this process's CPU time so far (user + system).
func ProcessCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ThreadCPU returns the calling OS thread's CPU time so far (user +
// system; Linux RUSAGE_THREAD): with the goroutine locked to its thread,
// the CPU it spent, the token module's calls included, and not the Go
// runtime's other threads (idle spinning, GC workers).
func ThreadCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// PIDCPU returns a function reading the CPU time so far of process pid
// (user + system, from /proc), for Options.ServerCPU.
func PIDCPU(pid int) (func() (time.Duration, error), error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	read := func() (time.Duration, error) {
		st, err := p.Stat()
		if err != nil {
			return 0, fmt.Errorf("process %d: %w", pid, err)
		}
		return time.Duration(st.CPUTime() * float64(time.Second)), nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}

// startProgress calls progress (if not nil) every second with the
// operations done since start, until stop is called.
func startProgress(progress func(int64, time.Duration), start time.Time, done *atomic.Int64) (stop func()) {
	if progress == nil {
		return func() {}
	}
	stopped := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-t.C:
				progress(done.Load(), time.Since(start))
			}
		}
	}()
	return func() { close(stopped) }
}

// onLockedThread locks the calling goroutine to its OS thread; the function
// it returns stores the thread's CPU time since in *cpu and unlocks it.
func onLockedThread(cpu *time.Duration) (done func()) {
	runtime.LockOSThread()
	cpu0, _ := ThreadCPU()
	return func() {
		cpu1, _ := ThreadCPU()
		*cpu = cpu1 - cpu0
		runtime.UnlockOSThread()
	}
}

// run runs fn for opt's duration or count at opt's concurrency and adds
// what it did to t: the process's CPU time, or with opt.alone the one
// worker thread's.
func run(ctx context.Context, fn func(context.Context) error, opt Options, t *tally) {
	if opt.Concurrency < 1 || opt.alone {
		opt.Concurrency = 1
	}
	var aloneCPU time.Duration // the worker thread's, with opt.alone
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opt.Count == 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, opt.Duration)
		defer c2()
	}
	var done, errs, issued atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, opt.Concurrency)
	cpu0, _ := ProcessCPU()
	var srv0 time.Duration
	if opt.ServerCPU != nil {
		srv0, _ = opt.ServerCPU()
	}
	start := time.Now()
	stopProgress := startProgress(opt.Progress, start, &done)
	var wg sync.WaitGroup
	for w := 0; w < opt.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if opt.alone {
				defer onLockedThread(&aloneCPU)()
			}
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
				// Give way, as a request that ends does: a caller looping
				// on CPU-bound operations otherwise keeps its P until Go's
				// 10 ms preemption, which shows as a 10 ms p99.
				runtime.Gosched()
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
	stopProgress()
	t.elapsed += time.Since(start)
	cpu1, _ := ProcessCPU()
	if opt.alone {
		t.cpu += aloneCPU
	} else {
		t.cpu += cpu1 - cpu0
	}
	if opt.ServerCPU != nil {
		srv1, _ := opt.ServerCPU()
		t.serverCPU += srv1 - srv0
	}
	t.ops += done.Load()
	t.errs += errs.Load()
	if s, ok := firstErr.Load().(string); ok && t.firstErr == "" {
		t.firstErr = s
	}
	for _, l := range lat {
		t.lat = append(t.lat, l...)
	}
}

// LimitNote explains the limit/s column under a table.
const LimitNote = "limit/s = min(cores, conc) / Σ primitive CPU seconds per op, each primitive alone on one goroutine (its thread's CPU): an upper bound (lower still where the token serialises a call)\n"

// CeilingNote explains the ceiling columns under a table.
const CeilingNote = "ceil/s = trivial handler (read body, HMAC-SHA1, JSON out), same server settings, client, concurrency and signed requests; " +
	"ceil+ip/s = 1/(1/ceil/s + 1/in-process ops/s), both whole-machine rates at the same concurrency\n"

// Table formats results for people; with server operations measured
// against the ceiling (AddCeilings) it adds the ceiling columns.
func Table(rs []Result) string {
	withCeiling := slices.ContainsFunc(rs, func(r Result) bool { return r.CeilingOpsPerSec > 0 })
	s := fmt.Sprintf("%-56s %5s %9s %10s %8s %8s %8s %10s %6s %8s %6s", "operation", "conc", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "limit/s", "ratio", "cpu µs", "errors")
	if withCeiling {
		s += fmt.Sprintf(" %9s %7s %10s %8s", "ceil/s", "of ceil", "ceil+ip/s", "of c+ip")
	}
	s += "\n"
	notes := ""
	for _, r := range rs {
		limit, ratio := "-", "-"
		if r.LimitPerSec > 0 {
			limit, ratio = fmt.Sprintf("%.0f", r.LimitPerSec), fmt.Sprintf("%.0f%%", 100*r.Ratio)
			notes = LimitNote
		}
		cpu := fmt.Sprintf("%.1f", 1000*r.CPUMsPerOp)
		if r.ServerCPUMsPerOp > 0 {
			cpu += fmt.Sprintf("+%.1f", 1000*r.ServerCPUMsPerOp) // client here + server there
		}
		s += fmt.Sprintf("%-56s %5d %9d %10.0f %8.3f %8.3f %8.3f %10s %6s %8s %6d", r.Op, r.Concurrency, r.Ops, r.OpsPerSec, r.P50Ms, r.P90Ms, r.P99Ms, limit, ratio, cpu, r.Errors)
		if withCeiling {
			s += fmt.Sprintf(" %9s %7s %10s %8s", rate(r.CeilingOpsPerSec), percent(r.CeilingRatio), rate(r.CombinedOpsPerSec), percent(r.CombinedRatio))
		}
		s += "\n"
	}
	if withCeiling {
		notes += CeilingNote
	}
	return s + notes
}

// rate formats a rate for a table, "-" when there is none.
func rate(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

// percent formats a ratio for a table, "-" when there is none.
func percent(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}
