package hsm

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// Curve names the elliptic curves of asymmetric CMKs.
type Curve int

// The curves.
const (
	CurveP256      Curve = iota + 1 // NIST P-256 (secp256r1)
	CurveSecp256k1                  // secp256k1
	CurveSM2                        // the SM2 curve (GM/T 0006)
)

// The curves' OIDs, as CKA_EC_PARAMS names them.
var (
	OIDP256      = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	OIDSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidECPublic  = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// curveDef holds a curve's OID and its parameters for validating points
// and signatures: y² = x³ + a·x + b over GF(p), of order n.
type curveDef struct {
	name    string
	oid     asn1.ObjectIdentifier
	p, a, b *big.Int
	n       *big.Int
}

func hexInt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("hsm: bad curve constant " + s)
	}
	return v
}

// curves holds the published domain parameters (SEC 2, FIPS 186-4,
// GB/T 32918.5).
var curves = map[Curve]curveDef{
	CurveP256: {name: "P-256", oid: OIDP256,
		p: hexInt("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
		a: hexInt("ffffffff00000001000000000000000000000000fffffffffffffffffffffffc"),
		b: hexInt("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
		n: hexInt("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")},
	CurveSecp256k1: {name: "secp256k1", oid: OIDSecp256k1,
		p: hexInt("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f"),
		a: big.NewInt(0), b: big.NewInt(7),
		n: hexInt("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")},
	CurveSM2: {name: "SM2", oid: OIDSM2Curve,
		p: hexInt("fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff"),
		a: hexInt("fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc"),
		b: hexInt("28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93"),
		n: hexInt("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123")},
}

// String names the curve.
func (c Curve) String() string {
	if d, ok := curves[c]; ok {
		return d.name
	}
	return fmt.Sprintf("Curve(%d)", int(c))
}

// onCurve reports whether (x, y) is a point of the curve (not infinity,
// coordinates reduced).
func (d curveDef) onCurve(x, y *big.Int) bool {
	if x.Sign() < 0 || y.Sign() < 0 || x.Cmp(d.p) >= 0 || y.Cmp(d.p) >= 0 {
		return false
	}
	lhs := new(big.Int).Mul(y, y)
	lhs.Mod(lhs, d.p)
	rhs := new(big.Int).Mul(x, x)
	rhs.Add(rhs, d.a)
	rhs.Mul(rhs, x)
	rhs.Add(rhs, d.b)
	rhs.Mod(rhs, d.p)
	return lhs.Cmp(rhs) == 0
}

// CMKKeyPairOptions describes an asymmetric CMK version's key pair. Both
// halves are token objects; the private half is sensitive, never
// extractable, and may do one job: decrypt (RSA: CKA_DECRYPT; SM2:
// CKA_DERIVE, for the ECDH step of SM2 decryption) or sign (CKA_SIGN).
type CMKKeyPairOptions struct {
	Bits  int   // RSA: 2048, 3072 or 4096; 0 for an EC key
	Curve Curve // EC: the curve; 0 for an RSA key
	Sign  bool  // a signing key (else a decryption key)
	ID    []byte
	Label string
}

// GenerateCMKKeyPair generates an asymmetric CMK version's key pair in the
// token. A curve the token does not know wraps ErrMechanismUnsupported and
// names the curve.
func (t *Token) GenerateCMKKeyPair(ctx context.Context, opt CMKKeyPairOptions) (KeyPair, error) {
	var mech *pkcs11.Mechanism
	var pub, priv []*pkcs11.Attribute
	switch {
	case opt.Bits != 0:
		if opt.Bits != 2048 && opt.Bits != 3072 && opt.Bits != 4096 {
			return KeyPair{}, fmt.Errorf("hsm: RSA key of %d bits: accepted 2048, 3072, 4096", opt.Bits)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)
		pub = []*pkcs11.Attribute{attr(pkcs11.CKA_MODULUS_BITS, opt.Bits), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			attr(pkcs11.CKA_ENCRYPT, !opt.Sign), attr(pkcs11.CKA_WRAP, false), attr(pkcs11.CKA_VERIFY, opt.Sign)}
		priv = []*pkcs11.Attribute{attr(pkcs11.CKA_DECRYPT, !opt.Sign), attr(pkcs11.CKA_UNWRAP, false), attr(pkcs11.CKA_SIGN, opt.Sign)}
	default:
		d, ok := curves[opt.Curve]
		if !ok {
			return KeyPair{}, errors.New("hsm: GenerateCMKKeyPair: set Bits or a known Curve")
		}
		params, _ := asn1.Marshal(d.oid)
		mech = pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)
		pub = []*pkcs11.Attribute{attr(pkcs11.CKA_EC_PARAMS, params), attr(pkcs11.CKA_VERIFY, opt.Sign)}
		priv = []*pkcs11.Attribute{attr(pkcs11.CKA_DERIVE, !opt.Sign), attr(pkcs11.CKA_SIGN, opt.Sign)}
	}
	common := []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_ID, opt.ID), attr(pkcs11.CKA_LABEL, opt.Label)}
	pubT := template(append(pub, common...), attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_PRIVATE, false))
	privT := template(append(priv, common...), attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_SENSITIVE, true), attr(pkcs11.CKA_EXTRACTABLE, false))
	var kp KeyPair
	_, err := t.create(ctx, true, []*pkcs11.Attribute{attr(pkcs11.CKA_ID, opt.ID), attr(pkcs11.CKA_LABEL, opt.Label)},
		func(s *Session) (ObjectHandle, error) {
			p, q, err := t.api.GenerateKeyPair(s.handle, []*pkcs11.Mechanism{mech}, pubT, privT)
			kp = KeyPair{Public: p, Private: q}
			return q, ckr("C_GenerateKeyPair", err)
		})
	if err != nil && opt.Curve != 0 && IsCode(err, pkcs11.CKR_CURVE_NOT_SUPPORTED, pkcs11.CKR_DOMAIN_PARAMS_INVALID,
		pkcs11.CKR_ATTRIBUTE_VALUE_INVALID, pkcs11.CKR_TEMPLATE_INCONSISTENT, pkcs11.CKR_MECHANISM_INVALID) {
		return KeyPair{}, fmt.Errorf("%w: the token cannot generate %s keys (%w)", ErrMechanismUnsupported, opt.Curve, err)
	}
	return kp, err
}

// FindKeyPairByID finds the public and private key objects with CKA_ID id.
func (t *Token) FindKeyPairByID(ctx context.Context, id []byte) (KeyPair, error) {
	pub, err := t.findOne(ctx, "public key", []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), attr(pkcs11.CKA_ID, id)})
	if err != nil {
		return KeyPair{}, err
	}
	priv, err := t.findOne(ctx, "private key", []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), attr(pkcs11.CKA_ID, id)})
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Public: pub, Private: priv}, nil
}

// ObjectsByID returns every token object, of any class, with CKA_ID id.
func (t *Token) ObjectsByID(ctx context.Context, id []byte) ([]ObjectHandle, error) {
	return t.FindObjects(ctx, []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_ID, id)})
}

// ECPublicKey is an EC public key read from the token, checked to be on
// its curve.
type ECPublicKey struct {
	Curve Curve
	Point []byte // 65 bytes, 04‖x‖y
}

// ReadECPublicKey reads an EC public key object on one of the known curves.
func (t *Token) ReadECPublicKey(ctx context.Context, pub ObjectHandle) (*ECPublicKey, error) {
	a, err := t.Attributes(ctx, pub, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(a[pkcs11.CKA_EC_PARAMS], &oid); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("hsm: EC params %x are not a named curve", a[pkcs11.CKA_EC_PARAMS])
	}
	for c, d := range curves {
		if !d.oid.Equal(oid) {
			continue
		}
		var raw []byte
		if rest, err := asn1.Unmarshal(a[pkcs11.CKA_EC_POINT], &raw); err != nil || len(rest) > 0 {
			raw = a[pkcs11.CKA_EC_POINT]
		}
		if len(raw) != 65 || raw[0] != 4 {
			return nil, fmt.Errorf("hsm: %s point of %d bytes: expected a 65-byte uncompressed point", d.name, len(raw))
		}
		if !d.onCurve(new(big.Int).SetBytes(raw[1:33]), new(big.Int).SetBytes(raw[33:])) {
			return nil, fmt.Errorf("hsm: %s point is not on the curve", d.name)
		}
		return &ECPublicKey{Curve: c, Point: raw}, nil
	}
	return nil, fmt.Errorf("hsm: EC key on curve %s: accepted P-256, secp256k1, SM2", oid)
}

// MarshalPKIX is the key's SubjectPublicKeyInfo (RFC 5480: id-ecPublicKey
// with the named curve), as DER.
func (k *ECPublicKey) MarshalPKIX() ([]byte, error) {
	params, err := asn1.Marshal(curves[k.Curve].oid)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublic, Parameters: asn1.RawValue{FullBytes: params}},
		PublicKey: asn1.BitString{Bytes: k.Point, BitLength: 8 * len(k.Point)},
	})
}
