package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/internal/bench"
)

// bench checks its flags before it opens anything (here a token that does
// not exist), with usage errors naming the flag and what it accepts.
func TestBenchChecksFlagsFirst(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration", "0s"}, "--duration 0s: accepted a positive duration"},
		{[]string{"--duration", "-1s"}, "--duration -1s: accepted a positive duration"},
		{[]string{"--count", "-1"}, "--count -1: accepted 0"},
		{[]string{"--count", "5", "--duration", "1s"}, "--count and --duration: give one"},
		{[]string{"--concurrency", "0"}, "--concurrency 0: accepted 1 or more"},
		{[]string{"--rounds", "0"}, "--rounds 0: accepted 1 or more"},
		{[]string{"--keys", "-1"}, "--keys -1: accepted 0 or more"},
		{[]string{"--ops", "Decrypt,Nope"}, `--ops: unknown operation "Nope"; accepted: GenerateDataKey,`},
		{[]string{"--ops", "server:Decrypt"}, `--ops: unknown operation "server:Decrypt"`},
		{[]string{"--server-pid", "1"}, "--server-pid needs --server-addr"},
		{[]string{"--emit", "-1"}, "--emit -1: accepted 0 (measure) or more requests"},
		{[]string{"--emit", "5", "--server", "--ops", "server:Decrypt"}, "--emit needs --server-addr"},
		{[]string{"--emit", "5", "--server-addr", "127.0.0.1:1", "--ops", "server:Decrypt,server:GenerateDataKey"},
			"--emit needs --ops to name one server operation; accepted with --server-signature acs3: server:GenerateDataKey, server:GenerateAndExportDataKey-RSA"},
		{[]string{"--server", "--server-signature", "v2"}, `--server-signature "v2": accepted acs3, rpc, tc3`},
		{[]string{"--server", "--server-signature", "tc3", "--ops", "server:GenerateAndExportDataKey-RSA"},
			`unknown operation "server:GenerateAndExportDataKey-RSA"; accepted: GenerateDataKey, GenerateAndExportDataKey-RSA, GenerateAndExportDataKey-SM2, Decrypt, ImportDataKey-RSA, ImportDataKey-SM2 (and with --server or --server-addr and --server-signature tc3: server:GenerateDataKey, server:Decrypt)`},
	} {
		_, errOut, code := cli(t, append([]string{"--token", "pkcs11:token=no-such-token", "bench"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("bench %v: status %d, want 2 with %q:\n%s", c.args, code, c.want, errOut)
		}
	}
}

// bench --server drives every server operation with the bench's own
// signing client, with each signature, and the server accepts every call;
// each is measured next to its HTTP ceiling (the trivial handler, which
// answers too), and the JSON carries the ratio to it and to the ceiling
// combined with the in-process rate.
func TestBenchServerEveryOperationAccepted(t *testing.T) {
	for _, sig := range bench.Signatures {
		names := bench.ServerOpsFor(sig)
		out, errOut, code := cli(t, "bench", "--server", "--server-signature", string(sig), "--count", "4", "--rounds", "1",
			"--concurrency", "2", "--ops", "GenerateDataKey,"+strings.Join(names, ","), "--json")
		if code != 0 {
			t.Fatalf("%s: status %d\n%s", sig, code, errOut)
		}
		var results []bench.Result
		if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1+2*len(names) {
			t.Fatalf("%s: %d results for GenerateDataKey and %v with their ceilings, %v:\n%s", sig, len(results), names, err, out)
		}
		inProcess := results[0]
		for i, r := range results[1:] {
			label, isCeiling := "HTTP+"+strings.ToUpper(string(sig))+" ", i%2 == 0
			if isCeiling {
				label += "ceiling: "
			}
			if r.Ops != 4 || r.Errors != 0 || !strings.HasPrefix(r.Op, label) {
				t.Errorf("%s: %s: %d ops, %d errors (first: %s), want the prefix %q", sig, r.Op, r.Ops, r.Errors, r.FirstError, label)
			}
			ceiling := results[1+i-1]
			if isCeiling {
				if r.CeilingOpsPerSec != 0 {
					t.Errorf("%s: %s has a ceiling of its own", sig, r.Op)
				}
				continue
			}
			if r.CeilingOpsPerSec != ceiling.OpsPerSec || !near(r.CeilingRatio, r.OpsPerSec/ceiling.OpsPerSec) {
				t.Errorf("%s: %s: ceiling %v (ratio %v), the ceiling's result %v", sig, r.Op, r.CeilingOpsPerSec, r.CeilingRatio, ceiling.OpsPerSec)
			}
			combined := bench.Combined(ceiling.OpsPerSec, inProcess.OpsPerSec)
			if strings.HasSuffix(r.Op, " GenerateDataKey") != (r.CombinedOpsPerSec > 0) ||
				(r.CombinedOpsPerSec > 0 && (!near(r.CombinedOpsPerSec, combined) || !near(r.CombinedRatio, r.OpsPerSec/combined))) {
				t.Errorf("%s: %s: ceiling with in-process %v (ratio %v), want %v for GenerateDataKey only", sig, r.Op, r.CombinedOpsPerSec, r.CombinedRatio, combined)
			}
		}
	}
}

// near is equality to a relative 1e-9 (figures computed in another order).
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

// The text report of bench --server has the ceiling's columns, filled for
// the server operation, and the formulas of the limit and the ceilings.
func TestBenchServerTableHasCeilingColumns(t *testing.T) {
	out, errOut, code := cli(t, "bench", "--server", "--count", "4", "--rounds", "1", "--concurrency", "2",
		"--ops", "GenerateDataKey,server:GenerateDataKey")
	if code != 0 {
		t.Fatalf("status %d\n%s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	for _, col := range []string{"limit/s", "ceil/s", "of ceil", "ceil+ip/s", "of c+ip"} {
		if !strings.Contains(lines[0], col) {
			t.Fatalf("no %q column:\n%s", col, out)
		}
	}
	if len(lines) < 4 || !strings.HasPrefix(lines[2], "HTTP+ACS3 ceiling: GenerateDataKey") || !strings.HasPrefix(lines[3], "HTTP+ACS3 GenerateDataKey") ||
		strings.Count(lines[3], "%") != 2 || !strings.Contains(out, bench.LimitNote) || !strings.Contains(out, bench.CeilingNote) {
		t.Fatalf("server GenerateDataKey without its ceiling figures, or a formula missing:\n%s", out)
	}
}

// --emit N writes N pre-signed requests as a wrk script on stdout (their
// acceptance by the server is internal/bench's TestEmitWrkRequestsAccepted),
// signed with the home's first access key for --server-addr, and measures
// nothing.
func TestBenchEmitWritesWrkScript(t *testing.T) {
	out, errOut, code := cli(t, "bench", "--server-addr", "127.0.0.1:1", "--ops", "server:Decrypt", "--emit", "2")
	if code != 0 {
		t.Fatalf("bench --emit: status %d\n%s", code, errOut)
	}
	if n := strings.Count(out, `"POST /?`); n != 2 || !strings.Contains(out, "function request()") ||
		!strings.Contains(out, `\r\nHost: 127.0.0.1:1\r\n`) || !strings.Contains(out, "Credential=LTAI") {
		t.Fatalf("bench --emit 2: %d requests in:\n%s", n, out)
	}
	if strings.Contains(errOut, "measuring") {
		t.Fatalf("bench --emit measured:\n%s", errOut)
	}
}

// --duration is the whole run: `bench --duration 3s` took 64 s, each
// operation running 3 s and each of its primitives as long again. The plan
// is printed before the measurement, a --duration too short for the plan is
// refused with the least it accepts, and the run ends within a generous
// bound of --duration (the plan's phases adding up to it is
// TestPlanAddsUpToTheDuration's).
func TestBenchDurationIsTheWholeRun(t *testing.T) {
	_, errOut, code := cli(t, "bench", "--duration", "100ms", "--concurrency", "2", "--json")
	if code != 2 || !strings.Contains(errOut, "--duration: 100ms is too short for 6 operation(s) × 3 round(s) with their primitives: accepted at least 720ms") {
		t.Fatalf("--duration 100ms: status %d\n%s", code, errOut)
	}
	const d = 3 * time.Second
	start := time.Now()
	out, errOut, code := cli(t, "bench", "--duration", d.String(), "--concurrency", "2", "--json")
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("bench: status %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "bench: measuring 6 operation(s) × 3 round(s) in 3s (each round: the operation, then each of its primitives for half as long); setup took ") {
		t.Fatalf("no plan printed:\n%s", errOut)
	}
	var results []bench.Result
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != len(bench.OpNames) {
		t.Fatalf("%d results, %v:\n%s", len(results), err, out)
	}
	// Generous: setup (key generation in the token) and a loaded machine
	// fit in it many times; the old 18 × 3 s of phases do not.
	if limit := d + 30*time.Second; took > limit {
		t.Fatalf("bench --duration %v took %v (more than %v)", d, took, limit)
	}
}
