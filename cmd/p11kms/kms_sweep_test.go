package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
)

// p11kms kms Sweep finds an asymmetric key pair that no metadata names (a
// kill during CreateKey of an asymmetric key) and lists it in Orphans;
// with --RepairOrphans it destroys it at once.
func TestKmsSweepRepairsOrphanedKeyPairs(t *testing.T) {
	ctx := context.Background()
	id, owner := uuid.New(), uuid.NewString()
	label := "p11kms/" + owner + "/" + id.String()
	tok, err := (&globals{home: testHome}).openToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tok.GenerateCMKKeyPair(ctx, hsm.CMKKeyPairOptions{Curve: hsm.CurveP256, Sign: true, ID: id[:], Label: label})
	tok.Close()
	if err != nil {
		t.Fatal(err)
	}
	sweep := func(args ...string) provider.SweepResult {
		t.Helper()
		out, errOut, code := cli(t, append([]string{"kms", "Sweep"}, args...)...)
		var res provider.SweepResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("kms Sweep %v: %d\n%s%s", args, code, out, errOut)
		}
		return res
	}
	count := func(list []string) int {
		n := 0
		for _, e := range list {
			if strings.Contains(e, label) {
				n++
			}
		}
		return n
	}
	if res := sweep(); count(res.Orphans) != 2 || count(res.Repaired) != 0 {
		t.Fatalf("kms Sweep: %+v", res)
	}
	if res := sweep("--RepairOrphans"); count(res.Repaired) != 2 || count(res.Orphans) != 0 {
		t.Fatalf("kms Sweep --RepairOrphans: %+v", res)
	}
	if res := sweep(); count(res.Orphans)+count(res.Repaired) != 0 {
		t.Fatalf("kms Sweep after the repair: %+v", res)
	}
}
