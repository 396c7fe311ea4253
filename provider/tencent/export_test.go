package tencent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// These tests were the core's while it parsed Tencent's public-key
// parameters and mapped its errors to Tencent's codes; both are this
// package's now (ParseExporter, coreCode), over the core's neutral
// PublicKeyExporter.

func coreWithKey(t *testing.T) (*provider.Service, *softhsmtest.Token, string) {
	t.Helper()
	tok := softhsmtest.New(t)
	s := provider.New(tok.Token, provider.Options{})
	k, err := s.CreateKey(context.Background(), &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return s, tok, k.KeyMetadata.KeyId
}

// generateUnder is GenerateDataKey with Tencent's public-key parameters.
func generateUnder(s *provider.Service, id, pemText, alg string) (*provider.GenerateDataKeyResponse, error) {
	ex, err := ParseExporter(pemText, alg)
	if err != nil {
		return nil, err
	}
	return s.GenerateDataKey(context.Background(), &provider.GenerateDataKeyRequest{KeyId: id, Exporter: ex})
}

// Tencent's GenerateDataKey with EncryptionPublicKey, all five algorithms.
func TestTencentGenerateDataKeyWithPublicKey(t *testing.T) {
	s, _, id := coreWithKey(t)
	bg := context.Background()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	sk, _ := sm2.GenerateKey(rand.Reader)
	rsaPEM, _ := wrap.MarshalPublicKeyPEM(&rk.PublicKey)
	sm2PEM, _ := wrap.MarshalPublicKeyPEM(&sk.PublicKey)
	for _, c := range []struct {
		alg, pem string
		priv     any
	}{{"", sm2PEM, sk}, {"SM2", sm2PEM, sk}, {"SM2_C1C3C2_ASN1", sm2PEM, sk},
		{"RSAES_PKCS1_V1_5", rsaPEM, rk}, {"RSAES_OAEP_SHA_1", rsaPEM, rk}, {"RSAES_OAEP_SHA_256", rsaPEM, rk}} {
		r, err := generateUnder(s, id, c.pem, c.alg)
		if err != nil {
			t.Fatalf("%s: %v", c.alg, err)
		}
		name := c.alg
		if name == "" {
			name = "SM2"
		}
		alg, _ := wrap.LookupAlgorithm(name)
		ct, _ := base64.StdEncoding.DecodeString(r.Plaintext)
		got, err := alg.Decrypt(c.priv, ct)
		if err != nil {
			t.Fatalf("%s: %v", c.alg, err)
		}
		d, _ := s.Decrypt(bg, &provider.DecryptRequest{CiphertextBlob: r.CiphertextBlob})
		want, _ := base64.StdEncoding.DecodeString(d.Plaintext)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: public-key plaintext differs", c.alg)
		}
	}
	// An RSA key with no algorithm means SM2: an error, as on Tencent.
	_, err := generateUnder(s, id, rsaPEM, "")
	if provider.ErrorCode(err) != provider.CodeInvalidParameter || coreCode(provider.AsError(err)) != "FailedOperation.EncryptionError" {
		t.Fatal(err)
	}
	// An algorithm without a key.
	if _, err := ParseExporter("", "SM2"); provider.ErrorCode(err) != provider.CodeInvalidParameter {
		t.Fatal(err)
	}
}

// "(an empty EncryptionAlgorithm means SM2)" explains the default only when
// no algorithm was given.
func TestEncryptionAlgorithmHintOnlyWhenDefaulted(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM, _ := wrap.MarshalPublicKeyPEM(&k.PublicKey)
	const hint = "an empty EncryptionAlgorithm means SM2"
	wantParam := func(what string, err error, mention ...string) {
		t.Helper()
		e := provider.AsError(err)
		if err == nil || e.Code != provider.CodeInvalidParameter || e.Param != "EncryptionAlgorithm" ||
			!strings.HasPrefix(e.Message, "EncryptionAlgorithm: ") {
			t.Errorf("%s: %v; want InvalidParameter naming EncryptionAlgorithm", what, err)
			return
		}
		for _, m := range mention {
			if !strings.Contains(e.Message, m) {
				t.Errorf("%s: message %q should mention %q", what, e.Message, m)
			}
		}
	}
	_, err = ParseExporter(rsaPEM, "")
	wantParam("no algorithm", err, "SM2", hint)
	for _, alg := range []string{"SM2", "SM2_C1C3C2_ASN1"} {
		_, err = ParseExporter(rsaPEM, alg)
		wantParam(alg, err, alg)
		if strings.Contains(provider.AsError(err).Message, hint) {
			t.Errorf("%s given: %q explains a default that was not used", alg, provider.AsError(err).Message)
		}
	}
}

// The core's error kinds map to Tencent's codes.
func TestCoreErrorsMapToTencentCodes(t *testing.T) {
	s, tok, _ := coreWithKey(t)
	bg := context.Background()
	code := func(err error) string { c, _ := codeAndMessage(err); return c }
	_, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "00000000-0000-4000-8000-000000000000"})
	if c := code(err); c != "ResourceUnavailable.CmkNotFound" {
		t.Fatal(c)
	}
	_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: "bad id"})
	if c := code(err); c != "InvalidParameterValue.InvalidKeyId" {
		t.Fatal(c)
	}
	k, err := s.CreateKey(bg, &provider.CreateKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tok.Token.Close()
	_, err = s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: k.KeyMetadata.KeyId})
	if c := code(err); provider.ErrorCode(err) != provider.CodeInternalFailure || c != "InternalError" {
		t.Fatal(err, c)
	}
}

// Tencent's error map names wrap's neutral fields as Tencent does: a bad
// EncryptionPublicKey is InvalidParameter naming EncryptionPublicKey
// (FailedOperation.EncryptionError on the wire), where the core names the
// same field PublicKeyBlob.
func TestWrapFieldsAreNamedByTencent(t *testing.T) {
	_, err := ParseExporter("not a key", "SM2")
	e := provider.AsError(err)
	if e.Code != provider.CodeInvalidParameter || e.Param != "EncryptionPublicKey" || !strings.HasPrefix(e.Message, "EncryptionPublicKey: ") ||
		coreCode(e) != CodeEncryptionError {
		t.Fatalf("%+v", e)
	}
	_, werr := wrap.ParsePublicKeyBlob("!!", wrap.SpecRSA2048)
	if p := provider.AsError(provider.FromWrap(werr)).Param; p != "PublicKeyBlob" {
		t.Fatalf("the core names the field %q", p)
	}
}
