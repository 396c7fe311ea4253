package importer_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider/importer"
	"github.com/p11kms/p11kms/wrap"
)

// The receiving side end to end: create a wrapping key in the token, let
// the exporting side wrap a data key under its PublicKeyBlob, import the
// result, and compare key check values.
func ExampleService_ImportDataKey() {
	ctx := context.Background()
	tok, remove, err := softhsmtest.Temporary() // the receiving token; in production hsm.OpenURI("pkcs11:token=device?...")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := remove(); err != nil {
			fmt.Println(err)
		}
	}()
	svc := importer.New(tok.Token)

	for _, c := range []struct{ spec, alg string }{{"RSA_2048", "RSAES_OAEP_SHA_1"}, {"EC_SM2", "SM2PKE"}} {
		// 1. The receiver makes a wrapping key and hands out its PublicKeyBlob.
		wk, err := svc.CreateWrappingKey(ctx, &importer.CreateWrappingKeyRequest{WrappingKeySpec: c.spec, KeyLabel: "wrap/" + c.spec})
		if err != nil {
			fmt.Println(err)
			return
		}

		// 2. The exporting KMS wraps a data key under it, as its
		// GenerateAndExportDataKey does, and sends the KCV along.
		spec, _ := wrap.ParseKeySpec(wk.WrappingKeySpec)
		pub, _ := wrap.ParsePublicKeyBlob(wk.PublicKeyBlob, spec)
		alg, _ := wrap.LookupAlgorithm(c.alg)
		dataKey := make([]byte, 32)
		rand.Read(dataKey)
		exported, _ := alg.Encrypt(nil, pub, dataKey)
		kcv, _ := wrap.KCV(dataKey)
		wrap.ZeroBytes(dataKey)

		// 3. The receiver imports it as a non-extractable key.
		resp, err := svc.ImportDataKey(ctx, &importer.ImportDataKeyRequest{
			WrappingKeyLabel:      wk.KeyLabel,
			WrappingAlgorithm:     c.alg,
			ExportedDataKey:       base64.StdEncoding.EncodeToString(exported),
			KeyLabel:              "payments/" + c.spec,
			ExpectedKeyCheckValue: kcv,
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(resp.Path, resp.KeyCheckValue == kcv)
	}
	// Output:
	// token-unwrap true
	// token-ecdh+host-sm2 true
}
