package provider_test

import (
	"encoding/base64"
	"testing"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// TestExternalSealOpen: a CMK (by id or alias) seals and opens for the XKS
// proxy; a wrong AAD, another key's version, a disabled key and a
// non-existent version are refused with the core's codes.
func TestExternalSealOpen(t *testing.T) {
	s, _, _ := newService(t)
	id, other := createKey(t, s), createKey(t, s)
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/xks", KeyId: id}); err != nil {
		t.Fatal(err)
	}
	ek, err := s.DescribeExternal(bg, "alias/xks")
	if err != nil || ek.KeyId != id || !ek.Enabled {
		t.Fatalf("describe: %+v %v", ek, err)
	}
	v, sealed, err := s.SealExternal(bg, "alias/xks", []byte("data key"), func(uuid.UUID) []byte { return []byte("aad") })
	if err != nil || len(sealed.IV) != 12 || len(sealed.Tag) != 16 {
		t.Fatalf("seal: %v", err)
	}
	pt, err := s.OpenExternal(bg, id, v, sealed, []byte("aad"))
	if err != nil || string(pt) != "data key" {
		t.Fatalf("open: %q %v", pt, err)
	}
	_, err = s.OpenExternal(bg, id, v, sealed, []byte("aae"))
	wantCode(t, err, provider.CodeInvalidCiphertext)
	_, err = s.OpenExternal(bg, other, v, sealed, []byte("aad"))
	wantCode(t, err, provider.CodeInvalidCiphertext)
	_, err = s.OpenExternal(bg, id, uuid.New(), sealed, []byte("aad"))
	wantCode(t, err, provider.CodeInvalidCiphertext)
	if _, err := s.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.SealExternal(bg, id, []byte("x"), func(uuid.UUID) []byte { return nil })
	wantCode(t, err, provider.CodeDisabled)
	if ek, _ := s.DescribeExternal(bg, id); ek.Enabled {
		t.Fatal("a disabled key is reported enabled")
	}
	_, err = s.DescribeExternal(bg, "alias/none")
	wantCode(t, err, provider.CodeAliasNotFound)
}

// TestExternalCannotOpenCiphertextBlobs: the XKS AAD is tagged, so a caller
// who chooses the AAD and the IV cannot have a CiphertextBlob decrypted:
// not with the blob's exact AAD, not with it minus its first byte.
func TestExternalCannotOpenCiphertextBlobs(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	r, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: base64.StdEncoding.EncodeToString([]byte("secret"))})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(r.CiphertextBlob)
	b, err := wrap.ParseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	aad := wrap.AAD(b.Header(), nil)
	n := len(b.Sealed) - hsm.GCMTagSize
	sealed := hsm.Sealed{IV: b.IV[:], Ciphertext: b.Sealed[:n], Tag: b.Sealed[n:]}
	for name, a := range map[string][]byte{"blob AAD": aad, "blob AAD without its first byte": aad[1:]} {
		if pt, err := s.OpenExternal(bg, id, b.VersionID, sealed, a); provider.ErrorCode(err) != provider.CodeInvalidCiphertext {
			t.Errorf("%s: %q %v: a CiphertextBlob opened through the external API", name, pt, err)
		}
	}
}
