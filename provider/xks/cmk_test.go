package xks_test

import (
	"slices"
	"testing"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/xks"
)

// TestCMKBackedKey: an external key backed by a CMK alias encrypts under
// the primary version (named in the 17-byte ciphertextMetadata), still
// decrypts after a rotation, refuses a changed version, reports a disabled
// CMK as DISABLED and refuses to use it, and a missing CMK is not found.
func TestCMKBackedKey(t *testing.T) {
	f := newFixture(t, nil)
	m := f.post("keys/cmk/metadata", `{`+meta("DescribeKey")+`}`)
	if m.status != 200 || m.str("keyStatus") != "ENABLED" || !slices.Equal(m.body["keyUsage"].([]any), []any{"ENCRYPT", "DECRYPT"}) {
		t.Fatalf("metadata: %s", m.raw)
	}
	e1 := f.post("keys/cmk/encrypt", encryptBody("first", "ctx", `,"ciphertextDataIntegrityValueAlgorithm":"SHA_256"`))
	md1, _ := b64.DecodeString(e1.str("ciphertextMetadata"))
	if e1.status != 200 || len(md1) != 17 || md1[0] != 2 || e1.str("ciphertextDataIntegrityValue") == "" {
		t.Fatalf("encrypt: %s", e1.raw)
	}
	if _, err := f.kms.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: f.orders}); err != nil {
		t.Fatal(err)
	}
	e2 := f.post("keys/cmk/encrypt", encryptBody("second", "ctx", ""))
	if md2 := e2.str("ciphertextMetadata"); md2 == e1.str("ciphertextMetadata") {
		t.Fatal("the new primary version is not used after a rotation")
	}
	for _, c := range []struct {
		e    answer
		want string
	}{{e1, "first"}, {e2, "second"}} {
		if d := f.post("keys/cmk/decrypt", decryptBody(c.e, "ctx")); d.status != 200 || d.str("plaintext") != enc(c.want) {
			t.Fatalf("decrypt %s: %s", c.want, d.raw)
		}
	}
	swapped := e1
	swapped.body = map[string]any{"ciphertext": e1.str("ciphertext"), "initializationVector": e1.str("initializationVector"),
		"authenticationTag": e1.str("authenticationTag"), "ciphertextMetadata": e2.str("ciphertextMetadata")}
	if d := f.post("keys/cmk/decrypt", decryptBody(swapped, "ctx")); d.str("errorName") != xks.InvalidCiphertextException {
		t.Fatalf("another version's metadata: %s", d.raw)
	}
	short := e1
	short.body = map[string]any{"ciphertext": e1.str("ciphertext"), "initializationVector": e1.str("initializationVector"),
		"authenticationTag": e1.str("authenticationTag"), "ciphertextMetadata": "AQ=="}
	if d := f.post("keys/cmk/decrypt", decryptBody(short, "ctx")); d.str("errorName") != xks.InvalidCiphertextException {
		t.Fatalf("token-key metadata on a CMK key: %s", d.raw)
	}
	if d := f.post("keys/foo/decrypt", decryptBody(e1, "ctx")); d.str("errorName") != xks.InvalidCiphertextException {
		t.Fatalf("a CMK ciphertext opened by a token key: %s", d.raw)
	}
	if m := f.post("keys/cmk-disabled/metadata", `{`+meta("DescribeKey")+`}`); m.status != 200 || m.str("keyStatus") != "DISABLED" {
		t.Fatalf("disabled metadata: %s", m.raw)
	}
	if a := f.post("keys/cmk-disabled/encrypt", encryptBody("x", "", "")); a.status != 400 || a.str("errorName") != xks.InvalidStateException {
		t.Fatalf("disabled encrypt: %s", a.raw)
	}
	if a := f.post("keys/cmk-gone/metadata", `{`+meta("DescribeKey")+`}`); a.status != 404 || a.str("errorName") != xks.KeyNotFoundException {
		t.Fatalf("missing CMK: %s", a.raw)
	}
}
