package hsm

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// RSAMechanism names an RSA encryption scheme for unwrap and decryption.
type RSAMechanism struct {
	Kind RSAKind
	Hash crypto.Hash // OAEP: SHA1 or SHA256 (MGF1 with the same hash, empty label)
}

// RSAKind is an RSA encryption scheme.
type RSAKind int

// RSA schemes.
const (
	RSAOAEP RSAKind = iota + 1
	RSAPKCS1v15
	RSARaw // CKM_RSA_X_509
)

// String describes the mechanism and its parameters.
func (m RSAMechanism) String() string {
	switch m.Kind {
	case RSAOAEP:
		return "CKM_RSA_PKCS_OAEP(" + m.Hash.String() + ")"
	case RSAPKCS1v15:
		return "CKM_RSA_PKCS"
	case RSARaw:
		return "CKM_RSA_X_509"
	}
	return "unknown RSA mechanism"
}

func (m RSAMechanism) mechanism() (*pkcs11.Mechanism, error) {
	switch m.Kind {
	case RSAOAEP:
		var h, mgf uint
		switch m.Hash {
		case crypto.SHA1:
			h, mgf = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
		case crypto.SHA256:
			h, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
		default:
			return nil, fmt.Errorf("hsm: OAEP hash %v: accepted SHA-1, SHA-256", m.Hash)
		}
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(h, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil)), nil
	case RSAPKCS1v15:
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), nil
	case RSARaw:
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil), nil
	}
	return nil, errors.New("hsm: unknown RSA mechanism")
}

// isMechanismRefusal reports whether err is the token refusing a mechanism
// or its parameters (SoftHSM 2.6.1 answers OAEP-SHA-256 with CKR_ARGUMENTS_BAD).
func isMechanismRefusal(err error) bool {
	return IsCode(err, pkcs11.CKR_ARGUMENTS_BAD, pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID)
}

// SupportsRSA reports whether the token accepts mech with the RSA key pair
// kp: it starts an encryption with the public half and completes it on one
// byte. The answer is cached per token and mechanism.
func (t *Token) SupportsRSA(ctx context.Context, kp KeyPair, mech RSAMechanism) (bool, error) {
	key := mech.String()
	t.probeMu.Lock()
	v, ok := t.probes[key]
	t.probeMu.Unlock()
	if ok {
		return v, nil
	}
	m, err := mech.mechanism()
	if err != nil {
		return false, err
	}
	err = do(ctx, t, func(s *Session) error {
		if err := t.api.EncryptInit(s.handle, []*pkcs11.Mechanism{m}, kp.Public); err != nil {
			return ckr("C_EncryptInit("+key+")", err)
		}
		_, err := t.api.Encrypt(s.handle, []byte{0})
		return ckr("C_Encrypt("+key+")", err)
	})
	switch {
	case err == nil:
		v = true
	case isMechanismRefusal(err):
		v = false
	default:
		return false, err
	}
	t.probeMu.Lock()
	t.probes[key] = v
	t.probeMu.Unlock()
	return v, nil
}

// UnwrapRSA unwraps wrapped with the RSA private key into a new secret key
// of valueLen bytes (C_UnwrapKey): the plaintext never leaves the token.
// It is [Token.UnwrapRSAAnyLength] plus a length check where the token
// reports the length; where it does not (SoftHSM2 2.6.1), the caller
// verifies the key in the token ([Token.KCV]).
func (t *Token) UnwrapRSA(ctx context.Context, priv ObjectHandle, mech RSAMechanism, wrapped []byte, keyType uint, valueLen int, opt SecretKeyOptions) (ObjectHandle, error) {
	if err := checkSecretLen(keyType, valueLen); err != nil {
		return 0, err
	}
	h, n, err := t.UnwrapRSAAnyLength(ctx, priv, mech, wrapped, keyType, opt)
	if err != nil {
		return 0, err
	}
	if n != 0 && n != valueLen {
		_ = t.DestroyObject(context.WithoutCancel(ctx), h)
		return 0, fmt.Errorf("%w (unwrapped key is %d bytes, expected %d)", ErrDecryption, n, valueLen)
	}
	return h, nil
}

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
	h, err := t.create(ctx, !opt.Ephemeral, opt.identity(), func(s *Session) (ObjectHandle, error) {
		h, err := t.api.UnwrapKey(s.handle, []*pkcs11.Mechanism{m}, priv, wrapped, tmpl)
		return h, ckr("C_UnwrapKey("+mech.String()+")", err)
	})
	if err != nil {
		if isMechanismRefusal(err) {
			return 0, 0, fmt.Errorf("%w: %s: %w", ErrMechanismUnsupported, mech, err)
		}
		if isUnwrapFailure(err) {
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

func isUnwrapFailure(err error) bool {
	return IsCode(err, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR,
		pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_KEY_SIZE_RANGE,
		pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE)
}

// DecryptRSA decrypts ciphertext with the RSA private key in the token
// (C_Decrypt). With RSARaw (CKM_RSA_X_509) the result is the raw block
// m = c^d mod n, left-padded to the modulus size, for a host-side decode.
// Every decryption failure is ErrDecryption.
func (t *Token) DecryptRSA(ctx context.Context, priv ObjectHandle, mech RSAMechanism, ciphertext []byte) ([]byte, error) {
	m, err := mech.mechanism()
	if err != nil {
		return nil, err
	}
	out, err := Do(ctx, t, func(s *Session) ([]byte, error) {
		if err := t.api.DecryptInit(s.handle, []*pkcs11.Mechanism{m}, priv); err != nil {
			return nil, ckr("C_DecryptInit("+mech.String()+")", err)
		}
		pt, err := t.api.Decrypt(s.handle, ciphertext)
		return pt, ckr("C_Decrypt("+mech.String()+")", err)
	})
	if err != nil {
		if isMechanismRefusal(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrMechanismUnsupported, mech, err)
		}
		if isUnwrapFailure(err) {
			return nil, ErrDecryption
		}
		return nil, err
	}
	return out, nil
}

// DeriveECDH1 runs CKM_ECDH1_DERIVE (CKD_NULL) with the EC private key and
// the peer's public point (65-byte 04‖x‖y) and returns the shared secret's
// x-coordinate (byteLen bytes). The private key never leaves the token; the
// derived value is a short-lived session object destroyed before returning.
// The caller must zero the result.
//
// The derived object is made public (CKA_PRIVATE false): it is extractable
// and read out at once, and a session object is visible to this process
// only, so privacy adds nothing but SoftHSM2 encrypting the value on
// creation and decrypting it on the read, two calls into OpenSSL 3.0 whose
// locks the other threads of the process contend on (+13 % ECDH derives per
// second on the SM2 curve, p11kms bench, 2026-11-24). A token whose policy
// refuses public objects gets a private one from then on.
func (t *Token) DeriveECDH1(ctx context.Context, priv ObjectHandle, peerPoint []byte, byteLen int) ([]byte, error) {
	if len(peerPoint) != 65 || peerPoint[0] != 4 {
		return nil, fmt.Errorf("hsm: DeriveECDH1: peer point of %d bytes: expected 65-byte uncompressed point", len(peerPoint))
	}
	if byteLen <= 0 || byteLen > 66 {
		return nil, fmt.Errorf("hsm: DeriveECDH1: length %d out of range", byteLen)
	}
	params := pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peerPoint)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, params)}
	template := func(private bool) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			attr(pkcs11.CKA_TOKEN, false), attr(pkcs11.CKA_PRIVATE, private),
			attr(pkcs11.CKA_SENSITIVE, false), attr(pkcs11.CKA_EXTRACTABLE, true),
			attr(pkcs11.CKA_VALUE_LEN, byteLen),
		}
	}
	return Do(ctx, t, func(s *Session) ([]byte, error) {
		private := t.derivePrivate.Load()
		h, err := t.api.DeriveKey(s.handle, mech, priv, template(private))
		if err != nil && !private && isTemplateRefusal(err) {
			t.derivePrivate.Store(true)
			h, err = t.api.DeriveKey(s.handle, mech, priv, template(true))
		}
		if err != nil {
			return nil, ckr("C_DeriveKey(CKM_ECDH1_DERIVE)", err)
		}
		defer func() {
			// The secret must not stay in the token: if it cannot be
			// destroyed, closing the session destroys it.
			if t.api.DestroyObject(s.handle, h) != nil {
				s.discard = true
			}
		}()
		a, err := t.api.GetAttributeValue(s.handle, h, []*pkcs11.Attribute{attr(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return nil, ckr("C_GetAttributeValue(derived)", err)
		}
		if len(a[0].Value) != byteLen {
			clear(a[0].Value)
			return nil, fmt.Errorf("hsm: C_DeriveKey returned %d bytes, asked %d", len(a[0].Value), byteLen)
		}
		return a[0].Value, nil
	})
}

// isTemplateRefusal reports whether err is the token refusing a template
// (an attribute value its policy does not allow).
func isTemplateRefusal(err error) bool {
	return IsCode(err, pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_ATTRIBUTE_READ_ONLY)
}

// KCV computes an AES key's check value in the token: the first 3 bytes of
// AES-ECB(key, 0¹⁶), as PKCS#11 3.0 defines CKA_CHECK_VALUE. The key must
// allow CKA_ENCRYPT. A key that is not a valid AES key fails with ErrDecryption.
func (t *Token) KCV(ctx context.Context, key ObjectHandle) ([]byte, error) {
	out, err := Do(ctx, t, func(s *Session) ([]byte, error) {
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}
		if err := t.api.EncryptInit(s.handle, mech, key); err != nil {
			return nil, ckr("C_EncryptInit(CKM_AES_ECB)", err)
		}
		b, err := t.api.Encrypt(s.handle, make([]byte, 16))
		return b, ckr("C_Encrypt(CKM_AES_ECB)", err)
	})
	if err != nil {
		if IsCode(err, pkcs11.CKR_KEY_SIZE_RANGE, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_MECHANISM_INVALID) {
			return nil, fmt.Errorf("%w: not a valid AES key (%w)", ErrDecryption, err)
		}
		return nil, err
	}
	if len(out) != 16 {
		return nil, fmt.Errorf("hsm: C_Encrypt(CKM_AES_ECB) returned %d bytes", len(out))
	}
	return out[:3], nil
}

// CopyObject copies an object with the template's attributes changed
// (C_CopyObject), e.g. a session key into a token key with a label and ID.
// Unless changes set CKA_TOKEN to false the copy counts as persistent.
func (t *Token) CopyObject(ctx context.Context, h ObjectHandle, changes []*pkcs11.Attribute, identity []*pkcs11.Attribute) (ObjectHandle, error) {
	persistent := true
	for _, a := range changes {
		if a.Type == pkcs11.CKA_TOKEN && len(a.Value) == 1 && a.Value[0] == 0 {
			persistent = false
		}
	}
	// A copy looks like its source until its template is applied
	// ([Token.excludingSearches]); a persistent one is excluded by create.
	copyFn := func(s *Session) (ObjectHandle, error) {
		c, err := t.api.CopyObject(s.handle, h, changes)
		return c, ckr("C_CopyObject", err)
	}
	if !persistent {
		copyFn = t.excludingSearches(copyFn)
	}
	return t.create(ctx, persistent, identity, copyFn)
}
