package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/emmansun/gmsm/sm2"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/importer"
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

	// The receiving side, on the same token: a wrapping key of each kind
	// and a data key exported to each by GenerateAndExportDataKey.
	Imp         *importer.Service
	wrapRSA     string // wrapping key labels
	wrapSM2     string
	wrapRSAPriv hsm.ObjectHandle
	wrapSM2Priv hsm.ObjectHandle
	exportedRSA string // RSAES_OAEP_SHA_1
	exportedSM2 string // SM2PKE
	labels      atomic.Int64
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
	if err := f.newReceiver(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// newReceiver creates the wrapping keys and exports a data key to each.
func (f *Fixture) newReceiver(ctx context.Context) error {
	f.Imp = importer.New(f.Tok)
	suffix := strings.ReplaceAll(f.KeyId, "-", "")[:12]
	for _, w := range []struct {
		spec, alg string
		label     *string
		priv      *hsm.ObjectHandle
		exported  *string
	}{
		{"RSA_2048", "RSAES_OAEP_SHA_1", &f.wrapRSA, &f.wrapRSAPriv, &f.exportedRSA},
		{"EC_SM2", "SM2PKE", &f.wrapSM2, &f.wrapSM2Priv, &f.exportedSM2},
	} {
		label := "p11kms-bench-" + strings.ToLower(w.spec[:2]) + "-" + suffix
		wk, err := f.Imp.CreateWrappingKey(ctx, &importer.CreateWrappingKeyRequest{WrappingKeySpec: w.spec, KeyLabel: label})
		if err != nil {
			return err
		}
		*w.label = label
		kp, err := f.Tok.FindKeyPair(ctx, label)
		if err != nil {
			return err
		}
		*w.priv = kp.Private
		e, err := f.KMS.GenerateAndExportDataKey(ctx, &provider.GenerateAndExportDataKeyRequest{KeyId: f.KeyId,
			PublicKeyBlob: wk.PublicKeyBlob, WrappingKeySpec: w.spec, WrappingAlgorithm: w.alg})
		if err != nil {
			return err
		}
		*w.exported = e.ExportedDataKey
	}
	return nil
}

// Close deletes the wrapping keys the fixture created. The CMK stays (a
// KMS key is only ever scheduled for deletion).
func (f *Fixture) Close() {
	ctx := context.Background()
	for _, l := range []string{f.wrapRSA, f.wrapSM2} {
		if l != "" && f.Imp != nil {
			_, _ = f.Imp.DeleteWrappingKey(ctx, &importer.DeleteWrappingKeyRequest{KeyLabel: l})
		}
	}
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

// rsaUnwrap is the RSA import's private-key operation: C_UnwrapKey
// (OAEP-SHA-1) into a session key, destroyed after.
func (f *Fixture) rsaUnwrap() Primitive {
	ct, _ := base64.StdEncoding.DecodeString(f.exportedRSA)
	mech := hsm.RSAMechanism{Kind: hsm.RSAOAEP, Hash: crypto.SHA1}
	return Primitive{"token RSA-2048 unwrap (C_UnwrapKey, session key)", func(ctx context.Context) error {
		h, _, err := f.Tok.UnwrapRSAAnyLength(ctx, f.wrapRSAPriv, mech, ct, pkcs11.CKK_AES, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt})
		if err != nil {
			return err
		}
		return f.Tok.DestroySessionObject(ctx, h)
	}}
}

func (f *Fixture) sm2Derive() Primitive {
	point := append([]byte{4}, f.SM2.PublicKey.X.FillBytes(make([]byte, 32))...)
	point = append(point, f.SM2.PublicKey.Y.FillBytes(make([]byte, 32))...)
	return Primitive{"token SM2 ECDH (C_DeriveKey, session object)", func(ctx context.Context) error {
		z, err := f.Tok.DeriveECDH1(ctx, f.wrapSM2Priv, point, 32)
		clear(z)
		return err
	}}
}

// sessionKey is the host paths' token step: C_CreateObject of the
// imported value as a session key, destroyed after.
func (f *Fixture) sessionKey() Primitive {
	value := make([]byte, 32)
	return Primitive{"token C_CreateObject (session AES key)", func(ctx context.Context) error {
		h, err := f.Tok.CreateSecretKey(ctx, pkcs11.CKK_AES, value, hsm.SecretKeyOptions{Ephemeral: true, Usage: hsm.UsageEncrypt | hsm.UsageDecrypt})
		if err != nil {
			return err
		}
		return f.Tok.DestroySessionObject(ctx, h)
	}}
}

// importOnce imports exported as a session key under a fresh label, then
// deletes it (a use-once key: the token does not grow during the run).
func (f *Fixture) importOnce(ctx context.Context, wrapping, alg, exported string) error {
	label := fmt.Sprintf("p11kms-bench-dk-%d", f.labels.Add(1))
	if _, err := f.Imp.ImportDataKey(ctx, &importer.ImportDataKeyRequest{WrappingKeyLabel: wrapping, WrappingAlgorithm: alg,
		ExportedDataKey: exported, KeyLabel: label, Ephemeral: true}); err != nil {
		return err
	}
	_, err := f.Imp.DeleteKey(ctx, &importer.DeleteKeyRequest{KeyLabel: label})
	return err
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
		"ImportDataKey-RSA": {Name: "ImportDataKey RSA-2048 OAEP-SHA-1 (session)", Run: func(ctx context.Context) error {
			return f.importOnce(ctx, f.wrapRSA, "RSAES_OAEP_SHA_1", f.exportedRSA)
		}, Primitives: []Primitive{f.rsaUnwrap()}},
		"ImportDataKey-SM2": {Name: "ImportDataKey SM2PKE (session)", Run: func(ctx context.Context) error {
			return f.importOnce(ctx, f.wrapSM2, "SM2PKE", f.exportedSM2)
		}, Primitives: []Primitive{f.sm2Derive(), f.sessionKey()}},
	}
}

// OpNames lists the in-process operations in a stable order.
var OpNames = []string{"GenerateDataKey", "GenerateAndExportDataKey-RSA", "GenerateAndExportDataKey-SM2", "Decrypt",
	"ImportDataKey-RSA", "ImportDataKey-SM2"}

// Prefill creates CMKs until the token holds n keys (for lookup-flatness runs).
func Prefill(ctx context.Context, kms *provider.Service, n int, progress func(int)) error {
	l, err := kms.ListKeys(ctx, &provider.ListKeysRequest{PageSize: new(1)})
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
