package server_test

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tckms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/audit"
	"github.com/p11kms/p11kms/provider/server"
	"github.com/p11kms/p11kms/provider/wire"
)

// ok fails the test on an SDK error.
func ok[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// wrapFor encrypts 32 random bytes of key material under a base64 DER
// RSA wrapping key with RSAES_OAEP_SHA_256 (the importer's side of BYOK).
func wrapFor(t *testing.T, pubB64 string) string {
	t.Helper()
	der, _ := base64.StdEncoding.DecodeString(pubB64)
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	m := make([]byte, 32)
	rand.Read(m)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

// TestAsymmetricAndBYOKAuditKeyIds: the audit line of every asymmetric and
// key-import action, on both dialects, names the key id used (not the
// alias the Alibaba request named) and, for an operation on a version,
// that version.
func TestAsymmetricAndBYOKAuditKeyIds(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(auditPath, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	keys := wire.NewAccessKeys(wire.AccessKey{AccessKeyId: aliID, AccessKeySecret: aliSecret, Policy: all()},
		wire.AccessKey{AccessKeyId: tcID, AccessKeySecret: tcSecret, Policy: all()})
	srv := httptest.NewServer(server.New(server.Config{KMS: kms, Keys: keys, Audit: log}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ali, tc := aliClient(t, addr), tcClient(t, addr)
	want := map[string][2]string{} // "api Action" → key id, version ("" : none)

	mk := func(alias, spec, usage, origin string) (string, string) {
		r := ok[*alikms.CreateKeyResponse](t, "CreateKey")(ali.CreateKey(&alikms.CreateKeyRequest{KeySpec: tea.String(spec),
			KeyUsage: tea.String(usage), Origin: tea.String(origin)}))
		id := tea.StringValue(r.Body.KeyMetadata.KeyId)
		ok[*alikms.CreateAliasResponse](t, "CreateAlias")(ali.CreateAlias(&alikms.CreateAliasRequest{KeyId: &id, AliasName: tea.String(alias)}))
		return id, tea.StringValue(r.Body.KeyMetadata.PrimaryKeyVersion)
	}
	encID, encVer := mk("alias/audit-enc", "RSA_2048", "ENCRYPT/DECRYPT", "")
	signID, signVer := mk("alias/audit-sign", "EC_P256", "SIGN/VERIFY", "")
	extID, _ := mk("alias/audit-ext", "Aliyun_AES_256", "ENCRYPT/DECRYPT", "EXTERNAL")
	enc, sign, ext := tea.String("alias/audit-enc"), tea.String("alias/audit-sign"), tea.String("alias/audit-ext")

	ok[*alikms.GetPublicKeyResponse](t, "GetPublicKey")(ali.GetPublicKey(&alikms.GetPublicKeyRequest{KeyId: enc, KeyVersionId: &encVer}))
	ct := ok[*alikms.AsymmetricEncryptResponse](t, "AsymmetricEncrypt")(ali.AsymmetricEncrypt(&alikms.AsymmetricEncryptRequest{KeyId: enc,
		KeyVersionId: &encVer, Algorithm: tea.String("RSAES_OAEP_SHA_256"), Plaintext: tea.String("aGk=")})).Body.CiphertextBlob
	ok[*alikms.AsymmetricDecryptResponse](t, "AsymmetricDecrypt")(ali.AsymmetricDecrypt(&alikms.AsymmetricDecryptRequest{KeyId: enc,
		KeyVersionId: &encVer, Algorithm: tea.String("RSAES_OAEP_SHA_256"), CiphertextBlob: ct}))
	digest := base64.StdEncoding.EncodeToString(make([]byte, 32))
	sig := ok[*alikms.AsymmetricSignResponse](t, "AsymmetricSign")(ali.AsymmetricSign(&alikms.AsymmetricSignRequest{KeyId: sign,
		KeyVersionId: &signVer, Algorithm: tea.String("ECDSA_SHA_256"), Digest: &digest})).Body.Value
	ok[*alikms.AsymmetricVerifyResponse](t, "AsymmetricVerify")(ali.AsymmetricVerify(&alikms.AsymmetricVerifyRequest{KeyId: sign,
		KeyVersionId: &signVer, Algorithm: tea.String("ECDSA_SHA_256"), Digest: &digest, Value: sig}))
	p := ok[*alikms.GetParametersForImportResponse](t, "GetParametersForImport")(ali.GetParametersForImport(&alikms.GetParametersForImportRequest{
		KeyId: ext, WrappingKeySpec: tea.String("RSA_2048"), WrappingAlgorithm: tea.String("RSAES_OAEP_SHA_256")}))
	ok[*alikms.ImportKeyMaterialResponse](t, "ImportKeyMaterial")(ali.ImportKeyMaterial(&alikms.ImportKeyMaterialRequest{KeyId: ext,
		ImportToken: p.Body.ImportToken, EncryptedKeyMaterial: tea.String(wrapFor(t, tea.StringValue(p.Body.PublicKey)))}))
	ok[*alikms.DeleteKeyMaterialResponse](t, "DeleteKeyMaterial")(ali.DeleteKeyMaterial(&alikms.DeleteKeyMaterialRequest{KeyId: ext}))
	for action, k := range map[string][2]string{"GetPublicKey": {encID, encVer}, "AsymmetricEncrypt": {encID, encVer},
		"AsymmetricDecrypt": {encID, encVer}, "AsymmetricSign": {signID, signVer}, "AsymmetricVerify": {signID, signVer},
		"GetParametersForImport": {extID, ""}, "ImportKeyMaterial": {extID, ""}, "DeleteKeyMaterial": {extID, ""}} {
		want["aliyun "+action] = k
	}

	// Tencent names keys by id; its version-less actions use the primary version.
	g := tckms.NewGetPublicKeyRequest()
	g.KeyId = &encID
	pem := ok[*tckms.GetPublicKeyResponse](t, "Tencent GetPublicKey")(tc.GetPublicKey(g)).Response.PublicKey
	d := tckms.NewAsymmetricRsaDecryptRequest()
	d.KeyId, d.Algorithm, d.Ciphertext = &encID, common.StringPtr("RSAES_OAEP_SHA_256"), common.StringPtr(wrapFor(t, *pem))
	ok[*tckms.AsymmetricRsaDecryptResponse](t, "AsymmetricRsaDecrypt")(tc.AsymmetricRsaDecrypt(d))
	s := tckms.NewSignByAsymmetricKeyRequest()
	s.KeyId, s.Algorithm, s.Message = &signID, common.StringPtr("ECC"), common.StringPtr("aGk=")
	tsig := ok[*tckms.SignByAsymmetricKeyResponse](t, "SignByAsymmetricKey")(tc.SignByAsymmetricKey(s)).Response.Signature
	v := tckms.NewVerifyByAsymmetricKeyRequest()
	v.KeyId, v.Algorithm, v.Message, v.SignatureValue = &signID, s.Algorithm, s.Message, tsig
	ok[*tckms.VerifyByAsymmetricKeyResponse](t, "VerifyByAsymmetricKey")(tc.VerifyByAsymmetricKey(v))
	gp := tckms.NewGetParametersForImportRequest()
	gp.KeyId, gp.WrappingAlgorithm, gp.WrappingKeySpec = &extID, common.StringPtr("RSAES_OAEP_SHA_256"), common.StringPtr("RSA_2048")
	tp := ok[*tckms.GetParametersForImportResponse](t, "Tencent GetParametersForImport")(tc.GetParametersForImport(gp)).Response
	im := tckms.NewImportKeyMaterialRequest()
	im.KeyId, im.ImportToken, im.EncryptedKeyMaterial = &extID, tp.ImportToken, common.StringPtr(wrapFor(t, *tp.PublicKey))
	// The same material as before is required: this one differs, so the
	// import is refused — and still audited with the key.
	if _, err := tc.ImportKeyMaterial(im); err == nil {
		t.Fatal("Tencent ImportKeyMaterial of other material was accepted")
	}
	del := tckms.NewDeleteImportedKeyMaterialRequest()
	del.KeyId = &extID
	if _, err := tc.DeleteImportedKeyMaterial(del); err != nil {
		t.Fatalf("DeleteImportedKeyMaterial: %v", err)
	}
	for action, k := range map[string][2]string{"GetPublicKey": {encID, encVer}, "AsymmetricRsaDecrypt": {encID, encVer},
		"SignByAsymmetricKey": {signID, signVer}, "VerifyByAsymmetricKey": {signID, signVer},
		"GetParametersForImport": {extID, ""}, "ImportKeyMaterial": {extID, ""}, "DeleteImportedKeyMaterial": {extID, ""}} {
		want["tencent "+action] = k
	}

	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string]audit.Line{}
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l audit.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		got[l.API+" "+l.Action] = l // the last line of each action
	}
	for action, k := range want {
		l, seen := got[action]
		if !seen || l.KeyId != k[0] || l.KeyVersionId != k[1] {
			t.Errorf("%s: audit line keyId %q keyVersionId %q (seen %v), want %q %q", action, l.KeyId, l.KeyVersionId, seen, k[0], k[1])
		}
	}
}
