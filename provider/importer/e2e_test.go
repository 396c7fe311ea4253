package importer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/provider/tencent"
)

// Every WrappingAlgorithm × WrappingKeySpec the KMS side can export, end to
// end through two real SoftHSM2 tokens: GenerateAndExportDataKey (Alibaba)
// and GenerateDataKey with EncryptionPublicKey (Tencent) in token "kms",
// ImportDataKey in token "device".
func TestEndToEndTwoTokens(t *testing.T) {
	ctx := context.Background()
	kmsTok, devTok := softhsmtest.New(t), softhsmtest.New(t)
	kms := provider.New(kmsTok.Token, provider.Options{})
	dev := importer.New(devTok.Token)
	key, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{Description: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	keyID := key.KeyMetadata.KeyId
	wrapping := map[string]*importer.WrappingKeyResponse{}
	for _, spec := range []string{"RSA_2048", "RSA_3072", "RSA_4096", "EC_SM2"} {
		w, err := dev.CreateWrappingKey(ctx, &importer.CreateWrappingKeyRequest{WrappingKeySpec: spec, KeyLabel: "wrap-" + spec})
		if err != nil {
			t.Fatal(err)
		}
		wrapping[spec] = w
	}
	type exported struct{ blob, wrapped, kcv string }
	alibaba := func(spec, alg string) exported {
		r, err := kms.GenerateAndExportDataKey(ctx, &provider.GenerateAndExportDataKeyRequest{KeyId: keyID,
			PublicKeyBlob: wrapping[spec].PublicKeyBlob, WrappingKeySpec: spec, WrappingAlgorithm: alg})
		if err != nil {
			t.Fatalf("%s/%s: %v", spec, alg, err)
		}
		return exported{r.CiphertextBlob, r.ExportedDataKey, r.KeyCheckValue}
	}
	tencent := func(spec, alg string) exported {
		ex, err := tencent.ParseExporter(wrapping[spec].PublicKeyPem, alg)
		if err != nil {
			t.Fatalf("%s/%s: %v", spec, alg, err)
		}
		r, err := kms.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: keyID, Exporter: ex})
		if err != nil {
			t.Fatalf("%s/%s: %v", spec, alg, err)
		}
		return exported{r.CiphertextBlob, r.Plaintext, r.KeyCheckValue}
	}
	type tc struct {
		api, spec, alg string
		export         func(spec, alg string) exported
	}
	var cases []tc
	for _, spec := range []string{"RSA_2048", "RSA_3072", "RSA_4096"} {
		for _, alg := range []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"} {
			cases = append(cases, tc{"alibaba", spec, alg, alibaba})
		}
		for _, alg := range []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSAES_PKCS1_V1_5"} {
			cases = append(cases, tc{"tencent", spec, alg, tencent})
		}
	}
	cases = append(cases, tc{"alibaba", "EC_SM2", "SM2PKE", alibaba}, tc{"tencent", "EC_SM2", "SM2", tencent},
		tc{"tencent", "EC_SM2", "SM2_C1C3C2_ASN1", tencent})
	for i, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", c.api, c.spec, c.alg), func(t *testing.T) {
			e := c.export(c.spec, c.alg)
			label := fmt.Sprintf("dk-%d", i)
			imp, err := dev.ImportDataKey(ctx, &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap-" + c.spec,
				WrappingAlgorithm: c.alg, ExportedDataKey: e.wrapped, KeyLabel: label, AllowHostDecode: true})
			if err != nil {
				t.Fatal(err)
			}
			d, err := kms.Decrypt(ctx, &provider.DecryptRequest{CiphertextBlob: e.blob})
			if err != nil {
				t.Fatal(err)
			}
			if imp.KeyCheckValue != e.kcv || d.KeyCheckValue != e.kcv {
				t.Fatalf("KCVs: export %s, import %s, decrypt %s", e.kcv, imp.KeyCheckValue, d.KeyCheckValue)
			}
			h, err := devTok.FindSecretKeyByLabel(ctx, label)
			if err != nil {
				t.Fatal(err)
			}
			for attr, want := range map[uint]bool{pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false} {
				if got, err := devTok.BoolAttribute(ctx, h, attr); err != nil || got != want {
					t.Fatalf("attribute %#x = %v (%v)", attr, got, err)
				}
			}
			if _, err := devTok.Attributes(ctx, h, pkcs11.CKA_VALUE); !hsm.IsCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
				t.Fatalf("imported CKA_VALUE readable: %v", err)
			}
			wantPath := map[string]string{"SM2PKE": importer.PathHostSM2, "SM2": importer.PathHostSM2, "SM2_C1C3C2_ASN1": importer.PathHostSM2,
				"RSAES_OAEP_SHA_256": importer.PathHostOAEP}[c.alg]
			if wantPath == "" {
				wantPath = importer.PathTokenUnwrap
			}
			if imp.Path != wantPath {
				t.Fatalf("path %s, want %s", imp.Path, wantPath)
			}
		})
	}
}
