package aliyun_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// wantParamErr: an InvalidParameter whose message names param (as Alibaba
// names it) and not the core's field name.
func wantParamErr(t *testing.T, what string, err error, param, coreName string) {
	t.Helper()
	var te *tea.SDKError
	if !errors.As(err, &te) || tea.StringValue(te.Code) != "InvalidParameter" {
		t.Fatalf("%s: %v, want InvalidParameter", what, err)
	}
	msg := tea.StringValue(te.Message)
	if !strings.Contains(msg, param) || strings.Contains(msg, coreName+":") {
		t.Fatalf("%s: message %q: want it to name %s, not the core's %s", what, msg, param, coreName)
	}
}

// TestAlibabaNamesOfNeutralFields: the core's asymmetric and import
// requests have neutral field names (Ciphertext, Signature, ValidTo); the
// Alibaba dialect takes its own parameters for them (CiphertextBlob,
// Value, KeyMaterialExpireUnix) and its errors name Alibaba's parameters.
func TestAlibabaNamesOfNeutralFields(t *testing.T) {
	b := newBYOKEnv(t)
	encID, encVer := b.createKey("RSA_2048", "ENCRYPT/DECRYPT")
	signID, signVer := b.createKey("EC_P256", "SIGN/VERIFY")
	_, err := b.c.AsymmetricDecrypt(&kms.AsymmetricDecryptRequest{KeyId: tea.String(encID), KeyVersionId: tea.String(encVer),
		Algorithm: tea.String("RSAES_OAEP_SHA_256"), CiphertextBlob: tea.String("%%%")})
	wantParamErr(t, "AsymmetricDecrypt CiphertextBlob", err, "CiphertextBlob", "Ciphertext")
	_, err = b.c.AsymmetricVerify(&kms.AsymmetricVerifyRequest{KeyId: tea.String(signID), KeyVersionId: tea.String(signVer),
		Algorithm: tea.String("ECDSA_SHA_256"), Digest: tea.String(strings.Repeat("A", 43) + "="), Value: tea.String("%%%")})
	wantParamErr(t, "AsymmetricVerify Value", err, "Value", "Signature")
	id := b.externalKey()
	pub, token := b.params(id, "RSA_2048", "RSAES_OAEP_SHA_256")
	ct := b.wrapMaterial(pub, "RSAES_OAEP_SHA_256", make([]byte, 32))
	err = b.importMaterial(id, token, ct, time.Now().Add(-time.Hour).Unix())
	wantParamErr(t, "ImportKeyMaterial KeyMaterialExpireUnix", err, "KeyMaterialExpireUnix", "ValidTo")
	if b.state(id) != "PendingImport" {
		t.Fatal("a refused import changed the key")
	}
}
