// Command sustainer is scripts/sustain's driver: it runs `p11kms serve` at
// full rate from the lean signing client (internal/bench: ACS3, RPC and TC3
// in turn), first one node in process, then two nodes sharing a real
// redis-server, each for --duration. Every --every it prints the honest
// throughput and each node's RSS; every second it injects a replay (an
// Alibaba request sent once, then again unchanged: in the two-node phase
// every other one to the other node). It counts refused honest requests
// and accepted replays and exits 1 if either is not zero.
//
//	go run ./scripts/sustainer --bin ./p11kms [--duration 30m] [--every 1m] [--clock-skew 0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// options are the driver's flags.
type options struct {
	bin         string
	duration    time.Duration
	every       time.Duration
	clockSkew   time.Duration
	maxRate     float64
	concurrency int
	strict      bool
	phases      string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "the p11kms binary (required)")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long each phase (one node, two nodes) runs")
	flag.DurationVar(&o.every, "every", time.Minute, "how often to print throughput and RSS")
	flag.DurationVar(&o.clockSkew, "clock-skew", 0, "serve --clock-skew: the nonce window is twice it (0: the APIs' own, a 30-min window)")
	flag.Float64Var(&o.maxRate, "max-rate", 20000, "serve --max-rate: the in-process replay memory's size (above the full rate, so no honest request is throttled)")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent honest clients")
	flag.BoolVar(&o.strict, "strict", false, "also fail when the last interval's throughput is under 90 % of the first, or a node's RSS peaks above the estimate serve printed at start-up (a quiet machine's 30-min run)")
	flag.StringVar(&o.phases, "phases", "one,two", "which phases to run: one (one node, in process), two (two nodes on Redis), or both")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sustainer:", err)
		os.Exit(2)
	}
	violations, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sustainer:", err)
		os.Exit(1)
	}
	if len(violations) > 0 {
		fmt.Printf("SUSTAIN FAILED: %s\n", strings.Join(violations, "; "))
		os.Exit(1)
	}
	fmt.Println("SUSTAIN OK: no honest request refused, no replay accepted")
}

// selectedPhases is the phases --phases names, in order; nil if it names
// anything else.
func (o *options) selectedPhases() []phase {
	all := map[string]phase{"one": {name: "one node, in process", nodes: 1},
		"two": {name: "two nodes, shared on Redis", nodes: 2, redis: true}}
	var out []phase
	for _, n := range strings.Split(o.phases, ",") {
		ph, ok := all[n]
		if !ok {
			return nil
		}
		delete(all, n)
		out = append(out, ph)
	}
	return out
}

// check refuses bad flags, naming them.
func (o *options) check() error {
	switch {
	case o.bin == "":
		return errors.New("--bin: the p11kms binary is required")
	case o.duration < 5*time.Second:
		return fmt.Errorf("--duration %v: accepted 5s or more", o.duration)
	case o.every < time.Second || o.every > o.duration:
		return fmt.Errorf("--every %v: accepted 1s to --duration", o.every)
	case o.concurrency < 1 || o.concurrency > 1024:
		return fmt.Errorf("--concurrency %d: accepted 1 to 1024", o.concurrency)
	case !(o.maxRate > 0):
		return fmt.Errorf("--max-rate %v: accepted a positive number", o.maxRate)
	case len(o.selectedPhases()) == 0:
		return fmt.Errorf("--phases %q: accepted one, two, or one,two", o.phases)
	}
	return nil
}

// run sets up the home and Redis and runs both phases.
func run(ctx context.Context, o options) ([]string, error) {
	dir, err := os.MkdirTemp("", "p11kms-sustain-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	env, err := newEnv(ctx, o, dir)
	if err != nil {
		return nil, err
	}
	defer env.close()
	var violations []string
	for _, ph := range o.selectedPhases() {
		v, err := env.runPhase(ctx, ph)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ph.name, err)
		}
		violations = append(violations, v...)
	}
	return violations, nil
}
