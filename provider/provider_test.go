package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

func TestMain(m *testing.M) { softhsmtest.Main(m) }

var bg = context.Background()

// clock is a settable time source for deletion windows and rotation.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newService(t testing.TB) (*provider.Service, *softhsmtest.Token, *clock) {
	tok := softhsmtest.New(t)
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	return provider.New(tok.Token, provider.Options{Now: c.Now}), tok, c
}

func createKey(t testing.TB, s *provider.Service) string {
	t.Helper()
	r, err := s.CreateKey(bg, &provider.CreateKeyRequest{Description: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return r.KeyMetadata.KeyId
}

// wantCode asserts err carries the wire code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := provider.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestKeyLifecycle(t *testing.T) {
	s, _, clk := newService(t)
	r, err := s.CreateKey(bg, &provider.CreateKeyRequest{Description: "payments"})
	if err != nil {
		t.Fatal(err)
	}
	md := r.KeyMetadata
	if md.KeyState != "Enabled" || md.KeySpec != "Aliyun_AES_256" || md.PrimaryKeyVersion == "" || md.Arn == "" || md.ProtectionLevel != "HSM" {
		t.Fatalf("metadata %+v", md)
	}
	id := md.KeyId
	for _, ref := range []string{id, md.Arn} {
		d, err := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: ref})
		if err != nil || d.KeyMetadata.KeyId != id {
			t.Fatalf("describe %s: %v", ref, err)
		}
	}
	gen := func() error {
		_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
		return err
	}
	if err := gen(); err != nil {
		t.Fatal(err)
	}
	blob, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: base64.StdEncoding.EncodeToString([]byte("hi"))})
	if err != nil {
		t.Fatal(err)
	}
	// Disabled: no encryption, no decryption.
	if _, err := s.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, gen(), provider.CodeDisabled)
	_, err = s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: blob.CiphertextBlob})
	wantCode(t, err, provider.CodeDisabled)
	if _, err := s.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id}); provider.ErrorCode(err) != provider.CodeDisabled {
		t.Fatalf("rotate disabled: %v", err)
	}
	if _, err := s.EnableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	if err := gen(); err != nil {
		t.Fatal(err)
	}
	// Deletion: window bounds, state, refusals, cancel.
	for _, days := range []int{0, 6, 367, -1} {
		_, err := s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: days})
		wantCode(t, err, provider.CodeInvalidParameter)
	}
	_, err = s.CancelKeyDeletion(bg, &provider.KeyIdRequest{KeyId: id})
	wantCode(t, err, provider.CodeNotPendingDeletion)
	if _, err := s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7}); err != nil {
		t.Fatal(err)
	}
	d, _ := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: id})
	if d.KeyMetadata.KeyState != "PendingDeletion" || d.KeyMetadata.DeleteDate != "2026-12-01T08:00:00Z" {
		t.Fatalf("after schedule: %+v", d.KeyMetadata)
	}
	wantCode(t, gen(), provider.CodePendingDeletion)
	_, err = s.EnableKey(bg, &provider.KeyIdRequest{KeyId: id})
	wantCode(t, err, provider.CodePendingDeletion)
	_, err = s.DisableKey(bg, &provider.KeyIdRequest{KeyId: id})
	wantCode(t, err, provider.CodePendingDeletion)
	_, err = s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7})
	wantCode(t, err, provider.CodePendingDeletion)
	_, err = s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: blob.CiphertextBlob})
	wantCode(t, err, provider.CodePendingDeletion)
	if _, err := s.CancelKeyDeletion(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	if err := gen(); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
	// A sweep before the window ends destroys nothing; after, everything.
	if _, err := s.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/doomed", KeyId: id}); provider.ErrorCode(err) != provider.CodePendingDeletion {
		t.Fatalf("alias to a pending key: %v", err)
	}
	clk.Add(6 * 24 * time.Hour)
	res, err := s.Sweep(bg)
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("early sweep: %+v %v", res, err)
	}
	clk.Add(24 * time.Hour)
	before, _ := s.Token().CountObjects(bg)
	res, err = s.Sweep(bg)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0] != id {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	after, _ := s.Token().CountObjects(bg)
	if before-after != 2 { // one version key, one metadata object
		t.Fatalf("sweep destroyed %d objects, want 2", before-after)
	}
	_, err = s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: id})
	wantCode(t, err, provider.CodeKeyNotFound)
	_, err = s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: blob.CiphertextBlob})
	wantCode(t, err, provider.CodeInvalidCiphertext)
}

func TestVersionsAndRotation(t *testing.T) {
	s, _, clk := newService(t)
	id := createKey(t, s)
	first, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if second.KeyVersionId != v2.KeyVersion.KeyVersionId || first.KeyVersionId == second.KeyVersionId {
		t.Fatalf("new data keys use %s, want the new primary %s", second.KeyVersionId, v2.KeyVersion.KeyVersionId)
	}
	// The old version still decrypts.
	d, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: first.CiphertextBlob})
	if err != nil || d.Plaintext != first.Plaintext || d.KeyVersionId != first.KeyVersionId {
		t.Fatalf("old version: %v", err)
	}
	list, err := s.ListKeyVersions(bg, &provider.ListKeyVersionsRequest{KeyId: id})
	if err != nil || list.TotalCount != 2 || len(list.KeyVersions.KeyVersion) != 2 {
		t.Fatalf("versions: %+v %v", list, err)
	}
	if _, err := s.DescribeKeyVersion(bg, &provider.DescribeKeyVersionRequest{KeyId: id, KeyVersionId: first.KeyVersionId}); err != nil {
		t.Fatal(err)
	}
	_, err = s.DescribeKeyVersion(bg, &provider.DescribeKeyVersionRequest{KeyId: id, KeyVersionId: "not-a-uuid"})
	wantCode(t, err, provider.CodeInvalidParameter)
	_, err = s.DescribeKeyVersion(bg, &provider.DescribeKeyVersionRequest{KeyId: id, KeyVersionId: "00000000-0000-4000-8000-000000000000"})
	wantCode(t, err, provider.CodeKeyNotFound)

	// Automatic rotation: lazily on use, and by the sweep.
	auto, err := s.CreateKey(bg, &provider.CreateKeyRequest{EnableAutomaticRotation: true, RotationInterval: "604800s"})
	if err != nil {
		t.Fatal(err)
	}
	if auto.KeyMetadata.AutomaticRotation != "Enabled" || auto.KeyMetadata.NextRotationDate != "2026-12-01T08:00:00Z" {
		t.Fatalf("rotation metadata %+v", auto.KeyMetadata)
	}
	aid := auto.KeyMetadata.KeyId
	clk.Add(7 * 24 * time.Hour)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: aid})
	if err != nil || g.KeyVersionId == auto.KeyMetadata.PrimaryKeyVersion {
		t.Fatalf("lazy rotation did not happen: %v", err)
	}
	clk.Add(7 * 24 * time.Hour)
	res, err := s.Sweep(bg)
	if err != nil || len(res.Rotated) != 1 || res.Rotated[0] != aid {
		t.Fatalf("sweep rotation: %+v %v", res, err)
	}
	vs, _ := s.ListKeyVersions(bg, &provider.ListKeyVersionsRequest{KeyId: aid})
	if vs.TotalCount != 3 {
		t.Fatalf("%d versions after two rotations", vs.TotalCount)
	}
	for _, iv := range []string{"6d", "366d", "abc", "100s"} {
		_, err := s.CreateKey(bg, &provider.CreateKeyRequest{EnableAutomaticRotation: true, RotationInterval: iv})
		wantCode(t, err, provider.CodeInvalidParameter)
	}
	if _, err := s.UpdateRotationPolicy(bg, &provider.UpdateRotationPolicyRequest{KeyId: aid, EnableAutomaticRotation: false}); err != nil {
		t.Fatal(err)
	}
	d2, _ := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: aid})
	if d2.KeyMetadata.AutomaticRotation != "Disabled" {
		t.Fatal("rotation not disabled")
	}
}

func TestAliases(t *testing.T) {
	s, _, _ := newService(t)
	a, b := createKey(t, s), createKey(t, s)
	if _, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/payments", KeyId: a}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/payments", KeyId: b})
	wantCode(t, err, provider.CodeAliasExists)
	for _, bad := range []string{"payments", "alias/", "alias/has space", "alias/acs-reserved", "alias/" + string(bytes.Repeat([]byte("x"), 250))} {
		_, err := s.CreateAlias(bg, &provider.AliasRequest{AliasName: bad, KeyId: a})
		wantCode(t, err, provider.CodeInvalidParameter)
	}
	_, err = s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/x", KeyId: "alias/payments"})
	wantCode(t, err, provider.CodeInvalidParameter)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "alias/payments"})
	if err != nil || g.KeyId != a {
		t.Fatalf("via alias: %v", err)
	}
	arn := "acs:kms:cn-hangzhou:1234567890123456:alias/payments"
	if d, err := s.DescribeKey(bg, &provider.KeyIdRequest{KeyId: arn}); err != nil || d.KeyMetadata.KeyId != a {
		t.Fatalf("alias ARN: %v", err)
	}
	if _, err := s.UpdateAlias(bg, &provider.AliasRequest{AliasName: "alias/payments", KeyId: b}); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "alias/payments"}); g.KeyId != b {
		t.Fatal("alias not repointed")
	}
	s.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/other", KeyId: b})
	all, err := s.ListAliases(bg, &provider.ListAliasesRequest{})
	if err != nil || all.TotalCount != 2 {
		t.Fatalf("list: %+v %v", all, err)
	}
	byKey, _ := s.ListAliasesByKeyId(bg, &provider.ListAliasesByKeyIdRequest{KeyId: b})
	if byKey.TotalCount != 2 {
		t.Fatalf("by key %+v", byKey)
	}
	byKey, _ = s.ListAliasesByKeyId(bg, &provider.ListAliasesByKeyIdRequest{KeyId: a})
	if byKey.TotalCount != 0 {
		t.Fatalf("by key a %+v", byKey)
	}
	if _, err := s.DeleteAlias(bg, &provider.DeleteAliasRequest{AliasName: "alias/payments"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeleteAlias(bg, &provider.DeleteAliasRequest{AliasName: "alias/payments"})
	wantCode(t, err, provider.CodeAliasNotFound)
	_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "alias/payments"})
	wantCode(t, err, provider.CodeAliasNotFound)
	_, err = s.UpdateAlias(bg, &provider.AliasRequest{AliasName: "alias/payments", KeyId: a})
	wantCode(t, err, provider.CodeAliasNotFound)
	p, err := s.ListAliases(bg, &provider.ListAliasesRequest{PageNumber: new(2), PageSize: new(1)})
	if err != nil || p.TotalCount != 1 || len(p.Aliases.Alias) != 0 {
		t.Fatalf("paging %+v %v", p, err)
	}
}

func TestDataKeyParametersAndErrors(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	for _, c := range []struct {
		req  provider.GenerateDataKeyRequest
		want int
	}{{provider.GenerateDataKeyRequest{}, 32}, {provider.GenerateDataKeyRequest{KeySpec: "AES_128"}, 16},
		{provider.GenerateDataKeyRequest{KeySpec: "AES_128", NumberOfBytes: new(1)}, 1}, {provider.GenerateDataKeyRequest{NumberOfBytes: new(1024)}, 1024}} {
		c.req.KeyId = id
		r, err := s.GenerateDataKey(bg, &c.req)
		if err != nil {
			t.Fatal(err)
		}
		pt, _ := base64.StdEncoding.DecodeString(r.Plaintext)
		if len(pt) != c.want {
			t.Fatalf("%+v: %d bytes", c.req, len(pt))
		}
		if (c.want == 16 || c.want == 32) != (r.KeyCheckValue != "") {
			t.Fatalf("KCV %q for %d bytes", r.KeyCheckValue, c.want)
		}
		if c.want == 32 {
			if k, _ := wrap.KCV(pt); k != r.KeyCheckValue {
				t.Fatal("KCV mismatch")
			}
		}
	}
	for name, req := range map[string]provider.GenerateDataKeyRequest{
		"NumberOfBytes 0-": {KeyId: id, NumberOfBytes: new(-1)}, "NumberOfBytes 1025": {KeyId: id, NumberOfBytes: new(1025)},
		"KeySpec": {KeyId: id, KeySpec: "AES_512"}, "KeyId empty": {}, "KeyId junk": {KeyId: "has space"},
		"ARN junk": {KeyId: "acs:kms:x"}, "ARN other": {KeyId: "acs:kms:r:a:secret/x"},
	} {
		_, err := s.GenerateDataKey(bg, &req)
		if provider.ErrorCode(err) != provider.CodeInvalidParameter {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "00000000-0000-4000-8000-000000000000"})
	wantCode(t, err, provider.CodeKeyNotFound)
	// DryRun validates and touches nothing.
	before, _ := s.Token().CountObjects(bg)
	_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id, DryRun: true})
	wantCode(t, err, provider.CodeDryRun)
	_, err = s.GenerateDataKeyWithoutPlaintext(bg, &provider.GenerateDataKeyWithoutPlaintextRequest{KeyId: id, DryRun: true})
	wantCode(t, err, provider.CodeDryRun)
	if after, _ := s.Token().CountObjects(bg); after != before {
		t.Fatal("DryRun wrote to the token")
	}
	// Encrypt limits.
	for _, pt := range []string{"", "!!!", base64.StdEncoding.EncodeToString(make([]byte, 6145))} {
		_, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: pt})
		wantCode(t, err, provider.CodeInvalidParameter)
	}
	big := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 6144))
	e, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: big})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: e.CiphertextBlob})
	if err != nil || d.Plaintext != big {
		t.Fatal("6 KiB round trip")
	}
	// A token fault is InternalFailure.
	s2, tok2, _ := newService(t)
	id2 := createKey(t, s2)
	tok2.Token.Close()
	_, err = s2.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id2})
	wantCode(t, err, provider.CodeInternalFailure)
}

func TestCiphertextFailures(t *testing.T) {
	s, _, _ := newService(t)
	a, b := createKey(t, s), createKey(t, s)
	ctx := wrap.EncryptionContext{"order": "42", "tenant": "acme"}
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: a, EncryptionContext: ctx})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob, EncryptionContext: wrap.EncryptionContext{"tenant": "acme", "order": "42"}})
	if err != nil || d.Plaintext != g.Plaintext || d.KeyCheckValue != g.KeyCheckValue {
		t.Fatalf("decrypt: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(g.CiphertextBlob)
	gb, _ := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: b, EncryptionContext: ctx})
	rawB, _ := base64.StdEncoding.DecodeString(gb.CiphertextBlob)
	mut := func(f func([]byte) []byte) string {
		return base64.StdEncoding.EncodeToString(f(bytes.Clone(raw)))
	}
	cases := map[string]provider.DecryptRequest{
		"context missing":  {CiphertextBlob: g.CiphertextBlob},
		"context differs":  {CiphertextBlob: g.CiphertextBlob, EncryptionContext: wrap.EncryptionContext{"order": "43", "tenant": "acme"}},
		"context extra":    {CiphertextBlob: g.CiphertextBlob, EncryptionContext: wrap.EncryptionContext{"order": "42", "tenant": "acme", "x": ""}},
		"tag":              {CiphertextBlob: mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), EncryptionContext: ctx},
		"iv":               {CiphertextBlob: mut(func(b []byte) []byte { b[20] ^= 1; return b }), EncryptionContext: ctx},
		"version byte":     {CiphertextBlob: mut(func(b []byte) []byte { b[0] = 2; return b }), EncryptionContext: ctx},
		"truncated":        {CiphertextBlob: mut(func(b []byte) []byte { return b[:30] }), EncryptionContext: ctx},
		"other key's ver":  {CiphertextBlob: mut(func(b []byte) []byte { copy(b[1:17], rawB[1:17]); return b }), EncryptionContext: ctx},
		"unknown version":  {CiphertextBlob: mut(func(b []byte) []byte { b[5] ^= 0xff; return b }), EncryptionContext: ctx},
		"not base64":       {CiphertextBlob: "%%%", EncryptionContext: ctx},
		"swapped IV/blobs": {CiphertextBlob: mut(func(b []byte) []byte { copy(b[17:29], rawB[17:29]); return b }), EncryptionContext: ctx},
	}
	for name, req := range cases {
		_, err := s.Decrypt(bg, &req)
		if provider.ErrorCode(err) != provider.CodeInvalidCiphertext {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err = s.Decrypt(bg, &provider.DecryptRequest{})
	wantCode(t, err, provider.CodeInvalidParameter)
}

func TestReEncryptAndExport(t *testing.T) {
	s, _, _ := newService(t)
	a, b := createKey(t, s), createKey(t, s)
	g, _ := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: a, EncryptionContext: wrap.EncryptionContext{"x": "1"}})
	r, err := s.ReEncrypt(bg, &provider.ReEncryptRequest{CiphertextBlob: g.CiphertextBlob, SourceEncryptionContext: wrap.EncryptionContext{"x": "1"},
		DestinationKeyId: b, DestinationEncryptionContext: wrap.EncryptionContext{"y": "2"}})
	if err != nil || r.KeyId != b || r.SourceKeyId != a {
		t.Fatalf("reencrypt: %+v %v", r, err)
	}
	d, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob, EncryptionContext: wrap.EncryptionContext{"y": "2"}})
	if err != nil || d.Plaintext != g.Plaintext || d.KeyId != b {
		t.Fatalf("decrypt re-encrypted: %v", err)
	}
	_, err = s.ReEncrypt(bg, &provider.ReEncryptRequest{CiphertextBlob: g.CiphertextBlob, DestinationKeyId: b})
	wantCode(t, err, provider.CodeInvalidCiphertext)
	_, err = s.ReEncrypt(bg, &provider.ReEncryptRequest{CiphertextBlob: g.CiphertextBlob})
	wantCode(t, err, provider.CodeInvalidParameter)

	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := wrap.MarshalPublicKeyDER(&priv.PublicKey)
	blob := base64.StdEncoding.EncodeToString(der)
	pt, _ := base64.StdEncoding.DecodeString(g.Plaintext)
	alg, _ := wrap.LookupAlgorithm("RSAES_OAEP_SHA_256")
	check := func(exported string) {
		t.Helper()
		ct, _ := base64.StdEncoding.DecodeString(exported)
		got, err := alg.Decrypt(priv, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("exported key differs: %v", err)
		}
	}
	ex, err := s.ExportDataKey(bg, &provider.ExportDataKeyRequest{CiphertextBlob: g.CiphertextBlob, EncryptionContext: wrap.EncryptionContext{"x": "1"},
		PublicKeyBlob: blob, WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	check(ex.ExportedDataKey)
	for name, req := range map[string]provider.ExportDataKeyRequest{
		"spec mismatch": {CiphertextBlob: g.CiphertextBlob, PublicKeyBlob: blob, WrappingKeySpec: "RSA_3072", WrappingAlgorithm: "RSAES_OAEP_SHA_256"},
		"alg for SM2":   {CiphertextBlob: g.CiphertextBlob, PublicKeyBlob: blob, WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "SM2PKE"},
		"tencent alg":   {CiphertextBlob: g.CiphertextBlob, PublicKeyBlob: blob, WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_PKCS1_V1_5"},
		"unknown spec":  {CiphertextBlob: g.CiphertextBlob, PublicKeyBlob: blob, WrappingKeySpec: "RSA_1024", WrappingAlgorithm: "RSAES_OAEP_SHA_256"},
		"bad blob":      {CiphertextBlob: g.CiphertextBlob, PublicKeyBlob: "AAAA", WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"},
	} {
		_, err := s.ExportDataKey(bg, &req)
		if provider.ErrorCode(err) != provider.CodeInvalidParameter {
			t.Errorf("%s: %v", name, err)
		}
	}
	// 1024-byte data keys do not fit RSA-2048 OAEP: refused before any token call.
	_, err = s.GenerateAndExportDataKey(bg, &provider.GenerateAndExportDataKeyRequest{KeyId: a, NumberOfBytes: new(191),
		PublicKeyBlob: blob, WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"})
	wantCode(t, err, provider.CodeInvalidParameter)
}

// The end-to-end export: the software private key recovers what Decrypt returns.
func TestGenerateAndExportDataKeyEndToEnd(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	sm2Key, _ := sm2.GenerateKey(rand.Reader)
	cases := []struct {
		spec, alg string
		priv      any
		pub       any
	}{
		{"RSA_2048", "RSAES_OAEP_SHA_256", rsa2048, &rsa2048.PublicKey},
		{"RSA_2048", "RSAES_OAEP_SHA_1", rsa2048, &rsa2048.PublicKey},
		{"RSA_3072", "RSAES_OAEP_SHA_1", rsa3072, &rsa3072.PublicKey},
		{"RSA_3072", "RSAES_OAEP_SHA_256", rsa3072, &rsa3072.PublicKey},
		{"EC_SM2", "SM2PKE", sm2Key, &sm2Key.PublicKey},
	}
	for _, c := range cases {
		t.Run(c.spec+"/"+c.alg, func(t *testing.T) {
			der, err := wrap.MarshalPublicKeyDER(c.pub)
			if err != nil {
				t.Fatal(err)
			}
			ec := wrap.EncryptionContext{"purpose": "e2e"}
			r, err := s.GenerateAndExportDataKey(bg, &provider.GenerateAndExportDataKeyRequest{KeyId: id, EncryptionContext: ec,
				PublicKeyBlob: base64.StdEncoding.EncodeToString(der), WrappingKeySpec: c.spec, WrappingAlgorithm: c.alg})
			if err != nil {
				t.Fatal(err)
			}
			alg, _ := wrap.LookupAlgorithm(c.alg)
			ct, _ := base64.StdEncoding.DecodeString(r.ExportedDataKey)
			exported, err := alg.Decrypt(c.priv, ct)
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob, EncryptionContext: ec})
			if err != nil {
				t.Fatal(err)
			}
			pt, _ := base64.StdEncoding.DecodeString(d.Plaintext)
			if !bytes.Equal(pt, exported) || len(pt) != 32 {
				t.Fatal("exported key != Decrypt(CiphertextBlob)")
			}
			if k, _ := wrap.KCV(pt); k != r.KeyCheckValue || d.KeyCheckValue != k {
				t.Fatal("KCVs disagree")
			}
		})
	}
}

// Two services on one token (separate pools) see each other's changes.
func TestTwoInstancesShareState(t *testing.T) {
	s1, tok, _ := newService(t)
	other, err := hsm.Open(bg, tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s2 := provider.New(other, provider.Options{})
	id := createKey(t, s1)
	g, err := s2.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/shared", KeyId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.DescribeKey(bg, &provider.KeyIdRequest{KeyId: "alias/shared"}); err != nil {
		t.Fatal(err)
	}
	// Another instance's change is seen within the cache TTL (1 s).
	within := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(provider.DefaultCacheTTL + 500*time.Millisecond)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not seen within %s", what, provider.DefaultCacheTTL)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	v, _ := s2.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id})
	within("instance 2's rotation", func() bool {
		g1, _ := s1.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
		return g1 != nil && g1.KeyVersionId == v.KeyVersion.KeyVersionId
	})
	if _, err := s1.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	// At once in the instance that disabled it, within the TTL in the other.
	_, err = s1.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob})
	wantCode(t, err, provider.CodeDisabled)
	within("instance 1's DisableKey", func() bool {
		_, err := s2.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob})
		return provider.ErrorCode(err) == provider.CodeDisabled
	})
}

// A state change is checked against the key's state as the token has it
// now, not as another instance cached it: one instance schedules a key's
// deletion and the other, whose cache still says Enabled, cancels it at
// once — which must succeed — and then enables and disables it.
func TestStateChangesCheckTheTokenNotTheCache(t *testing.T) {
	s1, tok, _ := newService(t)
	other, err := hsm.Open(bg, tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s2 := provider.New(other, provider.Options{CacheTTL: time.Hour}) // stale for the whole test
	id := createKey(t, s1)
	if _, err := s2.DescribeKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil { // cached: Enabled
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s1.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7}); err != nil {
			t.Fatalf("round %d: ScheduleKeyDeletion: %v", i, err)
		}
		if _, err := s2.CancelKeyDeletion(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatalf("round %d: CancelKeyDeletion through the instance that cached Enabled: %v", i, err)
		}
		if _, err := s1.DisableKey(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatalf("round %d: DisableKey: %v", i, err)
		}
		if _, err := s2.ScheduleKeyDeletion(bg, &provider.ScheduleKeyDeletionRequest{KeyId: id, PendingWindowInDays: 7}); err != nil {
			t.Fatalf("round %d: ScheduleKeyDeletion through the other instance: %v", i, err)
		}
		_, err := s1.EnableKey(bg, &provider.KeyIdRequest{KeyId: id})
		wantCode(t, err, provider.CodePendingDeletion)
		if _, err := s1.CancelKeyDeletion(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatalf("round %d: CancelKeyDeletion: %v", i, err)
		}
		// s2 last saw the key pending deletion; s1 made it Enabled again.
		if _, err := s2.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
			t.Fatalf("round %d: CreateKeyVersion through the instance that last saw PendingDeletion: %v", i, err)
		}
	}
}

// Concurrent rotations and alias updates from two instances lose nothing.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	s1, tok, _ := newService(t)
	other, err := hsm.Open(bg, tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s2 := provider.New(other, provider.Options{})
	id := createKey(t, s1)
	keys := []string{createKey(t, s1), createKey(t, s1)}
	s1.CreateAlias(bg, &provider.AliasRequest{AliasName: "alias/hot", KeyId: keys[0]})
	const perWorker = 4
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w, s := range []*provider.Service{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if _, err := s.CreateKeyVersion(bg, &provider.KeyIdRequest{KeyId: id}); err != nil {
					errs <- err
				}
				if _, err := s.UpdateAlias(bg, &provider.AliasRequest{AliasName: "alias/hot", KeyId: keys[(w+i)%2]}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := provider.New(other, provider.Options{CacheTTL: -1})
	vs, _ := fresh.ListKeyVersions(bg, &provider.ListKeyVersionsRequest{KeyId: id, PageSize: new(100)})
	if vs.TotalCount != 1+4*perWorker {
		t.Fatalf("%d versions, want %d: a rotation was lost", vs.TotalCount, 1+4*perWorker)
	}
	// Every version's key object exists and encrypts.
	hs, _ := s1.Token().FindObjects(bg, nil)
	if len(hs) < 1+4*perWorker {
		t.Fatalf("only %d objects", len(hs))
	}
	all, _ := fresh.ListAliases(bg, &provider.ListAliasesRequest{})
	if all.TotalCount != 1 {
		t.Fatalf("%d aliases after concurrent updates", all.TotalCount)
	}
}

func TestListKeysPaging(t *testing.T) {
	s, _, _ := newService(t)
	for i := 0; i < 5; i++ {
		createKey(t, s)
	}
	p, err := s.ListKeys(bg, &provider.ListKeysRequest{PageNumber: new(2), PageSize: new(2)})
	if err != nil || p.TotalCount != 5 || len(p.Keys.Key) != 2 || p.PageNumber != 2 {
		t.Fatalf("%+v %v", p, err)
	}
	p, _ = s.ListKeys(bg, &provider.ListKeysRequest{PageNumber: new(3), PageSize: new(2)})
	if len(p.Keys.Key) != 1 {
		t.Fatalf("last page %+v", p)
	}
	for _, r := range []provider.ListKeysRequest{{PageNumber: new(-1)}, {PageSize: new(101)}, {PageSize: new(-5)}} {
		_, err := s.ListKeys(bg, &r)
		wantCode(t, err, provider.CodeInvalidParameter)
	}
	_ = fmt.Sprint
}

// A crash between creating a version object and writing its metadata leaves
// an orphan; Sweep destroys it after the grace period and says so.
func TestSweepRepairsOrphans(t *testing.T) {
	s, tok, clk := newService(t)
	id := createKey(t, s)
	orphan := "00000000-0000-4000-8000-00000000abcd"
	oid := [16]byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xab, 0xcd}
	if _, err := tok.GenerateAESKey(bg, 256, hsm.SecretKeyOptions{ID: oid[:], Label: "p11kms/" + id + "/" + orphan,
		Usage: hsm.UsageEncrypt | hsm.UsageDecrypt}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Sweep(bg)
	if err != nil || len(res.Repaired) != 0 {
		t.Fatalf("first sweep must only note the orphan: %+v %v", res, err)
	}
	clk.Add(provider.DefaultOrphanGrace)
	res, err = s.Sweep(bg)
	if err != nil || len(res.Repaired) != 1 || !strings.Contains(res.Repaired[0], orphan) {
		t.Fatalf("second sweep: %+v %v", res, err)
	}
	if _, err := tok.FindSecretKeyByID(bg, oid[:]); !errors.Is(err, hsm.ErrNotFound) {
		t.Fatalf("orphan still there: %v", err)
	}
	// The key's own version is untouched and still works.
	if _, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id}); err != nil {
		t.Fatal(err)
	}
}

// codeIs returns nil if err carries code, and an error saying what came
// instead otherwise.
func codeIs(err error, code string) error {
	if got := provider.ErrorCode(err); got != code {
		return fmt.Errorf("got %q (%v), want %s", got, err, code)
	}
	return nil
}

// Every plaintext the operations hold (data keys, decrypted blobs, Encrypt
// input) is in a buffer of the service's pool, and every operation — done,
// dry-run or failed — hands its buffers back cleared: none is left out, and
// every buffer the pool keeps is all zero.
func TestPlaintextBuffersZeroed(t *testing.T) {
	s, _, _ := newService(t)
	id := createKey(t, s)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := wrap.MarshalPublicKeyDER(&rk.PublicKey)
	pub := base64.StdEncoding.EncodeToString(der)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id, NumberOfBytes: new(provider.MaxDataKeyBytes)})
	if err != nil {
		t.Fatal(err)
	}
	ec := wrap.EncryptionContext{"a": "b"}
	withEC, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, provider.MaxPlaintextBytes)), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	export := func(blob string, dry bool) func() error {
		return func() error {
			_, err := s.ExportDataKey(bg, &provider.ExportDataKeyRequest{CiphertextBlob: blob, PublicKeyBlob: pub,
				WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256", DryRun: dry})
			return err
		}
	}
	cases := []struct {
		name  string
		holds bool // the operation must have taken a buffer
		run   func() error
	}{
		{"GenerateDataKey", true, func() error {
			_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
			return err
		}},
		{"GenerateDataKeyWithoutPlaintext", true, func() error {
			_, err := s.GenerateDataKeyWithoutPlaintext(bg, &provider.GenerateDataKeyWithoutPlaintextRequest{KeyId: id, NumberOfBytes: new(7)})
			return err
		}},
		{"GenerateAndExportDataKey", true, func() error {
			_, err := s.GenerateAndExportDataKey(bg, &provider.GenerateAndExportDataKeyRequest{KeyId: id, PublicKeyBlob: pub,
				WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"})
			return err
		}},
		{"Decrypt", true, func() error {
			_, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: withEC.CiphertextBlob, EncryptionContext: ec})
			return err
		}},
		{"Decrypt DryRun", true, func() error {
			_, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob, DryRun: true})
			return codeIs(err, provider.CodeDryRun)
		}},
		{"Encrypt", true, func() error {
			_, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: base64.StdEncoding.EncodeToString([]byte("secret data"))})
			return err
		}},
		{"Encrypt bad base64", true, func() error {
			_, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: id, Plaintext: "c2VjcmV0!!!!"})
			return codeIs(err, provider.CodeInvalidParameter)
		}},
		{"Encrypt unknown key", true, func() error {
			_, err := s.Encrypt(bg, &provider.EncryptRequest{KeyId: "no-such-key", Plaintext: "c2VjcmV0"})
			return codeIs(err, provider.CodeKeyNotFound)
		}},
		{"ReEncrypt", true, func() error {
			_, err := s.ReEncrypt(bg, &provider.ReEncryptRequest{CiphertextBlob: g.CiphertextBlob, DestinationKeyId: id})
			return err
		}},
		{"ExportDataKey", true, export(g.CiphertextBlob, false)},
		{"ExportDataKey DryRun", true, func() error { return codeIs(export(g.CiphertextBlob, true)(), provider.CodeDryRun) }},
		{"ExportDataKey too long for the public key", true, func() error {
			return codeIs(export(long.CiphertextBlob, false)(), provider.CodeInvalidParameter)
		}},
		{"Decrypt wrong context", false, func() error {
			_, err := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: withEC.CiphertextBlob})
			return codeIs(err, provider.CodeInvalidCiphertext)
		}},
	}
	for _, c := range cases {
		_, before, _ := s.PlaintextPoolState()
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out, gets, free := s.PlaintextPoolState()
		if out != 0 {
			t.Errorf("%s: %d plaintext buffers not handed back", c.name, out)
		}
		if c.holds && gets == before {
			t.Errorf("%s: held its plaintext outside the pool", c.name)
		}
		if len(free) == 0 {
			t.Errorf("%s: the pool keeps no buffer", c.name)
		}
		for i, b := range free {
			if !bytes.Equal(b, make([]byte, len(b))) {
				t.Fatalf("%s: pooled buffer %d (%d bytes) not cleared", c.name, i, len(b))
			}
		}
	}
}
