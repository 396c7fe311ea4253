package hsm

import (
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// This file holds what provider/importer needs beyond the rest of the
// package. It only adds; it changes nothing above.

// UnwrapRSAAnyLength is [Token.UnwrapRSA] for a receiver that does not know
// the key length in advance: CKA_VALUE_LEN is left out of the template, so
// the key takes the plaintext's length. (SoftHSM2 2.6.1 refuses
// CKA_VALUE_LEN in an unwrap template with CKR_ATTRIBUTE_READ_ONLY for AES
// and generic secret keys alike.)
//
// It returns the key length the token reports, or 0 when the token does
// not say: SoftHSM2 2.6.1 reports 0 for every unwrapped key, so there the
// caller must check the key in the token ([Token.KCV] fails on an AES key
// that is not 16, 24 or 32 bytes; a generic secret cannot be checked).
// A reported length that keyType does not allow is ErrDecryption and leaves
// no object. A refused mechanism wraps ErrMechanismUnsupported; every
// failure to decrypt is ErrDecryption and leaves no object behind.
func (t *Token) UnwrapRSAAnyLength(ctx context.Context, priv ObjectHandle, mech RSAMechanism, wrapped []byte, keyType uint, opt SecretKeyOptions) (ObjectHandle, int, error) {
	if mech.Kind == RSARaw {
		return 0, 0, fmt.Errorf("hsm: UnwrapRSAAnyLength: CKM_RSA_X_509 cannot unwrap a key")
	}
	if keyType != pkcs11.CKK_AES && keyType != pkcs11.CKK_GENERIC_SECRET {
		return 0, 0, fmt.Errorf("hsm: key type %#x: accepted CKK_AES, CKK_GENERIC_SECRET", keyType)
	}
	m, err := mech.mechanism()
	if err != nil {
		return 0, 0, err
	}
	if err := opt.ensureID(ctx, t); err != nil {
		return 0, 0, err
	}
	tmpl := opt.secretTemplate(keyType, 0)
	h, err := t.create(ctx, opt.identity(), func(s *Session) (ObjectHandle, error) {
		h, err := t.api.UnwrapKey(s.handle, []*pkcs11.Mechanism{m}, priv, wrapped, tmpl)
		return h, ckr("C_UnwrapKey("+mech.String()+")", err)
	})
	if err != nil {
		if isMechanismRefusal(err) {
			return 0, 0, fmt.Errorf("%w: %s: %w", ErrMechanismUnsupported, mech, err)
		}
		if isUnwrapFailure(err) || IsCode(err, pkcs11.CKR_DATA_INVALID) || IsCode(err, pkcs11.CKR_DATA_LEN_RANGE) {
			return 0, 0, fmt.Errorf("%w (%w)", ErrDecryption, err)
		}
		return 0, 0, err
	}
	n, err := t.ULongAttribute(ctx, h, pkcs11.CKA_VALUE_LEN)
	if err == nil && n != 0 {
		err = checkSecretLen(keyType, int(n))
		if err != nil {
			err = fmt.Errorf("%w (%w)", ErrDecryption, err)
		}
	}
	if err != nil {
		_ = t.DestroyObject(context.WithoutCancel(ctx), h)
		return 0, 0, err
	}
	return h, int(n), nil
}
