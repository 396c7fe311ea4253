package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// ErrNotAES256 is wrapped by AESKeyByLabel for a secret key that is not a
// 256-bit AES key.
var ErrNotAES256 = errors.New("hsm: not a 256-bit AES key")

// ErrExtractable is wrapped by AESKeyByLabel for a key that is extractable
// or not sensitive: its value could leave the token.
var ErrExtractable = errors.New("hsm: key is extractable or not sensitive")

// AESKey is a 256-bit, sensitive, non-extractable AES key of the token and
// the operations its attributes allow.
type AESKey struct {
	Handle ObjectHandle
	Label  string
	ID     []byte // CKA_ID
	Usage  Usage  // from CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP, CKA_SIGN, CKA_VERIFY
	Derive bool   // CKA_DERIVE
}

// AESKeyByLabel finds the secret key labelled label and checks that it is
// a 256-bit AES key that cannot leave the token (CKA_SENSITIVE true,
// CKA_EXTRACTABLE false): ErrNotFound, ErrAmbiguous, ErrNotAES256 or
// ErrExtractable (wrapped) otherwise.
func (t *Token) AESKeyByLabel(ctx context.Context, label string) (AESKey, error) {
	h, err := t.FindSecretKeyByLabel(ctx, label)
	if err != nil {
		return AESKey{}, err
	}
	a, err := t.Attributes(ctx, h, pkcs11.CKA_ID, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_SENSITIVE,
		pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT, pkcs11.CKA_WRAP, pkcs11.CKA_UNWRAP,
		pkcs11.CKA_SIGN, pkcs11.CKA_VERIFY, pkcs11.CKA_DERIVE)
	if err != nil {
		return AESKey{}, err
	}
	kt, err1 := decodeULong(a[pkcs11.CKA_KEY_TYPE])
	n, err2 := decodeULong(a[pkcs11.CKA_VALUE_LEN])
	if err1 != nil || err2 != nil || kt != pkcs11.CKK_AES || n != 32 {
		return AESKey{}, fmt.Errorf("%w: secret key labelled %q", ErrNotAES256, label)
	}
	on := func(typ uint) bool { v := a[typ]; return len(v) == 1 && v[0] != 0 }
	if !on(pkcs11.CKA_SENSITIVE) || on(pkcs11.CKA_EXTRACTABLE) {
		return AESKey{}, fmt.Errorf("%w: secret key labelled %q", ErrExtractable, label)
	}
	k := AESKey{Handle: h, Label: label, ID: a[pkcs11.CKA_ID], Derive: on(pkcs11.CKA_DERIVE)}
	for typ, u := range map[uint]Usage{pkcs11.CKA_ENCRYPT: UsageEncrypt, pkcs11.CKA_DECRYPT: UsageDecrypt,
		pkcs11.CKA_WRAP: UsageWrap, pkcs11.CKA_UNWRAP: UsageUnwrap, pkcs11.CKA_SIGN: UsageSign, pkcs11.CKA_VERIFY: UsageVerify} {
		if on(typ) {
			k.Usage |= u
		}
	}
	return k, nil
}

// Sealed is the output of SealGCM: the IV drawn from the token's RNG, the
// ciphertext (as long as the plaintext) and the 16-byte tag, apart.
type Sealed struct {
	IV, Ciphertext, Tag []byte
}

// SealGCM encrypts plaintext under the AES key with CKM_AES_GCM in the
// token, with a 12-byte IV drawn from the token's RNG (C_GenerateRandom),
// a 128-bit tag and aad (which must not be empty: SoftHSM 2.6.1 built with
// C++ assertions aborts on empty AAD, softhsm/SoftHSMv2#605).
func (t *Token) SealGCM(ctx context.Context, key ObjectHandle, plaintext, aad []byte) (Sealed, error) {
	iv, err := t.Random(ctx, GCMIVSize)
	if err != nil {
		return Sealed{}, err
	}
	out, err := t.EncryptGCM(ctx, key, iv, plaintext, aad)
	if err != nil {
		return Sealed{}, err
	}
	n := len(out) - GCMTagSize
	return Sealed{IV: iv, Ciphertext: out[:n:n], Tag: out[n:]}, nil
}

// OpenGCM decrypts what SealGCM made: any authentication failure (wrong
// key, IV, AAD, ciphertext or tag) is ErrDecryption, as is a tag that is
// not 16 bytes or an empty ciphertext. The caller must zero the plaintext
// after use.
func (t *Token) OpenGCM(ctx context.Context, key ObjectHandle, s Sealed, aad []byte) ([]byte, error) {
	if len(s.Tag) != GCMTagSize || len(s.Ciphertext) == 0 {
		return nil, ErrDecryption
	}
	joined := make([]byte, 0, len(s.Ciphertext)+GCMTagSize)
	joined = append(append(joined, s.Ciphertext...), s.Tag...)
	return t.DecryptGCM(ctx, key, s.IV, joined, aad)
}
