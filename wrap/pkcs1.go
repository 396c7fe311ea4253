package wrap

import (
	"bytes"
	"crypto/subtle"
)

// DecodePKCS1v15 is the receiving side's RSAES-PKCS1-v1_5 step (RFC 8017
// section 7.2.2, step 3) on the output em of a raw RSA operation with a
// k-byte modulus (left-padded with zeros here if shorter). It checks
// 0x00 ‖ 0x02 ‖ PS (at least 8 non-zero bytes) ‖ 0x00 ‖ M in constant time
// and returns M; every failure is ErrDecryption.
//
// This only exists for RSAES_PKCS1_V1_5, which is legacy (see
// AlgRSAPKCS1v15): whether this function fails is itself a Bleichenbacher
// oracle, so a caller must never let a remote party distinguish a padding
// failure from any other failure (or from success) by error, timing, or
// side effect.
func DecodePKCS1v15(em []byte, k int) ([]byte, error) {
	if k < 11 || len(em) > k {
		return nil, ErrDecryption
	}
	buf := make([]byte, k)
	defer clear(buf)
	copy(buf[k-len(em):], em)

	good := subtle.ConstantTimeByteEq(buf[0], 0)
	good &= subtle.ConstantTimeByteEq(buf[1], 2)
	searching, sep := 1, 0
	for i := 2; i < k; i++ {
		isZero := subtle.ConstantTimeByteEq(buf[i], 0)
		sep = subtle.ConstantTimeSelect(searching&isZero, i, sep)
		searching &^= isZero
	}
	// PS spans buf[2:sep] and must be at least 8 bytes.
	good &= subtle.ConstantTimeLessOrEq(2+8, sep)
	good &= ^searching & 1
	if good != 1 {
		return nil, ErrDecryption
	}
	return bytes.Clone(buf[sep+1:]), nil
}
