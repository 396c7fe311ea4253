package seed_test

import (
	"context"
	"strings"
	"testing"

	"github.com/p11kms/p11kms/internal/seed"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
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

// newService is a KMS on a fresh token.
func newService(t *testing.T) (*provider.Service, *softhsmtest.Token) {
	t.Helper()
	tok := softhsmtest.New(t)
	return provider.New(tok.Token, provider.Options{}), tok
}

// countObjects is the number of objects in the token.
func countObjects(t *testing.T, tok *softhsmtest.Token) int {
	t.Helper()
	n, err := tok.CountObjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// aliasTarget is the key an alias resolves to ("" if it does not).
func aliasTarget(t *testing.T, s *provider.Service, alias string) string {
	t.Helper()
	d, err := s.DescribeKey(context.Background(), &provider.KeyIdRequest{KeyId: alias})
	if err != nil {
		return ""
	}
	return d.KeyMetadata.KeyId
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, tok := newService(t)
	f, err := seed.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := seed.Apply(ctx, s, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 3 || res.VersionsAdded != 1 || res.AliasesCreated != 2 || res.StatesChanged != 2 || len(res.AliasesMoved) != 0 {
		t.Fatalf("first apply: %+v", res)
	}
	before := countObjects(t, tok)
	res, err = seed.Apply(ctx, s, f)
	if err != nil || res.Created+res.VersionsAdded+res.AliasesCreated+res.StatesChanged+len(res.AliasesMoved) != 0 {
		t.Fatalf("second apply changed something: %+v %v", res, err)
	}
	if after := countObjects(t, tok); after != before {
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

// What the file alone shows is refused by Parse, as InvalidParameter naming
// the entry (index and keyId) and the field.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"keys:\n  - description: x\n", "keys[0] (no keyId): keyId: is required"},
		{"keys:\n  - keyId: a\n    colour: red\n", "field colour not found"},
		{"keys:\n  - keyId: a\n    state: Frozen\n", `keys[0] (keyId a): state: "Frozen": accepted Enabled`},
		{"keys:\n  - keyId: a\n  - keyId: a\n", "keys[1] (keyId a): keyId: also the keyId of keys[0]"},
		{"keys:\n  - keyId: a\n    versions: 101\n", "keys[0] (keyId a): versions: 101: accepted 1 to 100"},
		{"keys:\n  - keyId: a\n    versions: -1\n", "keys[0] (keyId a): versions: -1: accepted 1 to 100"},
		{"keys:\n  - keyId: a\n    state: PendingDeletion\n    pendingWindowInDays: 3\n", "keys[0] (keyId a): pendingWindowInDays: 3: accepted 7 to 366"},
		{"keys:\n  - keyId: a\n    pendingWindowInDays: 7\n", "keys[0] (keyId a): pendingWindowInDays: only with state PendingDeletion"},
		{"keys:\n  - keyId: a\n    aliases: [payments]\n", `keys[0] (keyId a): aliases[0]: "payments" must start with alias/`},
		{"keys:\n  - keyId: a\n    aliases: [alias/x]\n  - keyId: b\n    aliases: [alias/y, alias/x]\n", "keys[1] (keyId b): aliases[1]: alias/x is also at keys[0].aliases[0]"},
		{"keys:\n  - keyId: a\n    aliases: [alias/x, alias/x]\n", "keys[0] (keyId a): aliases[1]: alias/x is also at keys[0].aliases[0]"},
	} {
		_, err := seed.Parse([]byte(c.doc))
		if err == nil {
			t.Errorf("accepted %q", c.doc)
			continue
		}
		if provider.ErrorCode(err) != provider.CodeInvalidParameter || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v (code %s), want InvalidParameter with %q", c.doc, err, provider.ErrorCode(err), c.want)
		}
	}
	// Every problem is reported at once.
	_, err := seed.Parse([]byte("keys:\n  - keyId: a\n    state: Frozen\n  - versions: 500\n"))
	for _, want := range []string{"keys[0] (keyId a): state:", "keys[1] (no keyId): keyId:", "keys[1] (no keyId): versions:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("two bad entries: %v, want %q", err, want)
		}
	}
}

// An entry that only the KMS can refuse (id syntax, alias syntax, key spec,
// description, rotation interval) stops the seed before anything is
// written, even the valid entries before it, and the error names the entry
// and the field.
func TestInvalidEntryWritesNothing(t *testing.T) {
	ctx := context.Background()
	s, tok := newService(t)
	good := "keys:\n  - keyId: key-good-0001\n    versions: 2\n    aliases: [alias/good]\n"
	for _, c := range []struct{ entry, want string }{
		{"  - keyId: key bad\n", `keys[1] (keyId key bad): keyId: "key bad" is not a key id`},
		{"  - keyId: key-bad-0001\n    aliases: [alias/acs-mine]\n", "keys[1] (keyId key-bad-0001): aliases[0]: names starting with alias/acs are reserved"},
		{"  - keyId: key-bad-0001\n    aliases: [alias/ok, alias/not ok]\n", `keys[1] (keyId key-bad-0001): aliases[1]: "alias/not ok": after alias/ only`},
		{"  - keyId: key-bad-0001\n    rotationInterval: 3d\n", `keys[1] (keyId key-bad-0001): rotationInterval: "3d": accepted an integer with a unit d, h, m or s, from 7 to 365 days`},
		{"  - keyId: key-bad-0001\n    keySpec: RSA_1024\n", `keys[1] (keyId key-bad-0001): keySpec: "RSA_1024": accepted Aliyun_AES_256`},
		{"  - keyId: key-bad-0001\n    description: " + strings.Repeat("d", provider.MaxDescriptionChars+1) + "\n", "keys[1] (keyId key-bad-0001): description: 8193 characters: at most 8192"},
	} {
		before := countObjects(t, tok)
		f, err := seed.Parse([]byte(good + c.entry))
		if err != nil {
			t.Fatalf("%q: Parse: %v", c.entry, err)
		}
		_, err = seed.Apply(ctx, s, f)
		if provider.ErrorCode(err) != provider.CodeInvalidParameter || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60q: %v (code %s), want InvalidParameter with %q", c.entry, err, provider.ErrorCode(err), c.want)
		}
		if after := countObjects(t, tok); after != before {
			t.Errorf("%.60q: %d objects after the refused seed, %d before", c.entry, after, before)
		}
		if _, err := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: "key-good-0001"}); provider.ErrorCode(err) != provider.CodeKeyNotFound {
			t.Errorf("%.60q: the valid entry before the invalid one was created (%v)", c.entry, err)
		}
	}
}

// seedWithShared is a seed that gives alias/shared, which key-other-0001
// owns, to key-mine-0001, after an entry that would create a key.
const seedWithShared = `
keys:
  - keyId: key-first-0001
    aliases: [alias/first]
  - keyId: key-mine-0001
    aliases: [alias/mine, alias/shared]
`

// tokenWithShared is a KMS where key-other-0001 owns alias/shared.
func tokenWithShared(t *testing.T) (*provider.Service, *softhsmtest.Token) {
	t.Helper()
	ctx := context.Background()
	s, tok := newService(t)
	if _, err := s.CreateKey(ctx, &provider.CreateKeyRequest{KeyId: "key-other-0001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAlias(ctx, &provider.AliasRequest{AliasName: "alias/shared", KeyId: "key-other-0001"}); err != nil {
		t.Fatal(err)
	}
	return s, tok
}

// An alias another key owns is refused (Forbidden.AliasExists naming the
// entry, the field and the owner), and nothing is written: it used to be
// moved silently, reported as aliasesCreated 0.
func TestAliasOfAnotherKeyIsRefused(t *testing.T) {
	s, tok := tokenWithShared(t)
	before := countObjects(t, tok)
	f, err := seed.Parse([]byte(seedWithShared))
	if err != nil {
		t.Fatal(err)
	}
	_, err = seed.Apply(context.Background(), s, f)
	want := "keys[1] (keyId key-mine-0001): aliases[1]: alias/shared already points to key key-other-0001"
	if provider.ErrorCode(err) != provider.CodeAliasExists || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "moveAliases: true") {
		t.Fatalf("got %v (code %s), want Forbidden.AliasExists with %q and the opt-in", err, provider.ErrorCode(err), want)
	}
	if got := aliasTarget(t, s, "alias/shared"); got != "key-other-0001" {
		t.Fatalf("alias/shared points to %q after the refused seed", got)
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("%d objects after the refused seed, %d before", after, before)
	}
}

// With moveAliases: true the alias is moved, and the result says from
// which key; applying again moves nothing.
func TestMoveAliasesOptIn(t *testing.T) {
	ctx := context.Background()
	s, _ := tokenWithShared(t)
	f, err := seed.Parse([]byte("moveAliases: true\n" + seedWithShared))
	if err != nil {
		t.Fatal(err)
	}
	res, err := seed.Apply(ctx, s, f)
	if err != nil {
		t.Fatal(err)
	}
	want := seed.AliasMove{Alias: "alias/shared", From: "key-other-0001", To: "key-mine-0001"}
	if res.Created != 2 || res.AliasesCreated != 2 || len(res.AliasesMoved) != 1 || res.AliasesMoved[0] != want {
		t.Fatalf("apply: %+v, want 2 keys, 2 aliases created and %v moved", res, want)
	}
	if got := aliasTarget(t, s, "alias/shared"); got != "key-mine-0001" {
		t.Fatalf("alias/shared points to %q", got)
	}
	if res, err = seed.Apply(ctx, s, f); err != nil || len(res.AliasesMoved)+res.AliasesCreated+res.Created != 0 {
		t.Fatalf("second apply: %+v %v", res, err)
	}
}

// A key pending deletion that the seed gives a new version and a new
// alias gets them and stays pending deletion (EnableKey, which refuses
// such a key, was called on it).
func TestPendingDeletionKeyGetsVersionsAndAliases(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	f, err := seed.Parse([]byte("keys:\n  - keyId: key-gone-0001\n    state: PendingDeletion\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Apply(ctx, s, f); err != nil {
		t.Fatal(err)
	}
	f, err = seed.Parse([]byte("keys:\n  - keyId: key-gone-0001\n    state: PendingDeletion\n    versions: 2\n    aliases: [alias/gone]\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := seed.Apply(ctx, s, f)
	if err != nil || res.VersionsAdded != 1 || res.AliasesCreated != 1 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	d, err := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: "alias/gone"})
	if err != nil || d.KeyMetadata.KeyId != "key-gone-0001" || d.KeyMetadata.KeyState != provider.StatePendingDeletion {
		t.Fatalf("after apply: %+v %v", d, err)
	}
	vs, err := s.ListKeyVersions(ctx, &provider.ListKeyVersionsRequest{KeyId: "key-gone-0001"})
	if err != nil || vs.TotalCount != 2 {
		t.Fatalf("versions: %v %v", vs, err)
	}
}

// The aliases of an entry whose keyId is invalid are checked too: every
// problem is reported at once.
func TestEveryProblemIsReported(t *testing.T) {
	s, tok := tokenWithShared(t)
	before := countObjects(t, tok)
	f, err := seed.Parse([]byte("keys:\n  - keyId: key bad\n    rotationInterval: 1s\n    aliases: [alias/acs-x, alias/shared]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = seed.Apply(context.Background(), s, f)
	for _, want := range []string{"keys[0] (keyId key bad): keyId:", "keys[0] (keyId key bad): rotationInterval:",
		"keys[0] (keyId key bad): aliases[0]: names starting with alias/acs are reserved",
		"keys[0] (keyId key bad): aliases[1]: alias/shared already points to key key-other-0001"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	if provider.ErrorCode(err) != provider.CodeInvalidParameter {
		t.Errorf("code %s, want InvalidParameter (the first problem's)", provider.ErrorCode(err))
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("%d objects after the refused seed, %d before", after, before)
	}
}
