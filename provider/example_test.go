package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// The main flow: a CMK in the token, a data key exported under a caller's
// RSA public key, and the CiphertextBlob decrypted later.
func Example_generateAndExportDataKey() {
	tok, remove, err := softhsmtest.Temporary() // a fresh SoftHSM2 token; in production hsm.OpenURI("pkcs11:token=kms?...")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		if err := remove(); err != nil {
			fmt.Println(err)
		}
	}()
	ctx := context.Background()
	kms := provider.New(tok.Token, provider.Options{})

	key, _ := kms.CreateKey(ctx, &provider.CreateKeyRequest{Description: "payments"})

	caller, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := wrap.MarshalPublicKeyDER(&caller.PublicKey)
	out, err := kms.GenerateAndExportDataKey(ctx, &provider.GenerateAndExportDataKeyRequest{
		KeyId:             key.KeyMetadata.KeyId,
		EncryptionContext: wrap.EncryptionContext{"purpose": "example"},
		PublicKeyBlob:     base64.StdEncoding.EncodeToString(der),
		WrappingKeySpec:   "RSA_2048",
		WrappingAlgorithm: "RSAES_OAEP_SHA_256",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The caller unwraps the exported key with its private key...
	alg, _ := wrap.LookupAlgorithm("RSAES_OAEP_SHA_256")
	ct, _ := base64.StdEncoding.DecodeString(out.ExportedDataKey)
	exported, _ := alg.Decrypt(caller, ct)

	// ...and the KMS recovers the same key from the blob.
	dec, _ := kms.Decrypt(ctx, &provider.DecryptRequest{
		CiphertextBlob:    out.CiphertextBlob,
		EncryptionContext: wrap.EncryptionContext{"purpose": "example"},
	})
	plain, _ := base64.StdEncoding.DecodeString(dec.Plaintext)
	fmt.Println("key bytes:", len(exported))
	fmt.Println("same key:", bytes.Equal(exported, plain))
	fmt.Println("same KCV:", out.KeyCheckValue == dec.KeyCheckValue)
	// Output:
	// key bytes: 32
	// same key: true
	// same KCV: true
}
