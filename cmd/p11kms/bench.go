package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider/bench"
	"github.com/p11kms/p11kms/provider/wire"
)

func newBenchCmd(g *globals) *cobra.Command {
	var (
		ops         string
		concurrency int
		duration    time.Duration
		count       int
		asJSON      bool
		keys        int
		withServer  bool
		serverAddr  string
		serverPID   int
		rounds      int
		cpuProfile  string
		memProfile  string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure operations under load against the primitive-cost limit, in one run",
		Long: `bench runs each operation for --duration (or --count operations) at
--concurrency, then measures the primitives it cannot avoid alone at the same
concurrency — token RNG, token AES-GCM on a session key and Go public-key
encryption for the KMS operations; the token's private-key operation into a
session key (C_UnwrapKey; or C_DeriveKey plus C_CreateObject) for the
session imports, which import a use-once key and DeleteKey it — and prints ops/s, p50/p90/p99 latency, errors, the limit those
primitives allow and the ratio achieved/limit. Operations: ` + strings.Join(bench.OpNames, ", ") + `.
The run is split into --rounds rounds, each running the operation and then
its primitives, so the limit is measured in the same stretches of time.
The "cpu µs" column is this process's CPU time per operation (SoftHSM's
included); with --server-addr and --server-pid it adds the server process's
(client here + server there), which tells what the server alone costs.
--keys N first fills the token to N CMKs (lookup flatness).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverPID != 0 && serverAddr == "" {
				return usageError{fmt.Errorf("--server-pid needs --server-addr")}
			}
			if rounds < 1 {
				return usageError{fmt.Errorf("--rounds %d: accepted 1 or more", rounds)}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageError{fmt.Errorf("--cpuprofile: %w", err)}
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				// Created now, so that a bad path fails before the run.
				f, err := os.Create(memProfile)
				if err != nil {
					return usageError{fmt.Errorf("--memprofile: %w", err)}
				}
				defer func() {
					if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
						fmt.Fprintf(os.Stderr, "p11kms: --memprofile: %v\n", err)
					}
					f.Close()
				}()
			}
			ctx := cmd.Context()
			svc, closeFn, err := g.openService(ctx)
			if err != nil {
				return err
			}
			defer closeFn()
			if keys > 0 {
				if err := bench.Prefill(ctx, svc, keys, func(i int) { fmt.Fprintf(os.Stderr, "\rprefill: %d keys", i) }); err != nil {
					return err
				}
				fmt.Fprintln(os.Stderr)
			}
			fx, err := bench.NewFixture(ctx, svc, svc.Token())
			if err != nil {
				return err
			}
			defer fx.Close()
			all := fx.Ops()
			names := bench.OpNames
			if ops != "" && ops != "all" {
				names = splitList(ops)
			}
			if withServer || serverAddr != "" {
				var sops map[string]bench.Op
				if serverAddr != "" {
					ak, err := wire.LoadAccessKeys(g.accessKeysPath(""))
					if err != nil {
						return err
					}
					list := ak.List()
					if len(list) == 0 {
						return fmt.Errorf("no access key in %s", g.accessKeysPath(""))
					}
					key, _ := ak.Lookup(list[0].AccessKeyId)
					sops = fx.RemoteOps(serverAddr, key)
				} else {
					var stop func()
					if sops, stop, err = fx.ServerOps(); err != nil {
						return err
					}
					defer stop()
				}
				for _, pair := range bench.ServerOpNames {
					all[pair[0]] = sops[pair[0]]
					if ops == "" || ops == "all" {
						names = append(names, pair[0])
					}
				}
			}
			var results []bench.Result
			for _, n := range names {
				op, ok := all[n]
				if !ok {
					return usageError{fmt.Errorf("--ops: unknown operation %q; accepted: %s (and with --server: server:<op>)", n, strings.Join(bench.OpNames, ", "))}
				}
				opt := bench.Options{Concurrency: concurrency, Duration: duration, Count: count, Rounds: rounds}
				if serverPID > 0 && strings.HasPrefix(n, "server:") {
					if opt.ServerCPU, err = bench.PIDCPU(serverPID); err != nil {
						return usageError{fmt.Errorf("--server-pid: %w", err)}
					}
				}
				if !asJSON {
					opt.Progress = func(done int64, el time.Duration) {
						fmt.Fprintf(os.Stderr, "\r%-44s %8d ops %7.0f ops/s %5.0fs", op.Name, done, float64(done)/el.Seconds(), el.Seconds())
					}
				}
				r := bench.Measure(ctx, op, opt)
				if !asJSON {
					fmt.Fprintf(os.Stderr, "\r%s\r", strings.Repeat(" ", 90))
				}
				results = append(results, r)
			}
			if asJSON {
				return printJSON(cmd, results)
			}
			fmt.Fprint(cmd.OutOrStdout(), bench.Table(results))
			byOp := map[string]bench.Result{}
			for i, n := range names {
				byOp[n] = results[i]
			}
			for _, pair := range bench.ServerOpNames {
				srv, okS := byOp[pair[0]]
				in, okI := byOp[pair[1]]
				if okS && okI && in.OpsPerSec > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "over the server / in-process, %s: %.0f%%\n", pair[1], 100*srv.OpsPerSec/in.OpsPerSec)
				}
			}
			for _, r := range results {
				if r.Errors > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d errors, first: %s\n", r.Op, r.Errors, r.FirstError)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ops, "ops", "all", "comma-separated operations, or all")
	f.IntVar(&concurrency, "concurrency", 16, "concurrent callers")
	f.DurationVar(&duration, "duration", 5*time.Second, "how long each operation runs")
	f.IntVar(&count, "count", 0, "operations per run instead of a duration")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.IntVar(&keys, "keys", 0, "fill the token to this many CMKs first")
	f.BoolVar(&withServer, "server", false, "also run the operations over HTTP through an in-process server, signed by the official Alibaba SDK")
	f.StringVar(&serverAddr, "server-addr", "", "instead, call a running `p11kms serve` on this address (same token; first access key of the home)")
	f.IntVar(&serverPID, "server-pid", 0, "with --server-addr: the serve process whose CPU time per operation to report")
	f.IntVar(&rounds, "rounds", 3, "rounds of operation-then-primitives per operation")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (go tool pprof) to this file")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the whole run (go tool pprof -sample_index=alloc_space) to this file")
	return cmd
}
