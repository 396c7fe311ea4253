package wrap_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/wrap"
)

// Wrap a freshly generated data key for a caller's public key, the way
// GenerateAndExportDataKey does, and unwrap it on the receiving side.
func ExampleAlgorithm_Encrypt() {
	// The request: an Alibaba-style PublicKeyBlob (base64 DER
	// SubjectPublicKeyInfo; here the SM2 key of the GB/T 32918.4 example),
	// WrappingKeySpec and WrappingAlgorithm.
	const publicKeyBlob = "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAECfnfMR5UIaFQ3X0WHkvFxnIXn60YM/wHa7CP81bzUCDM6kkM4md1pS3G6nGMwapgCu0F+/NeCEpmMvYHLamtEw=="
	spec, err := wrap.ParseKeySpec("EC_SM2")
	if err != nil {
		panic(err)
	}
	pub, err := wrap.ParsePublicKeyBlob(publicKeyBlob, spec)
	if err != nil {
		panic(err)
	}
	alg, err := wrap.LookupAlgorithm("SM2PKE")
	if err != nil {
		panic(err)
	}
	if err := alg.CompatibleWith(spec); err != nil {
		panic(err)
	}

	dataKey := make([]byte, 32) // from the token's RNG in p11kms
	rand.Read(dataKey)
	exported, err := alg.Encrypt(rand.Reader, pub, dataKey)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d-byte ExportedDataKey, C1 starts with %#02x\n", alg.Name, len(exported), exported[0])

	// The receiver holds the private key (in its token, normally).
	d, _ := hex.DecodeString("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
	priv, _ := sm2.NewPrivateKey(d)
	got, err := alg.Decrypt(priv, exported)
	fmt.Println("receiver recovers the data key:", err == nil && bytes.Equal(got, dataKey))

	wrap.ZeroBytes(dataKey)
	wrap.ZeroBytes(got)

	// An RSA algorithm cannot wrap under an SM2 key: a parameter error.
	oaep, _ := wrap.LookupAlgorithm("RSAES_OAEP_SHA_256")
	fmt.Println(oaep.CompatibleWith(spec))
	// Output:
	// SM2PKE: 129-byte ExportedDataKey, C1 starts with 0x04
	// receiver recovers the data key: true
	// algorithm: RSAES_OAEP_SHA_256 needs an RSA key; the key spec is EC_SM2
}

// Parse a CiphertextBlob and build the AES-GCM additional data that
// opening it needs.
func ExampleParseBlob() {
	raw, _ := base64.StdEncoding.DecodeString("AXsMLk5vikwdni86S1xtfo/K/rq++s7brd7K+IiKsoIV7i8pbM6S92a3wGfADTHiYptMDAPGRq7KclSLADhQuGQ16OAZd4nQ6g3V72g=")
	blob, err := wrap.ParseBlob(raw)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version ID %x\n", blob.VersionID)
	fmt.Printf("IV         %x\n", blob.IV)
	fmt.Printf("sealed     %d bytes (32-byte data key + 16-byte tag)\n", len(blob.Sealed))

	ctx, err := wrap.ParseEncryptionContextJSON(`{"purpose":"backup","app":"p11kms","B":"upper sorts first","é":"two-byte key"}`, 8192)
	if err != nil {
		panic(err)
	}
	aad := wrap.AAD(blob.Header(), ctx)
	fmt.Printf("AAD        %d bytes = 29-byte header + %d-byte canonical context\n", len(aad), len(ctx.Canonical()))

	_, err = wrap.ParseBlob([]byte{0x02, 0x00})
	fmt.Println(err)
	// Output:
	// version ID 7b0c2e4e6f8a4c1d9e2f3a4b5c6d7e8f
	// IV         cafebabefacedbaddecaf888
	// sealed     48 bytes (32-byte data key + 16-byte tag)
	// AAD        91 bytes = 29-byte header + 62-byte canonical context
	// CiphertextBlob: unknown version byte 0x02; supported: 0x01
}

func ExampleKCV() {
	kcv, _ := wrap.KCV(make([]byte, 16))
	fmt.Println(kcv)
	// Output: 66e94b
}

func ExampleEncryptionContext_Canonical() {
	ctx := wrap.EncryptionContext{"b": "2", "a": "1"}
	fmt.Printf("%x\n", ctx.Canonical())
	// Output: 0161013101620132
}

func ExampleLookupAlgorithm() {
	_, err := wrap.LookupAlgorithm("RSAES_OAEP_SHA_512")
	fmt.Println(err)
	// Output: algorithm: unknown algorithm "RSAES_OAEP_SHA_512"; valid: RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSAES_PKCS1_V1_5, SM2PKE, SM2, SM2_C1C3C2_ASN1
}

func ExampleParsePublicKeyPEM() {
	// A 1024-bit RSA key, as a Tencent EncryptionPublicKey.
	const weak = `-----BEGIN RSA PUBLIC KEY-----
MIGJAoGBAMSbhTGjCVvO+4KQdeYJne1X+Ww6f+CD3tR/f3SLLPvqBfXrLHxrTvhC
s6ay3zKjStETYXXVmoBjQ2Mg/KgCRi73+FEQVO4SLMojkAFX6gvlDt0njQ36tEhP
xhwA42ScD6ZsokdYwXAS/JeFaMuIXrfAE3/AIMFNwtAEomKAwVQFAgMBAAE=
-----END RSA PUBLIC KEY-----`
	_, _, err := wrap.ParsePublicKeyPEM(weak)
	fmt.Println(err)
	// Output: public key: RSA modulus is 1024 bits; accepted: 2048, 3072, 4096
}
