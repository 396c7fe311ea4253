package importer_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider/importer"
)

// benchImport measures ImportDataKey along one path. Every iteration
// imports the same ExportedDataKey under a fresh label; the key is
// destroyed outside the timer, so the token does not grow.
func benchImport(b *testing.B, spec, alg, wantPath string, ephemeral bool) {
	tok, svc := newService(b)
	wk := createWrappingKey(b, svc, spec, "wrap")
	exported := export(b, wk, alg, randomKey(32))
	req := importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: alg, ExportedDataKey: exported,
		AllowHostDecode: true, Ephemeral: ephemeral}
	// Warm up: probes and the wrapping key cache.
	req.KeyLabel = "warm"
	if resp, err := svc.ImportDataKey(bg, &req); err != nil || resp.Path != wantPath {
		b.Fatalf("%v, path %v", err, resp)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.KeyLabel = fmt.Sprint("dk", i)
		if _, err := svc.ImportDataKey(bg, &req); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h, err := tok.FindSecretKeyByLabel(bg, req.KeyLabel)
		if err == nil {
			err = tok.DestroyObject(bg, h)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkImportDataKey(b *testing.B) {
	paths := []struct {
		name, spec, alg, path string
	}{
		{"token-unwrap/RSA_2048/RSAES_OAEP_SHA_1", "RSA_2048", "RSAES_OAEP_SHA_1", importer.PathTokenUnwrap},
		{"host-oaep/RSA_2048/RSAES_OAEP_SHA_256", "RSA_2048", "RSAES_OAEP_SHA_256", importer.PathHostOAEP},
		{"host-sm2/EC_SM2/SM2PKE", "EC_SM2", "SM2PKE", importer.PathHostSM2},
	}
	for _, p := range paths {
		for _, ephemeral := range []bool{true, false} {
			kind := "persistent"
			if ephemeral {
				kind = "ephemeral"
			}
			b.Run(p.name+"/"+kind, func(b *testing.B) { benchImport(b, p.spec, p.alg, p.path, ephemeral) })
		}
	}
}

// BenchmarkImportDataKeyParallel runs ephemeral imports from many
// goroutines (SoftHSM2 serialises most calls within a process).
func BenchmarkImportDataKeyParallel(b *testing.B) {
	for _, p := range []struct{ name, spec, alg string }{
		{"token-unwrap/RSA_2048/RSAES_OAEP_SHA_1", "RSA_2048", "RSAES_OAEP_SHA_1"},
		{"host-sm2/EC_SM2/SM2PKE", "EC_SM2", "SM2PKE"},
	} {
		b.Run(p.name, func(b *testing.B) {
			tok, svc := newService(b)
			wk := createWrappingKey(b, svc, p.spec, "wrap")
			exported := export(b, wk, p.alg, randomKey(32))
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					label := fmt.Sprint("dk", n.Add(1))
					_, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: p.alg,
						ExportedDataKey: exported, KeyLabel: label, Ephemeral: true})
					if err == nil {
						var h hsm.ObjectHandle
						if h, err = tok.FindSecretKeyByLabel(bg, label); err == nil {
							err = tok.DestroyObject(bg, h)
						}
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkEncrypt32 is AES-GCM with an imported key, IV from the token RNG.
func BenchmarkEncrypt32(b *testing.B) {
	for _, ephemeral := range []bool{true, false} {
		b.Run(fmt.Sprintf("ephemeral=%v", ephemeral), func(b *testing.B) {
			_, svc := newService(b)
			wk := createWrappingKey(b, svc, "RSA_2048", "wrap")
			if _, err := svc.ImportDataKey(bg, &importer.ImportDataKeyRequest{WrappingKeyLabel: "wrap", WrappingAlgorithm: "RSAES_OAEP_SHA_1",
				ExportedDataKey: export(b, wk, "RSAES_OAEP_SHA_1", randomKey(32)), KeyLabel: "dk", Ephemeral: ephemeral}); err != nil {
				b.Fatal(err)
			}
			req := &importer.EncryptRequest{KeyLabel: "dk", Plaintext: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
			b.SetBytes(32)
			for b.Loop() {
				if _, err := svc.Encrypt(bg, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
