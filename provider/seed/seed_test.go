package seed_test

import (
	"context"
	"testing"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/seed"
	"github.com/p11kms/p11kms/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

const doc = `
keys:
  - keyId: key-payments-0001
    description: payments
    versions: 2
    aliases: [alias/payments, alias/pay]
  - keyId: key-off-0001
    state: Disabled
  - keyId: key-gone-0001
    state: PendingDeletion
    pendingWindowInDays: 7
`

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	tok := softhsmtest.New(t)
	s := provider.New(tok.Token, provider.Options{})
	f, err := seed.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := seed.Apply(ctx, s, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 3 || res.VersionsAdded != 1 || res.AliasesCreated != 2 || res.StatesChanged != 2 {
		t.Fatalf("first apply: %+v", res)
	}
	before, _ := tok.CountObjects(ctx)
	res, err = seed.Apply(ctx, s, f)
	if err != nil || *res != (seed.Result{}) {
		t.Fatalf("second apply changed something: %+v %v", res, err)
	}
	if after, _ := tok.CountObjects(ctx); after != before {
		t.Fatalf("second apply: %d objects, was %d", after, before)
	}
	g, err := s.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: "alias/payments"})
	if err != nil || g.KeyId != "key-payments-0001" {
		t.Fatalf("seeded alias: %v", err)
	}
	d, _ := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: "key-off-0001"})
	if d.KeyMetadata.KeyState != "Disabled" {
		t.Fatal(d.KeyMetadata.KeyState)
	}
	d, _ = s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: "key-gone-0001"})
	if d.KeyMetadata.KeyState != "PendingDeletion" {
		t.Fatal(d.KeyMetadata.KeyState)
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"keys:\n  - description: x\n", "keys:\n  - keyId: a\n    colour: red\n",
		"keys:\n  - keyId: a\n    state: Frozen\n", "keys:\n  - keyId: a\n  - keyId: a\n"} {
		if _, err := seed.Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
