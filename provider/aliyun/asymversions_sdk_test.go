package aliyun_test

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// TestAsymmetricKeyVersions: versions of asymmetric keys as Alibaba's
// 2016-01-20 API allows them — CreateKeyVersion makes a new key pair,
// primary from then on, at most once every 7 days from LastRotationDate
// (Rejected.Conflict before); automatic rotation is refused (CreateKey
// InvalidParameter, UpdateRotationPolicy UnsupportedOperation), and a key
// with imported material takes no version. The old version keeps its own
// public key and still decrypts what was encrypted under it; a ciphertext
// of the new version does not decrypt under the old one.
func TestAsymmetricKeyVersions(t *testing.T) {
	b := newBYOKEnv(t)
	id, v1 := b.createKey("RSA_2048", "ENCRYPT/DECRYPT")
	newVersion := func() (string, error) {
		r, err := b.c.CreateKeyVersion(&kms.CreateKeyVersionRequest{KeyId: tea.String(id)})
		if err != nil {
			return "", err
		}
		return tea.StringValue(r.Body.KeyVersion.KeyVersionId), nil
	}
	_, err := newVersion()
	wantErr(t, err, "Rejected.Conflict")
	_, err = b.c.UpdateRotationPolicy(&kms.UpdateRotationPolicyRequest{KeyId: tea.String(id), EnableAutomaticRotation: tea.Bool(true),
		RotationInterval: tea.String("30d")})
	wantErr(t, err, "UnsupportedOperation")
	_, err = b.c.CreateKey(&kms.CreateKeyRequest{KeySpec: tea.String("EC_P256"), KeyUsage: tea.String("SIGN/VERIFY"),
		EnableAutomaticRotation: tea.Bool(true), RotationInterval: tea.String("30d")})
	wantErr(t, err, "InvalidParameter")
	_, err = b.c.CreateKeyVersion(&kms.CreateKeyVersionRequest{KeyId: tea.String(b.externalKey())})
	wantErr(t, err, "UnsupportedOperation")

	encrypt := func(ver string) string {
		r, err := b.c.AsymmetricEncrypt(&kms.AsymmetricEncryptRequest{KeyId: tea.String(id), KeyVersionId: tea.String(ver),
			Algorithm: tea.String("RSAES_OAEP_SHA_256"), Plaintext: tea.String(base64.StdEncoding.EncodeToString([]byte("v")))})
		mustOK(t, err)
		return tea.StringValue(r.Body.CiphertextBlob)
	}
	ct1 := encrypt(v1)
	b.clk.Set(7*24*time.Hour + time.Minute)
	v2, err := newVersion()
	mustOK(t, err)
	d, err := b.c.DescribeKey(&kms.DescribeKeyRequest{KeyId: tea.String(id)})
	mustOK(t, err)
	if p := tea.StringValue(d.Body.KeyMetadata.PrimaryKeyVersion); p != v2 || v2 == v1 {
		t.Fatalf("primary %s after CreateKeyVersion %s (first %s)", p, v2, v1)
	}
	l, err := b.c.ListKeyVersions(&kms.ListKeyVersionsRequest{KeyId: tea.String(id)})
	mustOK(t, err)
	if n := tea.Int32Value(l.Body.TotalCount); n != 2 {
		t.Fatalf("%d versions, want 2", n)
	}
	_, err = newVersion()
	wantErr(t, err, "Rejected.Conflict")
	if bytes.Equal(b.openssl("pkey", "-pubin", "-in", b.publicKeyFile(id, v1)), b.openssl("pkey", "-pubin", "-in", b.publicKeyFile(id, v2))) {
		t.Fatal("the two versions have the same public key")
	}
	if got, err := b.decrypt(id, v1, "RSAES_OAEP_SHA_256", b64(t, ct1)); err != nil || string(got) != "v" {
		t.Fatalf("the old version's ciphertext: %q %v", got, err)
	}
	ct2 := encrypt(v2)
	if got, err := b.decrypt(id, v2, "RSAES_OAEP_SHA_256", b64(t, ct2)); err != nil || string(got) != "v" {
		t.Fatalf("the new version's ciphertext: %q %v", got, err)
	}
	_, err = b.decrypt(id, v1, "RSAES_OAEP_SHA_256", b64(t, ct2))
	wantErr(t, err, "InvalidCiphertext")
}
