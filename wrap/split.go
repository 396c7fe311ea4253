package wrap

import "crypto"

// The receiving side of RSA-OAEP and SM2 split between a token that holds
// the private key and this host: the token does the private-key step, the
// host the public decoding. The importer and the KMS's asymmetric keys
// both decrypt this way.

// DecryptOAEPSplit decrypts an RSA-OAEP ciphertext for a token that will
// not do OAEP with hash h itself: raw is the token's raw RSA decryption
// (CKM_RSA_X_509: m = c^d mod n, k bytes), OAEP (MGF1 with h, empty label)
// is decoded here in constant time. raw's output is zeroed. A decoding
// failure is ErrDecryption; raw's own errors are returned unchanged. The
// caller zeroes the plaintext.
func DecryptOAEPSplit(h crypto.Hash, k int, ct []byte, raw func([]byte) ([]byte, error)) ([]byte, error) {
	em, err := raw(ct)
	if err != nil {
		return nil, err
	}
	pt, err := DecodeOAEP(h, em, k, nil)
	ZeroBytes(em)
	if err != nil {
		return nil, ErrDecryption
	}
	return pt, nil
}

// DecryptSM2Split decrypts an SM2 ciphertext in layout enc: C1 is checked
// to be on the curve and not infinity, ecdh is the token's ECDH with the
// private key (x2 = x([d]C1), 32 bytes), and SM2 is finished here with C3
// checked in constant time ([SM2Ciphertext.FinishWithSharedX]). x2 is
// zeroed. A malformed ciphertext or a failed check is ErrDecryption;
// ecdh's own errors are returned unchanged. The caller zeroes the plaintext.
func DecryptSM2Split(ct []byte, enc SM2Encoding, ecdh func(c1 []byte) ([]byte, error)) ([]byte, error) {
	c, err := ParseSM2Ciphertext(ct, enc)
	if err != nil {
		return nil, ErrDecryption
	}
	x2, err := ecdh(c.C1)
	if err != nil {
		return nil, err
	}
	defer ZeroBytes(x2)
	return c.FinishWithSharedX(x2)
}
