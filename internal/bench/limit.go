package bench

import "runtime"

// The in-process limit is an upper bound on an operation's throughput
// derived from the CPU its primitives cost, each measured alone by one
// goroutine locked to its OS thread, counting that thread's CPU only
// (ThreadCPU: no contention in the token, the Go runtime or the kernel, and
// none of the runtime's idle spinning or GC, which the operation's own
// figure includes):
//
//	limit ops/s = min(cores, concurrency) / Σ primitive CPU seconds per op
//
// An operation does at least its primitives' work, so it costs at least
// their summed CPU; with at most min(cores, concurrency) cores busy at once
// it cannot exceed the limit. Where the token serialises a call (one
// session lock, one thread in the module at a time), the true ceiling is
// lower still — at most 1 / that call's time — so the limit stays an upper
// bound, only a looser one: it does not credit the token with parallelism
// it may lack, nor blame the operation for it. A ratio above 100 % means
// the operation cost less CPU under load than its primitives did alone,
// which is measurement noise (LimitTolerance bounds what the tests accept).

// LimitTolerance is the measurement tolerance on achieved/limit: CPU time
// is read from getrusage around each phase, and a shared machine's caches
// and frequency change between the operation's phase and its primitives'.
const LimitTolerance = 0.10

// UsableCores is the number of cores this process can run on at once:
// GOMAXPROCS, bounded by the CPUs the machine has.
func UsableCores() int { return min(runtime.GOMAXPROCS(0), runtime.NumCPU()) }

// Limit is the in-process upper bound, in operations per second, of an
// operation whose primitives cost cpuSecondsPerOp each (CPU seconds, one
// goroutine, alone), run by concurrency callers on cores cores: the cores
// the callers can keep busy, min(cores, concurrency), divided by the sum of
// the costs. It is 0 when there is no cost to divide by.
func Limit(cores, concurrency int, cpuSecondsPerOp []float64) float64 {
	sum := 0.0
	for _, c := range cpuSecondsPerOp {
		sum += c
	}
	busy := min(max(cores, 1), max(concurrency, 1))
	if sum <= 0 {
		return 0
	}
	return float64(busy) / sum
}

// cpuPerOp is a tally's CPU seconds per operation (0 without operations).
func (t *tally) cpuPerOp() float64 {
	if t.ops <= 0 {
		return 0
	}
	return t.cpu.Seconds() / float64(t.ops)
}
