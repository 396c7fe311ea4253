package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The trivial handler answers the lean client's requests of every server
// operation, with every signature (CeilingOps), and what it answers is the
// HMAC-SHA1 of the request's query and body: it did the work it stands for.
func TestCeilingHandlerAnswersLeanClient(t *testing.T) {
	fx := newTestFixture(t)
	for _, sig := range Signatures {
		t.Run(string(sig), func(t *testing.T) {
			ops, stop, err := fx.CeilingOps(ServerOptions{Signature: sig, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			names := ServerOpsFor(sig)
			if len(ops) != len(names) {
				t.Fatalf("%d ceiling operations for %v", len(ops), names)
			}
			for _, name := range names {
				op, ok := ops[CeilingName(name)]
				if !ok || !strings.Contains(op.Name, " ceiling: ") {
					t.Fatalf("no ceiling operation %q for %s: %v", CeilingName(name), name, ops)
				}
				for i := range 3 {
					if err := op.Run(context.Background()); err != nil {
						t.Fatalf("%s, call %d: %v", op.Name, i, err)
					}
				}
			}
			const secret = "ceiling-test-secret"
			addr, stopH, err := newHTTPServer(CeilingHandler(secret))
			if err != nil {
				t.Fatal(err)
			}
			defer stopH()
			s := Signer{Scheme: sig, Host: addr, AccessKeyId: "LTAIceilingtest", AccessKeySecret: secret}
			call := fx.serverCalls(sig)["server:GenerateDataKey"]
			req, err := s.Sign(call.action, call.params, time.Now(), NewNonce())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := req.GetBody()
			sent, _ := io.ReadAll(body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a CeilingAnswer
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d, %v", resp.StatusCode, err)
			}
			m := hmac.New(sha1.New, []byte(secret))
			m.Write([]byte(req.URL.RawQuery))
			m.Write(sent)
			if want := hex.EncodeToString(m.Sum(nil)); a.HMAC != want || a.RequestId == "" {
				t.Fatalf("answer %+v, want HMAC %s", a, want)
			}
		})
	}
}

// The ceiling ratios' arithmetic (rates in powers of two, so exact), set on
// the server operation only, and the table's ceiling columns and formula.
func TestCeilingRatios(t *testing.T) {
	if got := Combined(16384, 16384); got != 8192 {
		t.Fatalf("Combined(16384, 16384) = %v, want 8192", got)
	}
	if got := Combined(4096, 12288); got != 3072 {
		t.Fatalf("Combined(4096, 12288) = %v, want 3072", got)
	}
	if Combined(0, 100) != 0 || Combined(100, 0) != 0 {
		t.Fatal("Combined without a rate is not 0")
	}
	names := []string{"GenerateDataKey", "ceiling:GenerateDataKey", "server:GenerateDataKey", "ceiling:Decrypt", "server:Decrypt"}
	rs := []Result{{Op: "in", OpsPerSec: 16384}, {Op: "ceil", OpsPerSec: 16384}, {Op: "HTTP+ACS3 GenerateDataKey", OpsPerSec: 4096},
		{Op: "ceil d", OpsPerSec: 8192}, {Op: "HTTP+ACS3 Decrypt", OpsPerSec: 2048}}
	AddCeilings(names, rs)
	if r := rs[2]; r.CeilingOpsPerSec != 16384 || r.CeilingRatio != 0.25 || r.CombinedOpsPerSec != 8192 || r.CombinedRatio != 0.5 {
		t.Fatalf("server:GenerateDataKey: %+v", r)
	}
	// Decrypt in process was not measured: the ceiling ratio only.
	if r := rs[4]; r.CeilingOpsPerSec != 8192 || r.CeilingRatio != 0.25 || r.CombinedOpsPerSec != 0 || r.CombinedRatio != 0 {
		t.Fatalf("server:Decrypt: %+v", r)
	}
	for _, i := range []int{0, 1, 3} {
		if rs[i].CeilingOpsPerSec != 0 || rs[i].CombinedOpsPerSec != 0 {
			t.Fatalf("%s got ceiling figures: %+v", names[i], rs[i])
		}
	}
	table := Table(rs)
	lines := strings.Split(table, "\n")
	for _, col := range []string{"ceil/s", "of ceil", "ceil+ip/s", "of c+ip"} {
		if !strings.Contains(lines[0], col) {
			t.Fatalf("no %q column:\n%s", col, table)
		}
	}
	if !strings.Contains(lines[3], "     16384     25%       8192      50%") || !strings.Contains(table, "ceil+ip/s = 1/(1/ceil/s + 1/in-process ops/s)") {
		t.Fatalf("server:GenerateDataKey's ceiling columns or the formula missing:\n%s", table)
	}
	if strings.Contains(Table(rs[:1]), "ceil/s") {
		t.Fatal("ceiling columns without a ceiling")
	}
}
