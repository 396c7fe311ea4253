package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/internal/bench"
	"github.com/p11kms/p11kms/internal/secretseal"
	"github.com/p11kms/p11kms/provider/wire"
)

type benchFlags struct {
	ops                    string
	concurrency            int
	duration               time.Duration
	durationSet            bool // --duration was given
	count                  int
	asJSON                 bool
	keys                   int
	withServer             bool
	serverAddr             string
	serverPID              int
	serverSignature        string
	emit                   int
	rounds                 int
	cpuProfile, memProfile string
}

func newBenchCmd(g *globals) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure operations under load against the primitive-cost upper bound, in one run",
		Long: `bench runs each operation at --concurrency, then measures the primitives it
cannot avoid, each alone on one goroutine — token RNG, token AES-GCM on a
session key and Go public-key encryption for the KMS operations; the token's
private-key operation into a session key (C_UnwrapKey; or C_DeriveKey plus
C_CreateObject) for the session imports, which import a use-once key and
DeleteKey it — and prints ops/s, p50/p90/p99 latency, errors, the limit those
primitives allow and the ratio achieved/limit. The limit is an upper bound:
min(cores, --concurrency) / the primitives' summed CPU seconds per operation
(where the token serialises a call the real ceiling is lower still).
Operations: ` + strings.Join(bench.OpNames, ", ") + `.
The run is split into --rounds rounds per operation, each running the
operation and then each of its primitives for half as long, so the limit is
measured in the same stretches of time.
--duration is the whole measurement: it is divided among the operations,
their rounds and the primitives, and the plan is printed before it starts.
The setup before it (opening the token, --keys, the bench's keys) is not
bounded; its time is printed with the plan. --count runs that many of each
operation instead, whatever time it takes.
The "cpu µs" column is this process's CPU time per operation (SoftHSM's
included); with --server-addr and --server-pid it adds the server process's
(client here + server there), which tells what the server alone costs.
--keys N first fills the token to N CMKs (lookup flatness).
--server and --server-addr add the server operations, called by the bench's
own client (no SDK) over a keep-alive transport, signed as --server-signature
says: acs3 (default) or rpc for Alibaba, tc3 for Tencent. Each server
operation is measured next to the machine's HTTP ceiling, ceiling:<op>: a
trivial handler (read body, HMAC-SHA1, JSON out) served on loopback with the
same net/http settings and called with the same client, concurrency and signed
requests; the table adds the ceiling's rate, the ratio to it, and the ceiling
combined with the in-process cost, 1/(1/ceiling + 1/in-process rate).
--emit N instead
writes N pre-signed requests of one server operation for --server-addr to
stdout as a wrk Lua script, each with a fresh nonce and sent once:
  p11kms bench --server-addr H:P --ops server:GenerateDataKey --emit 100000 >req.lua
  wrk -t2 -c16 -d30s -s req.lua http://H:P -- 2   (the last argument: wrk's -t)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.durationSet = cmd.Flags().Changed("duration")
			names, err := f.check()
			if err != nil {
				return err
			}
			stopProfiles, err := f.startProfiles()
			if err != nil {
				return err
			}
			defer stopProfiles()
			return runBench(cmd, g, f, names)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.ops, "ops", "all", "comma-separated operations, or all")
	fl.IntVar(&f.concurrency, "concurrency", 16, "concurrent callers")
	fl.DurationVar(&f.duration, "duration", time.Minute, "how long the whole measurement runs, divided among the operations, rounds and primitives")
	fl.IntVar(&f.count, "count", 0, "operations of each kind instead of a duration")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
	fl.IntVar(&f.keys, "keys", 0, "fill the token to this many CMKs first")
	fl.BoolVar(&f.withServer, "server", false, "also run the operations over HTTP through an in-process server, signed by the bench's own client (no SDK)")
	fl.StringVar(&f.serverSignature, "server-signature", string(bench.SignatureACS3), "how the server operations sign: acs3, rpc (Alibaba) or tc3 (Tencent)")
	fl.StringVar(&f.serverAddr, "server-addr", "", "instead, call a running `p11kms serve` on this address (same token; first access key of the home)")
	fl.IntVar(&f.serverPID, "server-pid", 0, "with --server-addr: the serve process whose CPU time per operation to report")
	fl.IntVar(&f.emit, "emit", 0, "instead of measuring, write this many pre-signed requests of the one server operation in --ops for --server-addr to stdout, as a wrk Lua script (each request sent once)")
	fl.IntVar(&f.rounds, "rounds", 3, "rounds of operation-then-primitives per operation")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (go tool pprof) to this file")
	fl.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of the whole run (go tool pprof -sample_index=alloc_space) to this file")
	return cmd
}

// server reports whether the server operations are available.
func (f *benchFlags) server() bool { return f.withServer || f.serverAddr != "" }

// check refuses bad flags before anything is opened and returns the
// operations to run, in order.
func (f *benchFlags) check() ([]string, error) {
	bad := func(format string, args ...any) ([]string, error) {
		return nil, usageError{fmt.Errorf(format, args...)}
	}
	switch {
	case f.serverPID != 0 && f.serverAddr == "":
		return bad("--server-pid needs --server-addr")
	case f.rounds < 1:
		return bad("--rounds %d: accepted 1 or more", f.rounds)
	case f.concurrency < 1:
		return bad("--concurrency %d: accepted 1 or more", f.concurrency)
	case f.count < 0:
		return bad("--count %d: accepted 0 (use --duration) or more", f.count)
	case f.count > 0 && f.durationSet:
		return bad("--count and --duration: give one (--count runs that many of each operation, --duration bounds the whole run)")
	case f.count == 0 && f.duration <= 0:
		return bad("--duration %v: accepted a positive duration for the whole run (e.g. 30s)", f.duration)
	case f.keys < 0:
		return bad("--keys %d: accepted 0 or more", f.keys)
	case !slices.Contains(bench.Signatures, bench.Signature(f.serverSignature)):
		return bad("--server-signature %q: accepted acs3, rpc, tc3", f.serverSignature)
	}
	all := slices.Clone(bench.OpNames)
	serverNames := bench.ServerOpsFor(bench.Signature(f.serverSignature))
	names := all
	if f.ops == "" || f.ops == "all" {
		if f.server() {
			names = append(names, serverNames...)
		}
	} else {
		names = splitList(f.ops)
	}
	for _, n := range names {
		if !slices.Contains(all, n) && !(f.server() && slices.Contains(serverNames, n)) {
			return bad("--ops: unknown operation %q; accepted: %s (and with --server or --server-addr and --server-signature %s: %s)",
				n, strings.Join(bench.OpNames, ", "), f.serverSignature, strings.Join(serverNames, ", "))
		}
	}
	if err := f.checkEmit(names, serverNames); err != nil {
		return nil, err
	}
	if f.emit > 0 {
		return names, nil
	}
	return withCeilings(names), nil
}

// withCeilings puts before each server operation in names its HTTP
// ceiling (bench.CeilingName), measured in the same run.
func withCeilings(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, "server:") {
			out = append(out, bench.CeilingName(n))
		}
		out = append(out, n)
	}
	return out
}

// checkEmit refuses an --emit without a running server to sign for or
// without exactly one server operation.
func (f *benchFlags) checkEmit(names, serverNames []string) error {
	switch {
	case f.emit < 0:
		return usageError{fmt.Errorf("--emit %d: accepted 0 (measure) or more requests", f.emit)}
	case f.emit > 0 && f.serverAddr == "":
		return usageError{errors.New("--emit needs --server-addr: the requests are signed for that server, with the home's first access key")}
	case f.emit > 0 && (len(names) != 1 || !slices.Contains(serverNames, names[0])):
		return usageError{fmt.Errorf("--emit needs --ops to name one server operation; accepted with --server-signature %s: %s",
			f.serverSignature, strings.Join(serverNames, ", "))}
	}
	return nil
}

// startProfiles starts the --cpuprofile and creates the --memprofile file
// (so that a bad path fails before the run); stop writes them.
func (f *benchFlags) startProfiles() (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	if f.cpuProfile != "" {
		out, err := os.Create(f.cpuProfile)
		if err != nil {
			return stop, usageError{fmt.Errorf("--cpuprofile: %w", err)}
		}
		stops = append(stops, func() { out.Close() })
		if err := pprof.StartCPUProfile(out); err != nil {
			return stop, fmt.Errorf("--cpuprofile: %w", err)
		}
		stops = append(stops, pprof.StopCPUProfile)
	}
	if f.memProfile != "" {
		out, err := os.Create(f.memProfile)
		if err != nil {
			return stop, usageError{fmt.Errorf("--memprofile: %w", err)}
		}
		stops = append(stops, func() {
			if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
				fmt.Fprintf(os.Stderr, "p11kms: --memprofile: %v\n", err)
			}
			out.Close()
		})
	}
	return stop, nil
}

// runBench sets up, plans the measurement, runs it and prints the results.
func runBench(cmd *cobra.Command, g *globals, f *benchFlags, names []string) error {
	ctx := cmd.Context()
	setupStart := time.Now()
	svc, closeFn, err := g.openService(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if f.keys > 0 {
		if err := bench.Prefill(ctx, svc, f.keys, func(i int) { fmt.Fprintf(os.Stderr, "\rprefill: %d keys", i) }); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr)
	}
	fx, err := bench.NewFixture(ctx, svc, svc.Token())
	if err != nil {
		return err
	}
	defer fx.Close()
	if f.emit > 0 {
		return f.emitRequests(cmd, g, fx, names)
	}
	ops, stopServer, err := f.operations(g, fx, names)
	if err != nil {
		return err
	}
	defer stopServer()
	plan, err := f.plan(ops, time.Since(setupStart))
	if err != nil {
		return err
	}
	results, err := f.measure(ctx, names, ops, plan)
	if err != nil {
		return err
	}
	bench.AddCeilings(names, results)
	if f.asJSON {
		return printJSON(cmd, results)
	}
	printResults(cmd, names, results)
	return nil
}

// operations returns the named operations, in order, with the server
// ones and their HTTP ceilings if asked for; stop shuts down the
// in-process servers.
func (f *benchFlags) operations(g *globals, fx *bench.Fixture, names []string) (ops []bench.Op, stop func(), err error) {
	stop = func() {}
	all := fx.Ops()
	if f.server() {
		if stop, err = f.addServerOps(g, fx, all); err != nil {
			return nil, func() {}, err
		}
	}
	for _, n := range names {
		ops = append(ops, all[n])
	}
	return ops, stop, nil
}

// addServerOps adds to all the server operations (to --server-addr, or to
// an in-process server) and their ceilings; stop shuts down what it started.
func (f *benchFlags) addServerOps(g *globals, fx *bench.Fixture, all map[string]bench.Op) (stop func(), err error) {
	opt := bench.ServerOptions{Signature: bench.Signature(f.serverSignature), Concurrency: f.concurrency}
	cops, stopCeiling, err := fx.CeilingOps(opt)
	if err != nil {
		return nil, err
	}
	stops := []func(){stopCeiling}
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	var sops map[string]bench.Op
	if f.serverAddr != "" {
		key, err := remoteKey(g)
		if err == nil {
			sops, err = fx.RemoteOps(f.serverAddr, key, opt)
		}
		if err != nil {
			stop()
			return nil, err
		}
	} else {
		var stopServer func()
		if sops, stopServer, err = fx.ServerOps(opt); err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, stopServer)
	}
	maps.Copy(all, sops)
	maps.Copy(all, cops)
	return stop, nil
}

// remoteKey is the access key the requests to --server-addr are signed
// with: the first of the home's access keys.
func remoteKey(g *globals) (wire.AccessKey, error) {
	tok, err := g.openToken(context.Background())
	if err != nil {
		return wire.AccessKey{}, fmt.Errorf("access keys: their secrets open with the token: %w", err)
	}
	defer tok.Close()
	sealer, err := secretseal.New(context.Background(), tok)
	if err != nil {
		return wire.AccessKey{}, err
	}
	ak, err := wire.LoadSealedAccessKeys(g.accessKeysPath(""), sealer)
	if err != nil {
		return wire.AccessKey{}, err
	}
	list := ak.List()
	if len(list) == 0 {
		return wire.AccessKey{}, fmt.Errorf("no access key in %s", g.accessKeysPath(""))
	}
	key, _ := ak.Lookup(list[0].AccessKeyId)
	return key, nil
}

// emitRequests writes --emit pre-signed requests of names[0] for
// --server-addr to stdout (bench.Fixture.EmitWrk).
func (f *benchFlags) emitRequests(cmd *cobra.Command, g *globals, fx *bench.Fixture, names []string) error {
	key, err := remoteKey(g)
	if err != nil {
		return err
	}
	s := bench.Signer{Scheme: bench.Signature(f.serverSignature), Host: f.serverAddr, AccessKeyId: key.AccessKeyId,
		AccessKeySecret: key.AccessKeySecret}
	return fx.EmitWrk(cmd.OutOrStdout(), names[0], s, f.emit)
}

// plan divides --duration among ops (nil with --count) and prints it, with
// the setup time, before the measurement starts.
func (f *benchFlags) plan(ops []bench.Op, setup time.Duration) (*bench.Plan, error) {
	setup = setup.Round(100 * time.Millisecond)
	if f.count > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d operation(s), %d of each in %d round(s), each primitive as many times; not bounded in time (--count); setup took %v\n",
			len(ops), f.count, f.rounds, setup)
		return nil, nil
	}
	plan, err := bench.NewPlan(f.duration, f.rounds, ops)
	if err != nil {
		return nil, usageError{fmt.Errorf("--duration: %w; or fewer --ops or --rounds", err)}
	}
	fmt.Fprintf(os.Stderr, "bench: measuring %d operation(s) × %d round(s) in %v (each round: the operation, then each of its primitives for half as long); setup took %v; ends about %s\n",
		len(ops), f.rounds, plan.Total, setup, time.Now().Add(plan.Total).Format(time.TimeOnly))
	return plan, nil
}

// measure runs each operation (names[i] is ops[i]) to the plan, or --count.
func (f *benchFlags) measure(ctx context.Context, names []string, ops []bench.Op, plan *bench.Plan) ([]bench.Result, error) {
	var results []bench.Result
	for i, op := range ops {
		opt := bench.Options{Concurrency: f.concurrency, Count: f.count, Rounds: f.rounds}
		if plan != nil {
			opt.Schedule = plan.Ops[i].Rounds
		}
		if f.serverPID > 0 && strings.HasPrefix(names[i], "server:") {
			var err error
			if opt.ServerCPU, err = bench.PIDCPU(f.serverPID); err != nil {
				return nil, usageError{fmt.Errorf("--server-pid: %w", err)}
			}
		}
		if !f.asJSON {
			opt.Progress = func(done int64, el time.Duration) {
				fmt.Fprintf(os.Stderr, "\r%-44s %8d ops %7.0f ops/s %5.0fs", op.Name, done, float64(done)/el.Seconds(), el.Seconds())
			}
		}
		results = append(results, bench.Measure(ctx, op, opt))
		if !f.asJSON {
			fmt.Fprintf(os.Stderr, "\r%s\r", strings.Repeat(" ", 90))
		}
	}
	return results, nil
}

// printResults prints the table, the server/in-process ratios and the
// first error of each operation that had errors.
func printResults(cmd *cobra.Command, names []string, results []bench.Result) {
	out := cmd.OutOrStdout()
	fmt.Fprint(out, bench.Table(results))
	byOp := map[string]bench.Result{}
	for i, n := range names {
		byOp[n] = results[i]
	}
	for _, pair := range bench.ServerOpNames {
		srv, okS := byOp[pair[0]]
		in, okI := byOp[pair[1]]
		if okS && okI && in.OpsPerSec > 0 {
			fmt.Fprintf(out, "over the server / in-process, %s: %.0f%%\n", pair[1], 100*srv.OpsPerSec/in.OpsPerSec)
		}
	}
	for _, r := range results {
		if r.Errors > 0 {
			fmt.Fprintf(out, "%s: %d errors, first: %s\n", r.Op, r.Errors, r.FirstError)
		}
	}
}
