package xks

import (
	"crypto/sha256"
	"encoding/binary"
)

// ciphertextMetadata is what this proxy returns with every ciphertext: one
// format byte. Format 1 means the token's AAD is built as the spec's
// guidance says (aeadInput); a later format can change that and still
// decrypt format 1.
var ciphertextMetadata = []byte{0x01}

// aeadInput is the AAD given to the token: the 2-byte big-endian length of
// the request's additionalAuthenticatedData, the AAD, the 1-byte length of
// the ciphertextMetadata and the metadata. The lengths keep "AAD A, no
// metadata" apart from "no AAD, metadata A"; the result is never empty
// (SoftHSM 2.6.1 may abort on empty AAD).
func aeadInput(aad, metadata []byte) []byte {
	b := make([]byte, 0, 3+len(aad)+len(metadata))
	b = binary.BigEndian.AppendUint16(b, uint16(len(aad)))
	b = append(b, aad...)
	b = append(b, byte(len(metadata)))
	return append(b, metadata...)
}

// cdiv is the ciphertextDataIntegrityValue (Appendix C): SHA-256 over
// additionalAuthenticatedData ‖ ciphertextMetadata ‖ IV ‖ ciphertext ‖ tag.
func cdiv(aad, metadata, iv, ciphertext, tag []byte) []byte {
	h := sha256.New()
	for _, p := range [][]byte{aad, metadata, iv, ciphertext, tag} {
		h.Write(p)
	}
	return h.Sum(nil)
}
