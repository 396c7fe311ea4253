package wrap

import (
	"crypto/aes"
	"crypto/sha1"
	"encoding/hex"
)

// KCV returns the key check value of an AES key as PKCS#11 3.0 defines
// CKA_CHECK_VALUE: the first 3 bytes of AES-ECB(key, 0¹⁶), as 6 lowercase
// hex digits. The key must be 16, 24 or 32 bytes, else a *ParamError for
// FieldKey.
func KCV(key []byte) (string, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return "", paramErr(FieldKey, "AES key is %d bytes; accepted: 16, 24, 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", paramErr(FieldKey, "%v", err)
	}
	var buf [aes.BlockSize]byte
	block.Encrypt(buf[:], buf[:])
	kcv := hex.EncodeToString(buf[:3])
	clear(buf[:])
	return kcv, nil
}

// ZeroBytes overwrites b with zeros; call it on plaintext key material as
// soon as it is no longer needed.
func ZeroBytes(b []byte) { clear(b) }

// MaxGenericSecret is the longest generic secret KCVGenericSecret accepts,
// the bound Alibaba's NumberOfBytes puts on a data key.
const MaxGenericSecret = 1024

// KCVGenericSecret returns the key check value of a generic secret key as
// PKCS#11 3.0 defines CKA_CHECK_VALUE for CKK_GENERIC_SECRET: the first 3
// bytes of SHA-1(key), as 6 lowercase hex digits (what SoftHSM2 reports for
// a generic secret it creates). The key must be 1 to MaxGenericSecret bytes,
// else a *ParamError for FieldKey.
func KCVGenericSecret(key []byte) (string, error) {
	if len(key) == 0 || len(key) > MaxGenericSecret {
		return "", paramErr(FieldKey, "generic secret is %d bytes; accepted: 1 to %d", len(key), MaxGenericSecret)
	}
	sum := sha1.Sum(key)
	kcv := hex.EncodeToString(sum[:3])
	clear(sum[:])
	return kcv, nil
}
