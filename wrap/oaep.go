package wrap

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
)

// DecodeOAEP is the receiving side's OAEP step (RFC 8017 section 7.1.2,
// step 3) for when the token can only do raw RSA (CKM_RSA_X_509): em is the
// token's output for a k-byte modulus, left-padded with zeros here if the
// token dropped leading zero bytes. MGF1 uses the same hash; label is
// usually empty (the APIs never set one).
//
// It runs in constant time with respect to em's contents, and every
// failure, including em longer than k or k too small for the hash, is
// ErrDecryption. The hash must be linked into the binary (crypto.SHA1 and
// crypto.SHA256 always are).
func DecodeOAEP(hash crypto.Hash, em []byte, k int, label []byte) ([]byte, error) {
	return decodeOAEP(hash, hash, em, k, label)
}

// decodeOAEP is DecodeOAEP with a separate MGF1 hash; the exported API
// only needs the same-hash case, the tests also run mixed-hash vectors.
func decodeOAEP(hash, mgfHash crypto.Hash, em []byte, k int, label []byte) ([]byte, error) {
	if !hash.Available() || !mgfHash.Available() {
		return nil, fmt.Errorf("%w: OAEP hash %v or MGF1 hash %v not linked into the binary", ErrDecryption, hash, mgfHash)
	}
	h := hash.New()
	hLen := h.Size()
	if k < 2*hLen+2 || len(em) > k {
		return nil, ErrDecryption
	}
	buf := make([]byte, k)
	defer clear(buf)
	copy(buf[k-len(em):], em)

	h.Write(label)
	lHash := h.Sum(nil)

	// buf = Y ‖ maskedSeed ‖ maskedDB
	y := buf[0]
	seed := buf[1 : 1+hLen]
	db := buf[1+hLen:]
	mgf := mgfHash.New()
	mgf1XOR(mgf, seed, db) // seed = maskedSeed ⊕ MGF(maskedDB)
	mgf1XOR(mgf, db, seed) // DB = maskedDB ⊕ MGF(seed)

	// DB = lHash' ‖ PS (zeros) ‖ 0x01 ‖ M
	good := subtle.ConstantTimeByteEq(y, 0)
	good &= subtle.ConstantTimeCompare(lHash, db[:hLen])
	rest := db[hLen:]
	searching, sep, bad := 1, 0, 0
	for i, b := range rest {
		isZero := subtle.ConstantTimeByteEq(b, 0)
		isOne := subtle.ConstantTimeByteEq(b, 1)
		sep = subtle.ConstantTimeSelect(searching&isOne, i, sep)
		searching &^= isOne
		bad |= searching &^ isZero // a byte other than 0 or 1 before the separator
	}
	good &= ^bad & ^searching & 1
	if good != 1 {
		return nil, ErrDecryption
	}
	return bytes.Clone(rest[sep+1:]), nil
}

// mgf1XOR XORs out with MGF1(seed) computed with h (RFC 8017 B.2.1).
func mgf1XOR(h hash.Hash, out, seed []byte) {
	var counter [4]byte
	var digest []byte
	for done, c := 0, uint32(0); done < len(out); c++ {
		binary.BigEndian.PutUint32(counter[:], c)
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		done += subtle.XORBytes(out[done:], out[done:], digest)
	}
	clear(digest)
}
