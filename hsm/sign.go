package hsm

import (
	"context"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// SignScheme is a signature scheme over a SHA-256 digest.
type SignScheme int

// The signature schemes.
const (
	// SignRSAPSS is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte
	// salt (CKM_RSA_PKCS_PSS over the digest).
	SignRSAPSS SignScheme = iota + 1
	// SignRSAPKCS1 is RSASSA-PKCS1-v1_5 with SHA-256 (CKM_RSA_PKCS over
	// the DigestInfo).
	SignRSAPKCS1
	// SignECDSA is ECDSA over the digest (CKM_ECDSA); signatures are DER
	// SEQUENCE{r INTEGER, s INTEGER}.
	SignECDSA
)

// DigestSize is the size of the SHA-256 digests the schemes sign.
const DigestSize = 32

// sha256DigestInfo is the DER DigestInfo prefix of a SHA-256 digest
// (RFC 8017, section 9.2, note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// ErrBadSignature is a signature that is malformed, or does not verify.
var ErrBadSignature = errors.New("hsm: the signature does not verify")

// signInput is the mechanism and the bytes the token signs for scheme.
func signInput(scheme SignScheme, digest []byte) (*pkcs11.Mechanism, []byte, error) {
	if len(digest) != DigestSize {
		return nil, nil, fmt.Errorf("hsm: digest of %d bytes: the schemes sign a %d-byte SHA-256 digest", len(digest), DigestSize)
	}
	switch scheme {
	case SignRSAPSS:
		params := pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, DigestSize)
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params), digest, nil
	case SignRSAPKCS1:
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), append(append([]byte(nil), sha256DigestInfo...), digest...), nil
	case SignECDSA:
		return pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest, nil
	}
	return nil, nil, errors.New("hsm: unknown signature scheme")
}

// SignDigest signs a SHA-256 digest with the private key in the token. An
// ECDSA signature (curve is the key's) is returned in DER.
func (t *Token) SignDigest(ctx context.Context, priv ObjectHandle, scheme SignScheme, curve Curve, digest []byte) ([]byte, error) {
	mech, in, err := signInput(scheme, digest)
	if err != nil {
		return nil, err
	}
	sig, err := Do(ctx, t, func(s *Session) ([]byte, error) {
		if err := t.api.SignInit(s.handle, []*pkcs11.Mechanism{mech}, priv); err != nil {
			return nil, ckr("C_SignInit", err)
		}
		sig, err := t.api.Sign(s.handle, in)
		return sig, ckr("C_Sign", err)
	})
	if err != nil {
		if isMechanismRefusal(err) {
			return nil, fmt.Errorf("%w: %w", ErrMechanismUnsupported, err)
		}
		return nil, err
	}
	if scheme != SignECDSA {
		return sig, nil
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("hsm: C_Sign(CKM_ECDSA) returned %d bytes, expected 64", len(sig))
	}
	return asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(sig[:32]), S: new(big.Int).SetBytes(sig[32:])})
}

type ecdsaSig struct{ R, S *big.Int }

// rawECDSA parses a strict DER ECDSA signature with 0 < r, s < n into the
// token's 64-byte r‖s form.
func rawECDSA(curve Curve, sig []byte) ([]byte, error) {
	d, ok := curves[curve]
	if !ok {
		return nil, errors.New("hsm: unknown curve")
	}
	var v ecdsaSig
	rest, err := asn1.Unmarshal(sig, &v)
	if err != nil || len(rest) > 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.Cmp(d.n) >= 0 || v.S.Cmp(d.n) >= 0 {
		return nil, ErrBadSignature
	}
	if again, _ := asn1.Marshal(v); string(again) != string(sig) { // BER is not DER
		return nil, ErrBadSignature
	}
	out := make([]byte, 64)
	v.R.FillBytes(out[:32])
	v.S.FillBytes(out[32:])
	return out, nil
}

// VerifyDigest checks a signature over a SHA-256 digest with the public
// key in the token. A signature that is malformed or does not verify is
// ErrBadSignature; any other error is the token's.
func (t *Token) VerifyDigest(ctx context.Context, pub ObjectHandle, scheme SignScheme, curve Curve, digest, sig []byte) error {
	mech, in, err := signInput(scheme, digest)
	if err != nil {
		return err
	}
	if scheme == SignECDSA {
		if sig, err = rawECDSA(curve, sig); err != nil {
			return err
		}
	}
	err = do(ctx, t, func(s *Session) error {
		if err := t.api.VerifyInit(s.handle, []*pkcs11.Mechanism{mech}, pub); err != nil {
			return ckr("C_VerifyInit", err)
		}
		return ckr("C_Verify", t.api.Verify(s.handle, in, sig))
	})
	if IsCode(err, pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE) {
		return ErrBadSignature
	}
	return err
}
