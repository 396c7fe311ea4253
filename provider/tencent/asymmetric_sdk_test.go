package tencent_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	kms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/kms/v20190118"

	"github.com/p11kms/p11kms/wrap"
)

// asymTencent is the official Tencent SDK (TC3) with OpenSSL beside it.
type asymTencent struct {
	t   *testing.T
	c   *kms.Client
	dir string
}

func newAsymTencent(t *testing.T) *asymTencent {
	e := newEnv(t)
	return &asymTencent{t: t, c: e.client(t, variants[0], secretID, secretKey), dir: t.TempDir()}
}

func (a *asymTencent) file(name string, b []byte) string {
	f := filepath.Join(a.dir, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		a.t.Fatal(err)
	}
	return f
}

func (a *asymTencent) openssl(args ...string) []byte {
	a.t.Helper()
	out, err := exec.Command("openssl", args...).Output()
	if err != nil {
		a.t.Fatalf("openssl %v: %v", args, err)
	}
	return out
}

// key creates a key of the usage and returns its id and public key file.
func (a *asymTencent) key(alias, usage string) (string, string) {
	a.t.Helper()
	req := kms.NewCreateKeyRequest()
	req.Alias, req.KeyUsage = common.StringPtr(alias), common.StringPtr(usage)
	r := must[*kms.CreateKeyResponse](a.t, "CreateKey "+usage)(a.c.CreateKey(req))
	if *r.Response.KeyUsage != usage {
		a.t.Fatalf("CreateKey KeyUsage %q, want %q", *r.Response.KeyUsage, usage)
	}
	id := *r.Response.KeyId
	d := kms.NewDescribeKeyRequest()
	d.KeyId = &id
	if got := *must[*kms.DescribeKeyResponse](a.t, "DescribeKey")(a.c.DescribeKey(d)).Response.KeyMetadata.KeyUsage; got != usage {
		a.t.Fatalf("DescribeKey KeyUsage %q, want %q", got, usage)
	}
	g := kms.NewGetPublicKeyRequest()
	g.KeyId = &id
	p := must[*kms.GetPublicKeyResponse](a.t, "GetPublicKey")(a.c.GetPublicKey(g))
	der, _ := base64.StdEncoding.DecodeString(*p.Response.PublicKey)
	if !bytes.Contains([]byte(*p.Response.PublicKeyPem), []byte("BEGIN PUBLIC KEY")) || len(der) < 64 {
		a.t.Fatalf("GetPublicKey: %q / %q", *p.Response.PublicKey, *p.Response.PublicKeyPem)
	}
	return id, a.file(alias+".pem", []byte(*p.Response.PublicKeyPem))
}

// TestTencentAsymmetricDecrypt: OpenSSL encrypts under GetPublicKey's key
// (RSA-OAEP-SHA-256; SM2 in C1C3C2 ASN.1, OpenSSL's own form) and
// AsymmetricRsaDecrypt / AsymmetricSm2Decrypt return the plaintext.
func TestTencentAsymmetricDecrypt(t *testing.T) {
	a := newAsymTencent(t)
	pt := make([]byte, 32)
	rand.Read(pt)
	in := a.file("pt", pt)
	rsaID, rsaPub := a.key("rsa-dec", "ASYMMETRIC_DECRYPT_RSA_2048")
	ct := a.openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", rsaPub, "-in", in, "-pkeyopt", "rsa_padding_mode:oaep",
		"-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	r := kms.NewAsymmetricRsaDecryptRequest()
	r.KeyId, r.Algorithm, r.Ciphertext = &rsaID, common.StringPtr("RSAES_OAEP_SHA_256"), common.StringPtr(base64.StdEncoding.EncodeToString(ct))
	got := must[*kms.AsymmetricRsaDecryptResponse](t, "AsymmetricRsaDecrypt")(a.c.AsymmetricRsaDecrypt(r))
	if *got.Response.Plaintext != base64.StdEncoding.EncodeToString(pt) {
		t.Fatalf("AsymmetricRsaDecrypt: %s, want %x", *got.Response.Plaintext, pt)
	}
	r.Algorithm = common.StringPtr("RSAES_PKCS1_V1_5")
	_, err := a.c.AsymmetricRsaDecrypt(r)
	wantSDKCode(t, "PKCS#1 v1.5", err, "UnsupportedOperation")

	smID, smPub := a.key("sm2-dec", "ASYMMETRIC_DECRYPT_SM2")
	s := kms.NewAsymmetricSm2DecryptRequest()
	s.KeyId = &smID
	s.Ciphertext = common.StringPtr(base64.StdEncoding.EncodeToString(a.openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", smPub, "-in", in)))
	sg := must[*kms.AsymmetricSm2DecryptResponse](t, "AsymmetricSm2Decrypt")(a.c.AsymmetricSm2Decrypt(s))
	if *sg.Response.Plaintext != base64.StdEncoding.EncodeToString(pt) {
		t.Fatalf("AsymmetricSm2Decrypt: %s, want %x", *sg.Response.Plaintext, pt)
	}
	s.KeyId = &rsaID
	_, err = a.c.AsymmetricSm2Decrypt(s)
	wantSDKCode(t, "SM2 ciphertext for an RSA key", err, "InvalidParameterValue")
}

// TestTencentSignVerify: SignByAsymmetricKey (RAW and DIGEST) signs in the
// token, OpenSSL verifies, VerifyByAsymmetricKey says true and then false
// for a flipped signature; SM2 signing keys are UnsupportedOperation;
// ListAlgorithms lists what the token does.
func TestTencentSignVerify(t *testing.T) {
	a := newAsymTencent(t)
	msg := []byte("the message to sign")
	digest := sha256.Sum256(msg)
	cases := []struct {
		usage, alg, msgType string
		opts                []string
	}{
		{"ASYMMETRIC_SIGN_VERIFY_RSA_2048", "RSA_PSS_SHA_256", "RAW", []string{"-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32"}},
		{"ASYMMETRIC_SIGN_VERIFY_RSA_2048", "RSA_PKCS1_SHA_256", "DIGEST", nil},
		{"ASYMMETRIC_SIGN_VERIFY_ECC", "ECC", "RAW", nil},
	}
	for i, c := range cases {
		id, pub := a.key(string(rune('a'+i))+"-sign", c.usage)
		m := msg
		if c.msgType == "DIGEST" {
			m = digest[:]
		}
		sr := kms.NewSignByAsymmetricKeyRequest()
		sr.KeyId, sr.Algorithm, sr.MessageType = &id, common.StringPtr(c.alg), common.StringPtr(c.msgType)
		sr.Message = common.StringPtr(base64.StdEncoding.EncodeToString(m))
		sig, _ := base64.StdEncoding.DecodeString(*must[*kms.SignByAsymmetricKeyResponse](t, "Sign "+c.alg)(a.c.SignByAsymmetricKey(sr)).Response.Signature)
		args := append([]string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", a.file("digest", digest[:]),
			"-sigfile", a.file("sig", sig), "-pkeyopt", "digest:sha256"}, c.opts...)
		if out := a.openssl(args...); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
			t.Fatalf("%s: openssl: %s", c.alg, out)
		}
		for j, want := range []bool{true, false} {
			if j == 1 {
				sig[len(sig)/2] ^= 1
			}
			vr := kms.NewVerifyByAsymmetricKeyRequest()
			vr.KeyId, vr.Algorithm, vr.MessageType, vr.Message = &id, sr.Algorithm, sr.MessageType, sr.Message
			vr.SignatureValue = common.StringPtr(base64.StdEncoding.EncodeToString(sig))
			v := must[*kms.VerifyByAsymmetricKeyResponse](t, "Verify "+c.alg)(a.c.VerifyByAsymmetricKey(vr))
			if *v.Response.SignatureValid != want {
				t.Fatalf("%s: SignatureValid %v, want %v", c.alg, *v.Response.SignatureValid, want)
			}
		}
		sr.MessageType, sr.Message = common.StringPtr("DIGEST"), common.StringPtr(base64.StdEncoding.EncodeToString(digest[:20]))
		_, err := a.c.SignByAsymmetricKey(sr)
		wantSDKCode(t, "20-byte digest", err, "InvalidParameterValue")
	}
	ck := kms.NewCreateKeyRequest()
	ck.Alias, ck.KeyUsage = common.StringPtr("sm2-sign"), common.StringPtr("ASYMMETRIC_SIGN_VERIFY_SM2")
	_, err := a.c.CreateKey(ck)
	wantSDKCode(t, "SM2 signing key", err, "UnsupportedOperation")
	l := must[*kms.ListAlgorithmsResponse](t, "ListAlgorithms")(a.c.ListAlgorithms(kms.NewListAlgorithmsRequest()))
	if len(l.Response.AsymmetricAlgorithms) != 2 || len(l.Response.AsymmetricSignVerifyAlgorithms) != 2 || len(l.Response.SymmetricAlgorithms) != 1 {
		t.Fatalf("ListAlgorithms: %s", l.ToJsonString())
	}
}

// TestTencentImportKeyMaterial: a Type 2 key is PendingImport; OpenSSL
// wraps 32 bytes under GetParametersForImport's public key; a forged token
// is refused; ImportKeyMaterial takes the material and the KMS's Encrypt
// opens with it here; DeleteImportedKeyMaterial makes it PendingImport.
func TestTencentImportKeyMaterial(t *testing.T) {
	a := newAsymTencent(t)
	ck := kms.NewCreateKeyRequest()
	ck.Alias, ck.Type = common.StringPtr("byok"), common.Uint64Ptr(2)
	id := *must[*kms.CreateKeyResponse](t, "CreateKey Type 2")(a.c.CreateKey(ck)).Response.KeyId
	state := func() string {
		d := kms.NewDescribeKeyRequest()
		d.KeyId = &id
		return *must[*kms.DescribeKeyResponse](t, "DescribeKey")(a.c.DescribeKey(d)).Response.KeyMetadata.KeyState
	}
	if st := state(); st != "PendingImport" {
		t.Fatalf("Type 2 key is %s", st)
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
	im.KeyId, im.EncryptedKeyMaterial = &id, common.StringPtr(base64.StdEncoding.EncodeToString(ct))
	forged, _ := base64.StdEncoding.DecodeString(*p.Response.ImportToken)
	forged[len(forged)-1] ^= 1
	im.ImportToken = common.StringPtr(base64.StdEncoding.EncodeToString(forged))
	_, err := a.c.ImportKeyMaterial(im)
	wantSDKCode(t, "forged ImportToken", err, "InvalidParameterValue")
	im.ImportToken = p.Response.ImportToken
	must[*kms.ImportKeyMaterialResponse](t, "ImportKeyMaterial")(a.c.ImportKeyMaterial(im))
	if st := state(); st != "Enabled" {
		t.Fatalf("imported key is %s", st)
	}
	e := kms.NewEncryptRequest()
	e.KeyId, e.Plaintext = &id, common.StringPtr(base64.StdEncoding.EncodeToString([]byte("same key")))
	blob, _ := base64.StdEncoding.DecodeString(*must[*kms.EncryptResponse](t, "Encrypt")(a.c.Encrypt(e)).Response.CiphertextBlob)
	b, err := wrap.ParseBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := aes.NewCipher(material)
	gcm, _ := cipher.NewGCM(blk)
	if pt, err := gcm.Open(nil, b.IV[:], b.Sealed, wrap.AAD(b.Header(), nil)); err != nil || string(pt) != "same key" {
		t.Fatalf("the KMS's blob does not open with the imported material: %q %v", pt, err)
	}
	del := kms.NewDeleteImportedKeyMaterialRequest()
	del.KeyId = &id
	must[*kms.DeleteImportedKeyMaterialResponse](t, "DeleteImportedKeyMaterial")(a.c.DeleteImportedKeyMaterial(del))
	_, err = a.c.Encrypt(e)
	wantSDKCode(t, "Encrypt after DeleteImportedKeyMaterial", err, "ResourceUnavailable.CmkStateNotSupport")
}
