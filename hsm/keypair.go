package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/emmansun/gmsm/sm2"
	"github.com/miekg/pkcs11"
)

// KeyPairType names the key pairs p11kms generates.
type KeyPairType int

// Key pair types.
const (
	RSA KeyPairType = iota + 1
	SM2
)

// OIDSM2Curve is the SM2 curve, 1.2.156.10197.1.301 (GM/T 0006).
var OIDSM2Curve = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}

// KeyPairOptions describes a key pair to generate in the token. The private
// half is sensitive and non-extractable; an RSA private key may decrypt and
// unwrap, an SM2 private key may derive (ECDH1).
type KeyPairOptions struct {
	Type      KeyPairType
	Bits      int    // RSA: 2048, 3072 or 4096
	ID        []byte // CKA_ID of both halves; random 16 bytes if empty
	Label     string // CKA_LABEL of both halves
	Ephemeral bool   // session objects
}

// KeyPair is a generated or found key pair.
type KeyPair struct {
	Public, Private ObjectHandle
}

// GenerateKeyPair generates an RSA or SM2-curve key pair in the token.
func (t *Token) GenerateKeyPair(ctx context.Context, opt KeyPairOptions) (KeyPair, error) {
	common := func() []*pkcs11.Attribute {
		return []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, !opt.Ephemeral), attr(pkcs11.CKA_ID, opt.ID), attr(pkcs11.CKA_LABEL, opt.Label)}
	}
	var mech *pkcs11.Mechanism
	var pub, priv []*pkcs11.Attribute
	switch opt.Type {
	case RSA:
		if opt.Bits != 2048 && opt.Bits != 3072 && opt.Bits != 4096 {
			return KeyPair{}, fmt.Errorf("hsm: RSA key of %d bits: accepted 2048, 3072, 4096", opt.Bits)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)
		pub = []*pkcs11.Attribute{attr(pkcs11.CKA_MODULUS_BITS, opt.Bits), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			attr(pkcs11.CKA_ENCRYPT, true), attr(pkcs11.CKA_WRAP, true), attr(pkcs11.CKA_VERIFY, false)}
		priv = []*pkcs11.Attribute{attr(pkcs11.CKA_DECRYPT, true), attr(pkcs11.CKA_UNWRAP, true), attr(pkcs11.CKA_SIGN, false)}
	case SM2:
		params, _ := asn1.Marshal(OIDSM2Curve)
		mech = pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)
		pub = []*pkcs11.Attribute{attr(pkcs11.CKA_EC_PARAMS, params), attr(pkcs11.CKA_VERIFY, false)}
		priv = []*pkcs11.Attribute{attr(pkcs11.CKA_DERIVE, true), attr(pkcs11.CKA_SIGN, false)}
	default:
		return KeyPair{}, errors.New("hsm: GenerateKeyPair: type must be RSA or SM2")
	}
	if len(opt.ID) == 0 {
		id, err := t.Random(ctx, 16)
		if err != nil {
			return KeyPair{}, err
		}
		opt.ID = id
	}
	pubT := template(append(pub, common()...), attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_PRIVATE, false))
	privT := template(append(priv, common()...), attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_SENSITIVE, true), attr(pkcs11.CKA_EXTRACTABLE, false))
	var kp KeyPair
	_, err := t.create(ctx, !opt.Ephemeral, []*pkcs11.Attribute{attr(pkcs11.CKA_ID, opt.ID), attr(pkcs11.CKA_LABEL, opt.Label)},
		func(s *Session) (ObjectHandle, error) {
			p, q, err := t.api.GenerateKeyPair(s.handle, []*pkcs11.Mechanism{mech}, pubT, privT)
			kp = KeyPair{Public: p, Private: q}
			return q, ckr("C_GenerateKeyPair", err)
		})
	return kp, err
}

// FindKeyPair finds the public and private key labelled label.
func (t *Token) FindKeyPair(ctx context.Context, label string) (KeyPair, error) {
	pub, err := t.FindKeyByLabel(ctx, pkcs11.CKO_PUBLIC_KEY, label)
	if err != nil {
		return KeyPair{}, err
	}
	priv, err := t.FindKeyByLabel(ctx, pkcs11.CKO_PRIVATE_KEY, label)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Public: pub, Private: priv}, nil
}

// PublicKey reads a public key object as a Go key: *rsa.PublicKey, or an
// *ecdsa.PublicKey on gmsm's sm2.P256() for an SM2-curve key. The point is
// checked to be on the curve.
func (t *Token) PublicKey(ctx context.Context, pub ObjectHandle) (crypto.PublicKey, error) {
	kt, err := t.ULongAttribute(ctx, pub, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		return nil, err
	}
	switch kt {
	case pkcs11.CKK_RSA:
		a, err := t.Attributes(ctx, pub, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return nil, err
		}
		e := new(big.Int).SetBytes(a[pkcs11.CKA_PUBLIC_EXPONENT])
		if !e.IsInt64() || e.Int64() > 1<<31 {
			return nil, errors.New("hsm: RSA public exponent out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS]), E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		a, err := t.Attributes(ctx, pub, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
		if err != nil {
			return nil, err
		}
		var oid asn1.ObjectIdentifier
		if rest, err := asn1.Unmarshal(a[pkcs11.CKA_EC_PARAMS], &oid); err != nil || len(rest) > 0 || !oid.Equal(OIDSM2Curve) {
			return nil, fmt.Errorf("hsm: EC key is not on the SM2 curve (params %x)", a[pkcs11.CKA_EC_PARAMS])
		}
		return sm2PointToKey(a[pkcs11.CKA_EC_POINT])
	}
	return nil, fmt.Errorf("hsm: public key of type %#x: accepted CKK_RSA, CKK_EC", kt)
}

// sm2PointToKey decodes CKA_EC_POINT (DER OCTET STRING holding 04‖x‖y, or
// the raw point) into a key on the SM2 curve.
func sm2PointToKey(point []byte) (*ecdsa.PublicKey, error) {
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
		raw = point
	}
	curve := sm2.P256()
	if len(raw) != 65 || raw[0] != 4 {
		return nil, fmt.Errorf("hsm: SM2 point of %d bytes: expected 65-byte uncompressed point", len(raw))
	}
	x, y := new(big.Int).SetBytes(raw[1:33]), new(big.Int).SetBytes(raw[33:])
	if !curve.IsOnCurve(x, y) {
		return nil, errors.New("hsm: SM2 point is not on the curve")
	}
	return &ecdsa.PublicKey{Curve: curve, X: x, Y: y}, nil
}
