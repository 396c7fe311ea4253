package provider_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"testing"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

func BenchmarkGenerateDataKey(b *testing.B) {
	s, _, _ := newService(b)
	id := createKey(b, s)
	req := &provider.GenerateDataKeyRequest{KeyId: id}
	for b.Loop() {
		if _, err := s.GenerateDataKey(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}

func benchExport(b *testing.B, spec, alg string, pub any) {
	s, _, _ := newService(b)
	id := createKey(b, s)
	der, err := wrap.MarshalPublicKeyDER(pub)
	if err != nil {
		b.Fatal(err)
	}
	req := &provider.GenerateAndExportDataKeyRequest{KeyId: id, PublicKeyBlob: base64.StdEncoding.EncodeToString(der),
		WrappingKeySpec: spec, WrappingAlgorithm: alg}
	for b.Loop() {
		if _, err := s.GenerateAndExportDataKey(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateAndExportDataKeyRSA2048OAEPSHA256(b *testing.B) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	benchExport(b, "RSA_2048", "RSAES_OAEP_SHA_256", &k.PublicKey)
}

func BenchmarkGenerateAndExportDataKeySM2(b *testing.B) {
	k, _ := sm2.GenerateKey(rand.Reader)
	benchExport(b, "EC_SM2", "SM2PKE", &k.PublicKey)
}

func BenchmarkDecrypt(b *testing.B) {
	s, _, _ := newService(b)
	id := createKey(b, s)
	g, err := s.GenerateDataKey(bg, &provider.GenerateDataKeyRequest{KeyId: id})
	if err != nil {
		b.Fatal(err)
	}
	req := &provider.DecryptRequest{CiphertextBlob: g.CiphertextBlob}
	for b.Loop() {
		if _, err := s.Decrypt(bg, req); err != nil {
			b.Fatal(err)
		}
	}
}
