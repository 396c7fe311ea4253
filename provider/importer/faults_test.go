package importer_test

import (
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/hsmtest"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/wrap"
)

// Faults injected into the real SoftHSM2 calls of ImportDataKey — RSA
// (C_UnwrapKey) and SM2 (C_DeriveKey, the secret read, C_CreateObject),
// with the C_CopyObject that finishes a persistent RSA import or an SM2
// Replace, persistent and session-object imports, Replace — with every code the
// reliability issue names. Each import either succeeds by one retry (a lost
// session or login), or fails with InternalFailure and leaves the token
// exactly as it was (no key, no temporary, the replaced key untouched); the
// next import succeeds and its key is the exported one.
func TestImportFaultInjection(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	svc := importer.New(tok)
	wrapping := map[string]*importer.WrappingKeyResponse{
		"RSAES_OAEP_SHA_1": createWrappingKey(t, svc, "RSA_2048", "wrap-rsa"),
		"SM2PKE":           createWrappingKey(t, svc, "EC_SM2", "wrap-sm2"),
	}
	calls := map[string][]string{
		"RSAES_OAEP_SHA_1": {"C_UnwrapKey", "C_CopyObject", "C_EncryptInit", "C_FindObjects", "C_DestroyObject"},
		"SM2PKE":           {"C_DeriveKey", "C_GetAttributeValue", "C_CreateObject", "C_CopyObject", "C_DestroyObject"},
	}
	injected, n := 0, 0
	for _, alg := range []string{"RSAES_OAEP_SHA_1", "SM2PKE"} {
		wk := wrapping[alg]
		for _, mode := range []string{"persistent", "ephemeral", "replace"} {
			label := fmt.Sprintf("dk/%s/%s", alg, mode)
			if mode == "replace" { // the key every faulted Replace must leave in place
				if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: wk.KeyLabel,
					WrappingAlgorithm: alg, ExportedDataKey: export(t, wk, alg, randomKey(32)), KeyLabel: label}); err != nil {
					t.Fatal(err)
				}
			}
			for _, call := range calls[alg] {
				for codeName, code := range hsmtest.Codes {
					n++
					t.Run(fmt.Sprintf("%s/%s/%s/%s", alg, mode, call, codeName), func(t *testing.T) {
						key := randomKey(32)
						req := &importer.ImportDataKeyRequest{WrappingKeyLabel: wk.KeyLabel, WrappingAlgorithm: alg,
							ExportedDataKey: export(t, wk, alg, key), KeyLabel: label, Ephemeral: mode == "ephemeral",
							Replace: mode == "replace"}
						if mode != "replace" {
							req.KeyLabel = fmt.Sprintf("%s/%d", label, n)
						}
						before := census(t, tok)
						prior := kcvOfLabel(t, tok, label)
						faults.Clear()
						hits := faults.Hits()
						faults.Add(hsmtest.Fault{Call: call, Code: code})
						resp, err := svc.ImportDataKey(bg, req)
						faults.Clear()
						fired := faults.Hits() > hits
						if fired {
							injected++
						}
						retried := hsmtest.Retried(code)
						switch {
						case err == nil:
							// Only a lost session or login is retried; a failed
							// destroy of a temporary, or a failed read while
							// looking for the label, is survived.
							if fired && !retried && call != "C_FindObjects" && call != "C_GetAttributeValue" && call != "C_DestroyObject" {
								t.Fatalf("the fault fired and yet the import succeeded")
							}
							checkImported(t, tok, req, resp, key, before)
						case !fired:
							t.Fatalf("no fault fired, yet: %v", err)
						case retried:
							t.Fatalf("a lost session/login must be retried once: %v", err)
						default:
							if provider.ErrorCode(err) != provider.CodeInternalFailure {
								t.Fatalf("got %v, want InternalFailure", err)
							}
							if after := census(t, tok); after.persistent != before.persistent || after.temporaries != 0 {
								t.Fatalf("after the failed import: %+v, before: %+v", after, before)
							}
							if kcvOfLabel(t, tok, label) != prior {
								t.Fatal("the failed import changed the key under the label")
							}
							// The next import succeeds.
							before := census(t, tok)
							resp, err := svc.ImportDataKey(bg, req)
							if err != nil {
								t.Fatalf("next import after the fault: %v", err)
							}
							checkImported(t, tok, req, resp, key, before)
						}
					})
				}
			}
		}
	}
	t.Logf("%d faults fired in %d faulted imports; every one survived", injected, n)
	if injected < n*2/3 {
		t.Fatalf("only %d of %d faults fired", injected, n)
	}
}

// objectCensus is what the token holds: persistent objects, and session
// objects without a label (a temporary left behind: a derived secret, an
// unchecked unwrapped key). Labelled session keys are not counted: a lost
// session (what the retried faults simulate) takes the ones it made with it,
// as it would on a real token.
type objectCensus struct{ persistent, temporaries int }

func census(t *testing.T, tok *hsm.Token) objectCensus {
	t.Helper()
	hs, err := tok.FindObjects(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c objectCensus
	for _, h := range hs {
		a, err := tok.Attributes(bg, h, pkcs11.CKA_TOKEN, pkcs11.CKA_LABEL)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(a[pkcs11.CKA_TOKEN]) == 1 && a[pkcs11.CKA_TOKEN][0] == 1:
			c.persistent++
		case len(a[pkcs11.CKA_LABEL]) == 0:
			c.temporaries++
		}
	}
	return c
}

// checkImported asserts the import added one persistent object (none for an
// Ephemeral import or a Replace), left no temporary, and the key under the
// label is the exported key.
func checkImported(t *testing.T, tok *hsm.Token, req *importer.ImportDataKeyRequest, resp *importer.ImportDataKeyResponse, key []byte, before objectCensus) {
	t.Helper()
	want := before.persistent + 1
	if req.Ephemeral || req.Replace {
		want = before.persistent
	}
	if after := census(t, tok); after.persistent != want || after.temporaries != 0 {
		t.Fatalf("after the import: %+v, want %d persistent objects and no temporary", after, want)
	}
	kcv, _ := wrap.KCV(key)
	if resp.KeyCheckValue != kcv || kcvOfLabel(t, tok, req.KeyLabel) != kcv {
		t.Fatalf("imported KCV %s (in the token: %s), the exported key's is %s", resp.KeyCheckValue, kcvOfLabel(t, tok, req.KeyLabel), kcv)
	}
}

// kcvOfLabel returns the KCV of the key labelled label ("" if none).
func kcvOfLabel(t *testing.T, tok *hsm.Token, label string) string {
	t.Helper()
	h, err := tok.FindSecretKeyByLabel(bg, label)
	if err != nil {
		return ""
	}
	kcv, err := tok.KCV(bg, h)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", kcv)
}

// A Replace whose old key cannot be destroyed is undone; if the new key
// cannot be destroyed either, its pending key stays, so the label's next
// lookup finishes the import: one key under the label, never two that
// nothing tells apart (Rejected.Conflict for ever).
func TestReplaceUndoneHalfway(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	svc := importer.New(tok)
	wk := createWrappingKey(t, svc, "RSA_2048", "wrap")
	oldKey, newKey := randomKey(32), randomKey(32)
	req := func(key []byte, replace bool) *importer.ImportDataKeyRequest {
		return &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_1", key), KeyLabel: "dk", Replace: replace}
	}
	if _, err := svc.ImportDataKey(bg, req(oldKey, false)); err != nil {
		t.Fatal(err)
	}
	// The old key's destruction fails, then the new key's.
	faults.Add(hsmtest.Fault{Call: "C_DestroyObject", Code: pkcs11.CKR_DEVICE_ERROR, Times: 2})
	_, err := svc.ImportDataKey(bg, req(newKey, true))
	faults.Clear()
	if provider.ErrorCode(err) != provider.CodeInternalFailure {
		t.Fatalf("got %v, want InternalFailure", err)
	}
	if faults.Hits() != 2 {
		t.Fatalf("%d faults fired, want 2", faults.Hits())
	}
	encryptsWith(t, importer.New(tok), "dk", newKey) // a new Service: nothing cached
	hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "dk")})
	if err != nil || len(hs) != 1 {
		t.Fatalf("%d objects labelled dk after the lookup (%v), want 1", len(hs), err)
	}
}

// A Replace that has destroyed one of the label's old keys has taken effect:
// if destroying the next one fails, it goes forward instead of undoing
// itself (which would leave the label with one of the old keys and the
// other gone). It reports success; the label's next lookup destroys the
// old key that remains, and the label names the new key alone.
func TestReplaceGoesForwardOnceAnOldKeyIsGone(t *testing.T) {
	tok, faults := hsmtest.Open(t, softhsmtest.Create(t).Config)
	svc := importer.New(tok)
	wk := createWrappingKey(t, svc, "RSA_2048", "wrap")
	req := func(key []byte, replace bool) *importer.ImportDataKeyRequest {
		return &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			ExportedDataKey: export(t, wk, "RSAES_OAEP_SHA_1", key), KeyLabel: "dk", Replace: replace}
	}
	if _, err := svc.ImportDataKey(bg, req(randomKey(32), false)); err != nil {
		t.Fatal(err)
	}
	// A second key under the label, as another tool would leave it.
	if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{Label: "dk"}); err != nil {
		t.Fatal(err)
	}
	newKey := randomKey(32)
	faults.Add(hsmtest.Fault{Call: "C_DestroyObject", Nth: 2, Code: pkcs11.CKR_DEVICE_ERROR})
	_, err := svc.ImportDataKey(bg, req(newKey, true))
	faults.Clear()
	if faults.Hits() != 1 {
		t.Fatalf("%d faults fired, want 1", faults.Hits())
	}
	if err != nil {
		t.Fatalf("the Replace had taken effect (an old key was destroyed), yet it failed: %v", err)
	}
	encryptsWith(t, importer.New(tok), "dk", newKey) // a new Service: nothing cached
	hs, err := tok.FindObjects(bg, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "dk")})
	if err != nil || len(hs) != 1 {
		t.Fatalf("%d objects labelled dk after the lookup (%v), want 1", len(hs), err)
	}
}
