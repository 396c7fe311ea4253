package tencent_test

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"
)

// TestTencentKeyMaterialValidTo: ValidTo in the past is refused
// (InvalidParameterValue, nothing imported); material imported with a
// ValidTo two seconds ahead works, DescribeKey reports that ValidTo, and
// once it is reached (polled, bounded) the key is PendingImport and
// Encrypt is ResourceUnavailable.CmkStateNotSupport.
func TestTencentKeyMaterialValidTo(t *testing.T) {
	a := newAsymTencent(t)
	ck := kms.NewCreateKeyRequest()
	ck.Alias, ck.Type = common.StringPtr("expiring"), common.Uint64Ptr(2)
	id := *must[*kms.CreateKeyResponse](t, "CreateKey Type 2")(a.c.CreateKey(ck)).Response.KeyId
	describe := func() *kms.KeyMetadata {
		d := kms.NewDescribeKeyRequest()
		d.KeyId = &id
		return must[*kms.DescribeKeyResponse](t, "DescribeKey")(a.c.DescribeKey(d)).Response.KeyMetadata
	}
	g := kms.NewGetParametersForImportRequest()
	g.KeyId, g.WrappingAlgorithm, g.WrappingKeySpec = &id, common.StringPtr("RSAES_OAEP_SHA_256"), common.StringPtr("RSA_2048")
	p := must[*kms.GetParametersForImportResponse](t, "GetParametersForImport")(a.c.GetParametersForImport(g))
	der, _ := base64.StdEncoding.DecodeString(*p.Response.PublicKey)
	material := make([]byte, 32)
	rand.Read(material)
	ct := a.openssl("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", a.file("wrap.der", der), "-in", a.file("m", material),
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	im := kms.NewImportKeyMaterialRequest()
	im.KeyId, im.ImportToken, im.EncryptedKeyMaterial = &id, p.Response.ImportToken, common.StringPtr(base64.StdEncoding.EncodeToString(ct))
	im.ValidTo = common.Uint64Ptr(uint64(time.Now().Add(-time.Minute).Unix()))
	_, err := a.c.ImportKeyMaterial(im)
	wantSDKCode(t, "ValidTo in the past", err, "InvalidParameterValue")
	if st := *describe().KeyState; st != "PendingImport" {
		t.Fatalf("after a refused import the key is %s", st)
	}
	validTo := uint64(time.Now().Add(2 * time.Second).Unix())
	im.ValidTo = &validTo
	must[*kms.ImportKeyMaterialResponse](t, "ImportKeyMaterial")(a.c.ImportKeyMaterial(im))
	e := kms.NewEncryptRequest()
	e.KeyId, e.Plaintext = &id, common.StringPtr("aGk=")
	if md := describe(); *md.KeyState != "Enabled" || *md.ValidTo != validTo {
		t.Fatalf("imported: KeyState %s ValidTo %d, want Enabled %d", *md.KeyState, *md.ValidTo, validTo)
	}
	must[*kms.EncryptResponse](t, "Encrypt before ValidTo")(a.c.Encrypt(e))
	for i := 0; *describe().KeyState != "PendingImport"; i++ {
		if i == 300 { // 30 s: far past the 2 s
			t.Fatalf("the key is still %s 30 s after ValidTo", *describe().KeyState)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = a.c.Encrypt(e)
	wantSDKCode(t, "Encrypt after ValidTo", err, "ResourceUnavailable.CmkStateNotSupport")
}
