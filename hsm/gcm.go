package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// AES-GCM parameters p11kms always uses.
const (
	GCMIVSize  = 12
	GCMTagSize = 16
)

// checkGCM enforces what SoftHSM2 does not: a 12-byte IV, a 128-bit tag and
// non-empty AAD (SoftHSM 2.6.1 may crash on empty AAD).
func checkGCM(op string, iv, aad []byte) error {
	if len(iv) != GCMIVSize {
		return fmt.Errorf("hsm: %s: IV of %d bytes: must be %d", op, len(iv), GCMIVSize)
	}
	if len(aad) == 0 {
		return fmt.Errorf("hsm: %s: AAD must not be empty", op)
	}
	return nil
}

// EncryptGCM encrypts plaintext under the AES key with CKM_AES_GCM in the
// token and returns ciphertext ‖ 16-byte tag.
func (t *Token) EncryptGCM(ctx context.Context, key ObjectHandle, iv, plaintext, aad []byte) ([]byte, error) {
	if err := checkGCM("EncryptGCM", iv, aad); err != nil {
		return nil, err
	}
	if len(plaintext) == 0 {
		return nil, errors.New("hsm: EncryptGCM: plaintext must not be empty")
	}
	return Do(ctx, t, func(s *Session) ([]byte, error) {
		params := pkcs11.NewGCMParams(iv, aad, GCMTagSize*8)
		defer params.Free()
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
		if err := t.api.EncryptInit(s.handle, mech, key); err != nil {
			return nil, ckr("C_EncryptInit(CKM_AES_GCM)", err)
		}
		out, err := t.api.Encrypt(s.handle, plaintext)
		if err != nil {
			return nil, ckr("C_Encrypt(CKM_AES_GCM)", err)
		}
		if len(out) != len(plaintext)+GCMTagSize {
			return nil, fmt.Errorf("hsm: C_Encrypt(CKM_AES_GCM) returned %d bytes for %d", len(out), len(plaintext))
		}
		return out, nil
	})
}

// DecryptGCM decrypts ciphertext ‖ tag under the AES key with CKM_AES_GCM in
// the token. Any authentication failure (wrong key, IV, AAD or tag; SoftHSM
// reports a bad tag as CKR_GENERAL_ERROR) is ErrDecryption.
func (t *Token) DecryptGCM(ctx context.Context, key ObjectHandle, iv, sealed, aad []byte) ([]byte, error) {
	if err := checkGCM("DecryptGCM", iv, aad); err != nil {
		return nil, err
	}
	if len(sealed) <= GCMTagSize {
		return nil, ErrDecryption
	}
	out, err := Do(ctx, t, func(s *Session) ([]byte, error) {
		params := pkcs11.NewGCMParams(iv, aad, GCMTagSize*8)
		defer params.Free()
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
		if err := t.api.DecryptInit(s.handle, mech, key); err != nil {
			return nil, ckr("C_DecryptInit(CKM_AES_GCM)", err)
		}
		pt, err := t.api.Decrypt(s.handle, sealed)
		return pt, ckr("C_Decrypt(CKM_AES_GCM)", err)
	})
	if err != nil {
		if isAuthFailure(err) {
			return nil, ErrDecryption
		}
		return nil, err
	}
	return out, nil
}

func isAuthFailure(err error) bool {
	return IsCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_ENCRYPTED_DATA_INVALID,
		pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, ckrAEADDecryptFailed)
}

// ckrAEADDecryptFailed is PKCS#11 3.0's CKR_AEAD_DECRYPT_FAILED.
const ckrAEADDecryptFailed = 0x00000035
