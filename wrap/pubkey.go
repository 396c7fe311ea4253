package wrap

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxPublicKeyInput bounds the size of a public key accepted in any form.
// An RSA-4096 SubjectPublicKeyInfo is about 550 bytes (740 in base64).
const maxPublicKeyInput = 16 << 10

// rsaExponent is the only RSA public exponent accepted.
const rsaExponent = 65537

var (
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidECPublicKey   = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	// oidSM2 is both the SM2 curve (as id-ecPublicKey parameters) and the
	// SM2 algorithm OID of the second SubjectPublicKeyInfo form.
	oidSM2 = asn1.ObjectIdentifier{1, 2, 156, 10197, 1, 301}
)

// knownOIDs names OIDs that show up in rejected keys, so that the error
// message can say what the key was rather than print bare numbers.
var knownOIDs = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}, "P-256"},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 34}, "P-384"},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 35}, "P-521"},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 10}, "secp256k1"},
	{asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}, "brainpoolP256r1"},
	{asn1.ObjectIdentifier{1, 3, 101, 110}, "X25519"},
	{asn1.ObjectIdentifier{1, 3, 101, 111}, "X448"},
	{asn1.ObjectIdentifier{1, 3, 101, 112}, "Ed25519"},
	{asn1.ObjectIdentifier{1, 3, 101, 113}, "Ed448"},
	{asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}, "DSA"},
	{asn1.ObjectIdentifier{1, 2, 840, 10046, 2, 1}, "Diffie-Hellman"},
	{oidRSAPSS, "RSASSA-PSS"},
}

func oidName(oid asn1.ObjectIdentifier) string {
	for _, k := range knownOIDs {
		if k.oid.Equal(oid) {
			return fmt.Sprintf("%s (%s)", k.name, oid)
		}
	}
	return oid.String()
}

const acceptedAlgorithms = "rsaEncryption (1.2.840.113549.1.1.1), " +
	"id-ecPublicKey (1.2.840.10045.2.1) with the SM2 curve (1.2.156.10197.1.301), " +
	"SM2 (1.2.156.10197.1.301)"

// ParsePublicKeyBlob parses an Alibaba-style PublicKeyBlob: a base64
// (standard alphabet, padded) DER SubjectPublicKeyInfo, and checks the key
// against spec (the request's WrappingKeySpec). RSA keys are returned as
// *rsa.PublicKey; SM2 keys as *ecdsa.PublicKey whose Curve is sm2.P256().
// Every failure is a *ParamError for FieldPublicKey (or FieldKeySpec
// when spec itself is unknown).
func ParsePublicKeyBlob(b64 string, spec KeySpec) (crypto.PublicKey, error) {
	const param = FieldPublicKey
	if err := checkSpecArg(spec); err != nil {
		return nil, err
	}
	s := strings.TrimSpace(b64)
	switch {
	case s == "":
		return nil, paramErr(param, "is empty")
	case len(s) > maxPublicKeyInput:
		return nil, paramErr(param, "is %d characters; at most %d accepted", len(s), maxPublicKeyInput)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, paramErr(param, "is not valid base64 (standard alphabet, padded): %v", err)
	}
	return parseCheckedSPKI(param, der, spec)
}

// ParsePublicKeyDER parses a DER SubjectPublicKeyInfo and checks the key
// against spec. Errors are *ParamError for FieldPublicKey.
func ParsePublicKeyDER(der []byte, spec KeySpec) (crypto.PublicKey, error) {
	if err := checkSpecArg(spec); err != nil {
		return nil, err
	}
	return parseCheckedSPKI(FieldPublicKey, der, spec)
}

// ParsePublicKeyPEM parses a Tencent-style EncryptionPublicKey: one PEM
// block of type "PUBLIC KEY" (SubjectPublicKeyInfo) or "RSA PUBLIC KEY"
// (PKCS#1), with nothing but white space around it. There is no spec
// parameter on that API, so the spec is inferred from the key: RSA with a
// 2048, 3072 or 4096-bit modulus, or SM2. Errors are *ParamError for
// FieldPublicKey.
func ParsePublicKeyPEM(pemText string) (crypto.PublicKey, KeySpec, error) {
	const param = FieldPublicKey
	if len(pemText) > maxPublicKeyInput {
		return nil, "", paramErr(param, "is %d characters; at most %d accepted", len(pemText), maxPublicKeyInput)
	}
	text := []byte(strings.TrimSpace(pemText))
	if len(text) == 0 {
		return nil, "", paramErr(param, "is empty")
	}
	if !bytes.HasPrefix(text, []byte("-----BEGIN ")) {
		return nil, "", paramErr(param, "is not PEM: expected it to start with -----BEGIN PUBLIC KEY-----")
	}
	block, rest := pem.Decode(text)
	if block == nil {
		return nil, "", paramErr(param, "is not a well-formed PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", paramErr(param, "has data after the PEM block; exactly one key is accepted")
	}
	if len(block.Headers) != 0 {
		return nil, "", paramErr(param, "PEM block has headers (encrypted or annotated PEM is not accepted)")
	}
	var (
		pub crypto.PublicKey
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = parseSPKI(param, block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = parsePKCS1(param, block.Bytes)
	default:
		return nil, "", paramErr(param, "PEM block type is %q; accepted: \"PUBLIC KEY\" (SubjectPublicKeyInfo), \"RSA PUBLIC KEY\" (PKCS#1)", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	spec, err := specOf(param, pub)
	if err != nil {
		return nil, "", err
	}
	return pub, spec, nil
}

// SpecOf returns the key spec of an acceptable public key: an
// *rsa.PublicKey with a 2048, 3072 or 4096-bit modulus and exponent 65537,
// or an *ecdsa.PublicKey on the SM2 curve. Anything else is a *ParamError
// for FieldPublicKey.
func SpecOf(pub crypto.PublicKey) (KeySpec, error) {
	return specOf(FieldPublicKey, pub)
}

// MarshalPublicKeyDER returns the DER SubjectPublicKeyInfo of an acceptable
// public key (see SpecOf). RSA keys use rsaEncryption; SM2 keys use
// id-ecPublicKey with the SM2 curve OID and an uncompressed point, which is
// what OpenSSL writes.
func MarshalPublicKeyDER(pub crypto.PublicKey) ([]byte, error) {
	spec, err := SpecOf(pub)
	if err != nil {
		return nil, err
	}
	if spec.IsRSA() {
		return x509.MarshalPKIXPublicKey(pub)
	}
	point := sm2PointBytes(pub.(*ecdsa.PublicKey))
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidECPublicKey)
			b.AddASN1ObjectIdentifier(oidSM2)
		})
		b.AddASN1BitString(point)
	})
	return b.Bytes()
}

// MarshalPublicKeyPEM returns MarshalPublicKeyDER as a "PUBLIC KEY" PEM block.
func MarshalPublicKeyPEM(pub crypto.PublicKey) (string, error) {
	der, err := MarshalPublicKeyDER(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

func checkSpecArg(spec KeySpec) error {
	_, err := ParseKeySpec(string(spec))
	return err
}

// parseCheckedSPKI parses a SubjectPublicKeyInfo and checks it is of spec.
func parseCheckedSPKI(param Field, der []byte, spec KeySpec) (crypto.PublicKey, error) {
	pub, err := parseSPKI(param, der)
	if err != nil {
		return nil, err
	}
	got, err := specOf(param, pub)
	if err != nil {
		return nil, err
	}
	if got != spec {
		return nil, paramErr(param, "key is %s but the key spec is %s", got, spec)
	}
	return pub, nil
}

// parseSPKI parses a strict DER SubjectPublicKeyInfo holding an RSA or SM2
// key. It checks the key's structure (RSA size and exponent, SM2 point on
// the curve) but not a spec.
func parseSPKI(param Field, der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 {
		return nil, paramErr(param, "is empty")
	}
	if len(der) > maxPublicKeyInput {
		return nil, paramErr(param, "is %d bytes; at most %d accepted", len(der), maxPublicKeyInput)
	}
	input := cryptobyte.String(der)
	var spki, algID cryptobyte.String
	if !input.ReadASN1(&spki, cbasn1.SEQUENCE) {
		return nil, paramErr(param, "is not a DER SubjectPublicKeyInfo (expected a SEQUENCE)")
	}
	if !input.Empty() {
		return nil, paramErr(param, "has %d trailing bytes after the SubjectPublicKeyInfo", len(input))
	}
	var alg asn1.ObjectIdentifier
	if !spki.ReadASN1(&algID, cbasn1.SEQUENCE) || !algID.ReadASN1ObjectIdentifier(&alg) {
		return nil, paramErr(param, "has a malformed AlgorithmIdentifier")
	}
	params := algID // what follows the OID: absent, NULL, or one element
	var bits asn1.BitString
	if !spki.ReadASN1BitString(&bits) {
		return nil, paramErr(param, "has a malformed subjectPublicKey BIT STRING")
	}
	if bits.BitLength%8 != 0 {
		return nil, paramErr(param, "subjectPublicKey BIT STRING is not a whole number of bytes")
	}
	if !spki.Empty() {
		return nil, paramErr(param, "has unexpected data after the subjectPublicKey")
	}
	switch {
	case alg.Equal(oidRSAEncryption):
		if !params.Empty() && !readNull(&params) {
			return nil, paramErr(param, "rsaEncryption parameters must be NULL or absent")
		}
		return parsePKCS1(param, bits.Bytes)
	case alg.Equal(oidECPublicKey):
		var curve asn1.ObjectIdentifier
		if params.PeekASN1Tag(cbasn1.SEQUENCE) {
			return nil, paramErr(param, "EC key has explicit curve parameters; accepted: the named SM2 curve (1.2.156.10197.1.301)")
		}
		if !params.ReadASN1ObjectIdentifier(&curve) || !params.Empty() {
			return nil, paramErr(param, "EC key parameters must be a named-curve OID")
		}
		if !curve.Equal(oidSM2) {
			return nil, paramErr(param, "EC key is on curve %s; accepted: SM2 (1.2.156.10197.1.301)", oidName(curve))
		}
		return parseSM2Point(param, bits.Bytes)
	case alg.Equal(oidSM2):
		// The SM2 algorithm OID form: parameters are the SM2 curve OID,
		// NULL, or absent.
		if !params.Empty() {
			var curve asn1.ObjectIdentifier
			if params.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
				if !params.ReadASN1ObjectIdentifier(&curve) || !params.Empty() {
					return nil, paramErr(param, "SM2 key has malformed parameters")
				}
				if !curve.Equal(oidSM2) {
					return nil, paramErr(param, "SM2 key names curve %s; accepted: SM2 (1.2.156.10197.1.301)", oidName(curve))
				}
			} else if !readNull(&params) {
				return nil, paramErr(param, "SM2 key parameters must be the SM2 curve OID, NULL or absent")
			}
		}
		return parseSM2Point(param, bits.Bytes)
	case alg.Equal(oidRSAPSS):
		return nil, paramErr(param, "key algorithm is RSASSA-PSS (1.2.840.113549.1.1.10), which is for signatures only; accepted: %s", acceptedAlgorithms)
	default:
		return nil, paramErr(param, "key algorithm %s is not accepted; accepted: %s", oidName(alg), acceptedAlgorithms)
	}
}

// readNull consumes a DER NULL that must be the last thing in s.
func readNull(s *cryptobyte.String) bool {
	var null cryptobyte.String
	return s.ReadASN1(&null, cbasn1.NULL) && null.Empty() && s.Empty()
}

// parsePKCS1 parses a DER PKCS#1 RSAPublicKey and checks size and exponent.
func parsePKCS1(param Field, der []byte) (*rsa.PublicKey, error) {
	input := cryptobyte.String(der)
	var seq cryptobyte.String
	n, e := new(big.Int), new(big.Int)
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, paramErr(param, "RSA key is not a DER RSAPublicKey (expected a SEQUENCE)")
	}
	if !input.Empty() {
		return nil, paramErr(param, "RSA key has %d trailing bytes after the RSAPublicKey", len(input))
	}
	if !seq.ReadASN1Integer(n) || !seq.ReadASN1Integer(e) {
		return nil, paramErr(param, "RSA key has a malformed modulus or exponent")
	}
	if !seq.Empty() {
		return nil, paramErr(param, "RSA key has unexpected data after the exponent")
	}
	return checkRSA(param, n, e)
}

// checkRSA accepts a 2048, 3072 or 4096-bit odd modulus with e = 65537.
func checkRSA(param Field, n, e *big.Int) (*rsa.PublicKey, error) {
	if n == nil || e == nil || n.Sign() <= 0 {
		return nil, paramErr(param, "RSA modulus is not a positive integer")
	}
	if bits := n.BitLen(); bits != 2048 && bits != 3072 && bits != 4096 {
		return nil, paramErr(param, "RSA modulus is %d bits; accepted: 2048, 3072, 4096", bits)
	}
	if n.Bit(0) == 0 {
		return nil, paramErr(param, "RSA modulus is even")
	}
	if !e.IsInt64() || e.Int64() != rsaExponent {
		return nil, paramErr(param, "RSA public exponent is %s; accepted: 65537", e)
	}
	return &rsa.PublicKey{N: new(big.Int).Set(n), E: rsaExponent}, nil
}

// compressedUnmarshaler is the point-decompression method of gmsm's SM2
// curve (constant-time field arithmetic), used instead of the deprecated
// crypto/elliptic wrapper.
type compressedUnmarshaler interface {
	UnmarshalCompressed(data []byte) (x, y *big.Int)
}

// parseSM2Point parses an SEC 1 point on the SM2 curve, uncompressed
// (04‖x‖y) or compressed (02/03‖x), and checks it is on the curve.
func parseSM2Point(param Field, b []byte) (*ecdsa.PublicKey, error) {
	switch {
	case len(b) == 0:
		return nil, paramErr(param, "SM2 point is empty")
	case len(b) == 1 && b[0] == 0:
		return nil, paramErr(param, "SM2 point is the point at infinity")
	case b[0] == 4:
		if len(b) != 65 {
			return nil, paramErr(param, "uncompressed SM2 point is %d bytes; want 65 (04‖x‖y)", len(b))
		}
		pub, err := sm2.NewPublicKey(b)
		if err != nil {
			return nil, paramErr(param, "SM2 point is not on the curve")
		}
		return pub, nil
	case b[0] == 2 || b[0] == 3:
		if len(b) != 33 {
			return nil, paramErr(param, "compressed SM2 point is %d bytes; want 33", len(b))
		}
		x, y := sm2.P256().(compressedUnmarshaler).UnmarshalCompressed(b)
		if x == nil {
			return nil, paramErr(param, "SM2 point is not on the curve (no y for this x)")
		}
		return &ecdsa.PublicKey{Curve: sm2.P256(), X: x, Y: y}, nil
	default:
		return nil, paramErr(param, "SM2 point format 0x%02x is not accepted; want uncompressed (0x04) or compressed (0x02, 0x03)", b[0])
	}
}

// specOf validates pub and returns its spec.
func specOf(param Field, pub crypto.PublicKey) (KeySpec, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil {
			break
		}
		if _, err := checkRSA(param, k.N, big.NewInt(int64(k.E))); err != nil {
			return "", err
		}
		switch k.N.BitLen() {
		case 2048:
			return SpecRSA2048, nil
		case 3072:
			return SpecRSA3072, nil
		default:
			return SpecRSA4096, nil
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			break
		}
		if k.Curve.Params() != sm2.P256().Params() {
			return "", paramErr(param, "EC key is on curve %s; accepted: SM2", k.Curve.Params().Name)
		}
		if !sm2.P256().IsOnCurve(k.X, k.Y) {
			return "", paramErr(param, "SM2 point is not on the curve")
		}
		return SpecSM2, nil
	}
	return "", paramErr(param, "key type %T is not accepted; accepted: RSA (2048, 3072, 4096 bits) and SM2", pub)
}

// sm2PointBytes returns 04‖x‖y for a validated SM2 key.
func sm2PointBytes(pub *ecdsa.PublicKey) []byte {
	out := make([]byte, 65)
	out[0] = 4
	pub.X.FillBytes(out[1:33])
	pub.Y.FillBytes(out[33:])
	return out
}
