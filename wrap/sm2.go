package wrap

import (
	"crypto/ecdsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/emmansun/gmsm/ecdh"
	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

const (
	sm2FieldSize = 32                 // bytes in an SM2 field element
	sm2PointSize = 1 + 2*sm2FieldSize // 04‖x‖y
	sm2C3Size    = sm3.Size           // SM3(x2‖M‖y2)
	sm2Overhead  = sm2PointSize + sm2C3Size
)

// SM2Ciphertext is an SM2 ciphertext split into its parts (GB/T 32918.4):
// C1 = [k]G, C3 = SM3(x2‖M‖y2), C2 = M ⊕ KDF(x2‖y2, len(M)).
type SM2Ciphertext struct {
	// C1 is the 65-byte uncompressed point 04‖x‖y, on the curve and not
	// the point at infinity (ParseSM2Ciphertext checks both).
	C1 []byte
	// C3 is the 32-byte SM3 check value.
	C3 []byte
	// C2 is the masked message, at least 1 byte.
	C2 []byte
}

// ParseSM2Ciphertext splits ct in the layout the caller names; the layout
// is never guessed from the bytes. SM2C1C3C2 needs C1 uncompressed
// (compressed C1 is refused: the APIs promise 04‖x‖y); SM2ASN1 needs
// strict DER with nothing after the SEQUENCE, non-negative coordinates and
// a 32-byte C3. C1 must be on the curve, and C2 must not be empty.
// Every malformation is ErrDecryption. The parts are copies of ct.
func ParseSM2Ciphertext(ct []byte, enc SM2Encoding) (*SM2Ciphertext, error) {
	var c *SM2Ciphertext
	switch enc {
	case SM2C1C3C2:
		if len(ct) < sm2Overhead+1 || ct[0] != 4 {
			return nil, ErrDecryption
		}
		c = &SM2Ciphertext{
			C1: append([]byte(nil), ct[:sm2PointSize]...),
			C3: append([]byte(nil), ct[sm2PointSize:sm2Overhead]...),
			C2: append([]byte(nil), ct[sm2Overhead:]...),
		}
	case SM2ASN1:
		var ok bool
		if c, ok = parseSM2ASN1(ct); !ok {
			return nil, ErrDecryption
		}
	default:
		return nil, fmt.Errorf("%w: unknown SM2 encoding %d", ErrDecryption, int(enc))
	}
	if _, err := checkC1(c.C1); err != nil {
		return nil, ErrDecryption
	}
	return c, nil
}

// parseSM2ASN1 reads SEQUENCE{x INTEGER, y INTEGER, C3 OCTET STRING,
// C2 OCTET STRING} in strict DER (cryptobyte rejects non-minimal lengths
// and integers).
func parseSM2ASN1(ct []byte) (*SM2Ciphertext, bool) {
	input := cryptobyte.String(ct)
	var seq, c3, c2 cryptobyte.String
	x, y := new(big.Int), new(big.Int)
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) || !input.Empty() ||
		!seq.ReadASN1Integer(x) || !seq.ReadASN1Integer(y) ||
		!seq.ReadASN1(&c3, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1(&c2, cbasn1.OCTET_STRING) || !seq.Empty() {
		return nil, false
	}
	if x.Sign() < 0 || y.Sign() < 0 || x.BitLen() > 8*sm2FieldSize || y.BitLen() > 8*sm2FieldSize ||
		len(c3) != sm2C3Size || len(c2) == 0 {
		return nil, false
	}
	c1 := make([]byte, sm2PointSize)
	c1[0] = 4
	x.FillBytes(c1[1 : 1+sm2FieldSize])
	y.FillBytes(c1[1+sm2FieldSize:])
	return &SM2Ciphertext{C1: c1, C3: append([]byte(nil), c3...), C2: append([]byte(nil), c2...)}, true
}

// checkC1 checks C1 is 04‖x‖y on the SM2 curve (which excludes the point
// at infinity) and returns it as an ECDH public value.
func checkC1(c1 []byte) (*ecdh.PublicKey, error) {
	if len(c1) != sm2PointSize || c1[0] != 4 {
		return nil, errors.New("C1 is not an uncompressed point")
	}
	return ecdh.P256().NewPublicKey(c1) // checks the point is on the curve
}

// Marshal encodes the ciphertext in the given layout. It fails if a part
// has the wrong size (C1 not 65 bytes, C3 not 32, C2 empty).
func (c *SM2Ciphertext) Marshal(enc SM2Encoding) ([]byte, error) {
	if c == nil || len(c.C1) != sm2PointSize || c.C1[0] != 4 || len(c.C3) != sm2C3Size || len(c.C2) == 0 {
		return nil, errors.New("wrap: SM2 ciphertext parts have the wrong sizes")
	}
	switch enc {
	case SM2C1C3C2:
		out := make([]byte, 0, sm2Overhead+len(c.C2))
		out = append(out, c.C1...)
		out = append(out, c.C3...)
		return append(out, c.C2...), nil
	case SM2ASN1:
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(new(big.Int).SetBytes(c.C1[1 : 1+sm2FieldSize]))
			b.AddASN1BigInt(new(big.Int).SetBytes(c.C1[1+sm2FieldSize:]))
			b.AddASN1OctetString(c.C3)
			b.AddASN1OctetString(c.C2)
		})
		return b.Bytes()
	}
	return nil, fmt.Errorf("wrap: unknown SM2 encoding %d", int(enc))
}

// FinishWithSharedX completes SM2 decryption (GB/T 32918.4 steps B3–B7)
// from x2, the x-coordinate of [d]C1, which is what a token's
// CKM_ECDH1_DERIVE (CKD_NULL, public data C1) yields. The token never
// gives y2, so both square roots of x2³+ax2+b are tried: for each,
// t = KDF(x2‖y2, len(C2)), M = C2 ⊕ t and u = SM3(x2‖M‖y2); the root whose
// u equals C3 (constant-time compare, t not all zero) gives M. Both roots
// are always computed, so timing does not say which one matched.
//
// C1 is checked again to be on the curve. Every failure is ErrDecryption.
func (c *SM2Ciphertext) FinishWithSharedX(x2 []byte) ([]byte, error) {
	if c == nil || len(x2) != sm2FieldSize || len(c.C3) != sm2C3Size || len(c.C2) == 0 {
		return nil, ErrDecryption
	}
	if _, err := checkC1(c.C1); err != nil {
		return nil, ErrDecryption
	}
	curve := sm2.P256().(compressedUnmarshaler)
	var cand [2][]byte
	var ok [2]int
	point := make([]byte, 1+sm2FieldSize)
	x2y2 := make([]byte, 2*sm2FieldSize)
	defer clear(point)
	defer clear(x2y2)
	copy(point[1:], x2)
	copy(x2y2, x2)
	for i, prefix := range [2]byte{2, 3} { // even y, odd y: the two roots
		point[0] = prefix
		_, y := curve.UnmarshalCompressed(point)
		if y == nil {
			// x2 ≥ p or x2³+ax2+b is not a square: not the x of a point.
			return nil, ErrDecryption
		}
		y.FillBytes(x2y2[sm2FieldSize:])
		cand[i], ok[i] = sm2Unmask(x2y2, c.C2, c.C3)
	}
	defer clear(cand[0])
	defer clear(cand[1])
	out := make([]byte, len(c.C2))
	subtle.ConstantTimeCopy(ok[0], out, cand[0])
	subtle.ConstantTimeCopy(ok[1]&^ok[0], out, cand[1])
	if ok[0]|ok[1] != 1 {
		clear(out)
		return nil, ErrDecryption
	}
	return out, nil
}

// sm2Unmask computes M = C2 ⊕ KDF(x2‖y2) and reports (as 1 or 0) whether
// SM3(x2‖M‖y2) = C3 and the KDF output was not all zero.
func sm2Unmask(x2y2, c2, c3 []byte) (m []byte, ok int) {
	m, nonZero := sm2Mask(x2y2, c2)
	return m, subtle.ConstantTimeCompare(sm2CheckValue(x2y2, m), c3) & nonZero
}

// sm2Mask returns in ⊕ t with t = KDF(x2‖y2, len(in)) (GB/T 32918.4
// steps A5–A6 and B4–B5), and nonZero = 1 if t was not all zero, else 0.
func sm2Mask(x2y2, in []byte) (out []byte, nonZero int) {
	t := sm3.Kdf(x2y2, len(in))
	var acc byte
	for _, b := range t {
		acc |= b
	}
	nonZero = 1 ^ subtle.ConstantTimeByteEq(acc, 0)
	subtle.XORBytes(t, t, in)
	return t, nonZero
}

// sm2CheckValue returns C3 = SM3(x2‖M‖y2) (steps A7 and B6).
func sm2CheckValue(x2y2, m []byte) []byte {
	h := sm3.New()
	h.Write(x2y2[:sm2FieldSize])
	h.Write(m)
	h.Write(x2y2[sm2FieldSize:])
	return h.Sum(nil)
}

// sm2MaxDraws bounds how many times encryption draws k: a draw fails
// only if k is 0 or ≥ n−1 (odds about 2⁻³²) or t is all zero (2⁻⁸ for a
// 1-byte message, 2⁻¹⁶ for 2 bytes), so 64 failures in a row mean the
// entropy source is broken, not unlucky.
const sm2MaxDraws = 64

// encryptSM2 is GB/T 32918.4 encryption (steps A1–A8), composed from
// gmsm's public primitives the way FinishWithSharedX composes decryption,
// and laid out in enc. It replaces gmsm's sm2.Encrypt: in gmsm v0.44.0
// (also its main branch) internal/sm2.Encrypt retries an all-zero t with
// the recipient's point Q already overwritten by Q.ScalarMult(Q, k), so
// the retried ciphertext is encrypted to [k]Q and decrypts for nobody —
// 1 in 256 one-byte data keys. Here every draw starts from pub again.
//
// pub must already be validated (SpecOf); it is checked on the curve
// again. k is read as gmsm reads it (32 bytes per draw, io.ReadFull), so
// a fixed k gives gmsm's and the standard's ciphertexts (but for
// k = n−1, which gmsm takes and ecdh's range check refuses).
func encryptSM2(rand io.Reader, pub *ecdsa.PublicKey, plaintext []byte, enc SM2Encoding) ([]byte, error) {
	if pub == nil || pub.X == nil || pub.Y == nil || !sm2.P256().IsOnCurve(pub.X, pub.Y) {
		return nil, errors.New("wrap: SM2 encryption: the public key is not a point on the SM2 curve")
	}
	if len(plaintext) == 0 {
		// t would be empty, hence "all zero", on every draw (step A5).
		return nil, errors.New("wrap: SM2 encryption: the plaintext is empty")
	}
	for range sm2MaxDraws {
		c, drawAgain, err := sm2EncryptWithFreshK(rand, pub, plaintext)
		if err != nil {
			return nil, err
		}
		if !drawAgain {
			return c.Marshal(enc)
		}
	}
	return nil, fmt.Errorf("wrap: SM2 encryption: no usable k in %d draws from the entropy source", sm2MaxDraws)
}

// sm2EncryptWithFreshK draws one k from rand and encrypts m to pub with
// it. drawAgain reports that k was unusable (0 or ≥ n−1, step A1) or gave
// an all-zero t (step A5): the caller must draw a new k.
func sm2EncryptWithFreshK(rand io.Reader, pub *ecdsa.PublicKey, m []byte) (c *SM2Ciphertext, drawAgain bool, err error) {
	var k [sm2FieldSize]byte
	defer clear(k[:])
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return nil, false, fmt.Errorf("wrap: SM2 encryption: reading k from the entropy source: %w", err)
	}
	// ecdh's private-key check is constant time and accepts 1 ≤ k < n−1.
	kG, err := ecdh.P256().NewPrivateKey(k[:])
	if err != nil {
		return nil, true, nil
	}
	c1 := kG.PublicKey().Bytes() // A2: C1 = [k]G, 04‖x1‖y1
	if _, err := checkC1(c1); err != nil {
		return nil, false, fmt.Errorf("wrap: SM2 encryption: [k]G: %w", err)
	}
	x2, y2 := sm2.P256().ScalarMult(pub.X, pub.Y, k[:]) // A4: [k]Q, Q left as it is
	defer clear(x2.Bits())
	defer clear(y2.Bits())
	if x2.Sign() == 0 && y2.Sign() == 0 {
		// Unreachable for a point on the curve (prime order, cofactor 1).
		return nil, false, errors.New("wrap: SM2 encryption: [k]Q is the point at infinity")
	}
	x2y2 := make([]byte, 2*sm2FieldSize)
	defer clear(x2y2)
	x2.FillBytes(x2y2[:sm2FieldSize])
	y2.FillBytes(x2y2[sm2FieldSize:])
	c2, nonZero := sm2Mask(x2y2, m) // A5–A6: C2 = M ⊕ KDF(x2‖y2, len(M))
	if nonZero != 1 {
		clear(c2)
		return nil, true, nil
	}
	return &SM2Ciphertext{C1: c1, C3: sm2CheckValue(x2y2, m), C2: c2}, false, nil
}

// decryptSM2 is the software SM2 receiver: it derives x2 = x([d]C1) the
// way a token's ECDH derive does and finishes with FinishWithSharedX, so
// the software and token paths share one decode.
func decryptSM2(priv *sm2.PrivateKey, ct []byte, enc SM2Encoding) ([]byte, error) {
	c, err := ParseSM2Ciphertext(ct, enc)
	if err != nil {
		return nil, err
	}
	c1, err := checkC1(c.C1)
	if err != nil {
		return nil, ErrDecryption
	}
	k, err := priv.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: unusable SM2 private key", ErrDecryption)
	}
	x2, err := k.ECDH(c1)
	if err != nil {
		return nil, ErrDecryption
	}
	defer clear(x2)
	return c.FinishWithSharedX(x2)
}
