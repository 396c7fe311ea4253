package importer_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/wrap"
)

func TestMain(m *testing.M) {
	if os.Getenv(importChildRequest) != "" {
		os.Exit(runImportChild())
	}
	softhsmtest.Main(m)
}

var bg = context.Background()

// newService returns a fresh SoftHSM2 token and the importer over it.
func newService(t testing.TB) (*softhsmtest.Token, *importer.Service) {
	t.Helper()
	tok := softhsmtest.New(t)
	return tok, importer.New(tok.Token)
}

// countingModule forwards every call to the real SoftHSM2 module and counts
// the ones the tests need to see (never a fake token).
type countingModule struct {
	hsm.Module
	derives   atomic.Int64
	unwraps   atomic.Int64
	decrypts  atomic.Int64
	attrReads atomic.Int64
}

func (m *countingModule) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	m.attrReads.Add(1)
	return m.Module.GetAttributeValue(sh, o, a)
}

func (m *countingModule) DeriveKey(sh pkcs11.SessionHandle, mech []*pkcs11.Mechanism, base pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	m.derives.Add(1)
	return m.Module.DeriveKey(sh, mech, base, a)
}

func (m *countingModule) UnwrapKey(sh pkcs11.SessionHandle, mech []*pkcs11.Mechanism, key pkcs11.ObjectHandle, wrapped []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	m.unwraps.Add(1)
	return m.Module.UnwrapKey(sh, mech, key, wrapped, a)
}

func (m *countingModule) Decrypt(sh pkcs11.SessionHandle, c []byte) ([]byte, error) {
	m.decrypts.Add(1)
	return m.Module.Decrypt(sh, c)
}

// newCountingService opens a fresh token through a countingModule.
func newCountingService(t testing.TB) (*hsm.Token, *importer.Service, *countingModule) {
	t.Helper()
	created := softhsmtest.Create(t)
	cm := &countingModule{}
	cfg := created.Config
	cfg.Wrap = func(m hsm.Module) hsm.Module { cm.Module = m; return cm }
	tok, err := hsm.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, importer.New(tok), cm
}

// createWrappingKey makes a wrapping key or fails the test.
func createWrappingKey(t testing.TB, svc *importer.Service, spec, label string) *importer.WrappingKeyResponse {
	t.Helper()
	resp, err := svc.CreateWrappingKey(bg, &importer.CreateWrappingKeyRequest{WrappingKeySpec: spec, KeyLabel: label})
	if err != nil {
		t.Fatalf("CreateWrappingKey(%s, %s): %v", spec, label, err)
	}
	return resp
}

// export plays the exporting side: it wraps key under the PublicKeyBlob
// with the algorithm, as GenerateAndExportDataKey does, and returns the
// base64 ExportedDataKey.
func export(t testing.TB, wk *importer.WrappingKeyResponse, alg string, key []byte) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(exportRaw(t, wk, alg, key))
}

func exportRaw(t testing.TB, wk *importer.WrappingKeyResponse, alg string, key []byte) []byte {
	t.Helper()
	spec, err := wrap.ParseKeySpec(wk.WrappingKeySpec)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := wrap.ParsePublicKeyBlob(wk.PublicKeyBlob, spec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wrap.LookupAlgorithm(alg)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := a.Encrypt(nil, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func randomKey(n int) []byte {
	k := make([]byte, n)
	rand.Read(k)
	return k
}

// wantError checks err is a *provider.Error with code (and param, if set).
func wantError(t testing.TB, err error, code, param string) *provider.Error {
	t.Helper()
	var pe *provider.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T): want a *provider.Error %s", err, err, code)
	}
	if pe.Code != code || (param != "" && pe.Param != param) {
		t.Fatalf("error %s (param %q): want %s (param %q)", pe, pe.Param, code, param)
	}
	return pe
}

func countObjects(t testing.TB, tok *hsm.Token) int {
	t.Helper()
	n, err := tok.CountObjects(bg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// assertImported checks the imported key labelled resp.KeyLabel: sensitive,
// never extractable, CKA_VALUE unreadable, CKA_ID as reported, KCV as the
// plaintext key's, and AES-GCM in the token interoperates with Go's.
func assertImported(t testing.TB, tok *hsm.Token, svc *importer.Service, resp *importer.ImportDataKeyResponse, key []byte) {
	t.Helper()
	h, err := tok.FindSecretKeyByLabel(bg, resp.KeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tok.BoolAttribute(bg, h, pkcs11.CKA_SENSITIVE); err != nil || !v {
		t.Fatalf("CKA_SENSITIVE = %v (%v), want true", v, err)
	}
	if v, err := tok.BoolAttribute(bg, h, pkcs11.CKA_EXTRACTABLE); err != nil || v {
		t.Fatalf("CKA_EXTRACTABLE = %v (%v), want false", v, err)
	}
	if v, err := tok.BoolAttribute(bg, h, pkcs11.CKA_TOKEN); err != nil || v == resp.Ephemeral {
		t.Fatalf("CKA_TOKEN = %v (%v) for Ephemeral=%v", v, err, resp.Ephemeral)
	}
	if _, err := tok.Attributes(bg, h, pkcs11.CKA_VALUE); !hsm.IsCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	a, err := tok.Attributes(bg, h, pkcs11.CKA_ID)
	if err != nil || hex.EncodeToString(a[pkcs11.CKA_ID]) != resp.KeyId {
		t.Fatalf("CKA_ID %x (%v), response KeyId %s", a[pkcs11.CKA_ID], err, resp.KeyId)
	}
	if resp.KeyType == importer.KeyTypeGenericSecret {
		return
	}
	want, err := wrap.KCV(key)
	if err != nil {
		t.Fatal(err)
	}
	if resp.KeyCheckValue != want {
		t.Fatalf("KeyCheckValue %s, want wrap.KCV %s", resp.KeyCheckValue, want)
	}
	if kcv, err := tok.KCV(bg, h); err != nil || hex.EncodeToString(kcv) != want {
		t.Fatalf("KCV in the token %x (%v), want %s", kcv, err, want)
	}
	// Encrypt in the token, decrypt in Go with the plaintext key.
	msg, aad := []byte("imported key works"), []byte("context")
	enc, err := svc.Encrypt(bg, &importer.EncryptRequest{KeyLabel: resp.KeyLabel,
		Plaintext: base64.StdEncoding.EncodeToString(msg), AAD: base64.StdEncoding.EncodeToString(aad)})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	got, err := goGCM(key).Open(nil, blob[:12], blob[12:], aad)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("Go cannot open the token's AES-GCM output: %v", err)
	}
	// And the reverse: sealed in Go, opened in the token.
	iv := randomKey(12)
	sealed := goGCM(key).Seal(append([]byte(nil), iv...), iv, msg, aad)
	dec, err := svc.Decrypt(bg, &importer.DecryptRequest{KeyLabel: resp.KeyLabel,
		CiphertextBlob: base64.StdEncoding.EncodeToString(sealed), AAD: base64.StdEncoding.EncodeToString(aad)})
	if err != nil || dec.Plaintext != base64.StdEncoding.EncodeToString(msg) {
		t.Fatalf("token cannot open Go's AES-GCM output: %v", err)
	}
}

func goGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}
