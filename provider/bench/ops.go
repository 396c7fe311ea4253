package bench

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/emmansun/gmsm/sm2"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Fixture is what the in-process operations share: a KMS, a CMK, the
// callers' key pairs and a session AES key for the GCM primitive.
type Fixture struct {
	KMS    *provider.Service
	Tok    *hsm.Token
	KeyId  string
	RSA    *rsa.PrivateKey
	SM2    *sm2.PrivateKey
	rsaB64 string
	sm2B64 string
	gcmKey hsm.ObjectHandle
	blob   string
}

// NewFixture creates a CMK (described as a benchmark key) and the caller keys.
func NewFixture(ctx context.Context, kms *provider.Service, tok *hsm.Token) (*Fixture, error) {
	k, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{Description: "p11kms bench"})
	if err != nil {
		return nil, err
	}
	f := &Fixture{KMS: kms, Tok: tok, KeyId: k.KeyMetadata.KeyId}
	if f.RSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if f.SM2, err = sm2.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	der, _ := wrap.MarshalPublicKeyDER(&f.RSA.PublicKey)
	f.rsaB64 = base64.StdEncoding.EncodeToString(der)
	der, _ = wrap.MarshalPublicKeyDER(&f.SM2.PublicKey)
	f.sm2B64 = base64.StdEncoding.EncodeToString(der)
	if f.gcmKey, err = tok.GenerateAESKey(ctx, 256, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt | hsm.UsageDecrypt}); err != nil {
		return nil, err
	}
	g, err := kms.GenerateDataKey(ctx, &provider.GenerateDataKeyRequest{KeyId: f.KeyId})
	if err != nil {
		return nil, err
	}
	f.blob = g.CiphertextBlob
	return f, nil
}

// Primitive steps.
func (f *Fixture) rng() Primitive {
	return Primitive{"token RNG 44 B", func(ctx context.Context) error { _, err := f.Tok.Random(ctx, 44); return err }}
}

func (f *Fixture) gcmSeal() Primitive {
	iv, msg, aad := make([]byte, 12), make([]byte, 32), make([]byte, 29)
	return Primitive{"token AES-GCM seal 32 B", func(ctx context.Context) error {
		_, err := f.Tok.EncryptGCM(ctx, f.gcmKey, iv, msg, aad)
		return err
	}}
}

func (f *Fixture) gcmOpen() Primitive {
	iv, msg, aad := make([]byte, 12), make([]byte, 32), make([]byte, 29)
	sealed, _ := f.Tok.EncryptGCM(context.Background(), f.gcmKey, iv, msg, aad)
	return Primitive{"token AES-GCM open 32 B", func(ctx context.Context) error {
		_, err := f.Tok.DecryptGCM(ctx, f.gcmKey, iv, sealed, aad)
		return err
	}}
}

func (f *Fixture) rsaOAEP() Primitive {
	msg := make([]byte, 32)
	return Primitive{"Go RSA-2048 OAEP-SHA-256 encrypt", func(context.Context) error {
		_, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &f.RSA.PublicKey, msg, nil)
		return err
	}}
}

func (f *Fixture) sm2Enc() Primitive {
	msg := make([]byte, 32)
	alg, _ := wrap.LookupAlgorithm("SM2PKE")
	return Primitive{"gmsm SM2 encrypt", func(context.Context) error {
		_, err := alg.Encrypt(rand.Reader, &f.SM2.PublicKey, msg)
		return err
	}}
}

// Ops returns the in-process operations by name.
func (f *Fixture) Ops() map[string]Op {
	gdk := &provider.GenerateDataKeyRequest{KeyId: f.KeyId}
	rsaReq := &provider.GenerateAndExportDataKeyRequest{KeyId: f.KeyId, PublicKeyBlob: f.rsaB64, WrappingKeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_256"}
	sm2Req := &provider.GenerateAndExportDataKeyRequest{KeyId: f.KeyId, PublicKeyBlob: f.sm2B64, WrappingKeySpec: "EC_SM2", WrappingAlgorithm: "SM2PKE"}
	dec := &provider.DecryptRequest{CiphertextBlob: f.blob}
	return map[string]Op{
		"GenerateDataKey": {Name: "GenerateDataKey (in-process)", Run: func(ctx context.Context) error {
			_, err := f.KMS.GenerateDataKey(ctx, gdk)
			return err
		}, Primitives: []Primitive{f.rng(), f.gcmSeal()}},
		"GenerateAndExportDataKey-RSA": {Name: "GenerateAndExportDataKey RSA-2048 OAEP-SHA-256", Run: func(ctx context.Context) error {
			_, err := f.KMS.GenerateAndExportDataKey(ctx, rsaReq)
			return err
		}, Primitives: []Primitive{f.rng(), f.gcmSeal(), f.rsaOAEP()}},
		"GenerateAndExportDataKey-SM2": {Name: "GenerateAndExportDataKey SM2 (SM2PKE)", Run: func(ctx context.Context) error {
			_, err := f.KMS.GenerateAndExportDataKey(ctx, sm2Req)
			return err
		}, Primitives: []Primitive{f.rng(), f.gcmSeal(), f.sm2Enc()}},
		"Decrypt": {Name: "Decrypt (in-process)", Run: func(ctx context.Context) error {
			_, err := f.KMS.Decrypt(ctx, dec)
			return err
		}, Primitives: []Primitive{f.gcmOpen()}},
	}
}

// OpNames lists the in-process operations in a stable order.
var OpNames = []string{"GenerateDataKey", "GenerateAndExportDataKey-RSA", "GenerateAndExportDataKey-SM2", "Decrypt"}

// Prefill creates CMKs until the token holds n keys (for lookup-flatness runs).
func Prefill(ctx context.Context, kms *provider.Service, n int, progress func(int)) error {
	l, err := kms.ListKeys(ctx, &provider.ListKeysRequest{PageSize: 1})
	if err != nil {
		return err
	}
	for i := l.TotalCount; i < n; i++ {
		if _, err := kms.CreateKey(ctx, &provider.CreateKeyRequest{Description: fmt.Sprintf("bench filler %d", i)}); err != nil {
			return err
		}
		if progress != nil && i%100 == 0 {
			progress(i)
		}
	}
	return nil
}
