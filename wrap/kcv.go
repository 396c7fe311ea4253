package wrap

import (
	"crypto/aes"
	"encoding/hex"
)

// KCV returns the key check value of an AES key as PKCS#11 3.0 defines
// CKA_CHECK_VALUE: the first 3 bytes of AES-ECB(key, 0¹⁶), as 6 lowercase
// hex digits. The key must be 16, 24 or 32 bytes, else a *ParamError for
// "Key".
func KCV(key []byte) (string, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return "", paramErr("Key", "AES key is %d bytes; accepted: 16, 24, 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", paramErr("Key", "%v", err)
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
