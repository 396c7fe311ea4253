package wrap

import (
	"errors"
	"fmt"
)

// CiphertextBlob v1 layout: 0x01 ‖ versionId(16) ‖ iv(12) ‖ ciphertext ‖ tag(16).
const (
	// BlobVersion1 is the first byte of a v1 CiphertextBlob.
	BlobVersion1 = 0x01
	// BlobHeaderSize is the size of the header: version, version ID, IV.
	// The header is the start of the AES-GCM additional data (see AAD).
	BlobHeaderSize = 1 + 16 + 12
	// BlobTagSize is the AES-GCM tag size; it ends every blob.
	BlobTagSize = 16
	// BlobMinSize is the shortest v1 blob: a header and a tag.
	BlobMinSize = BlobHeaderSize + BlobTagSize
)

// Sentinels matched with errors.Is on a *BlobError.
var (
	// ErrBlobVersion: the first byte is not a known blob version.
	ErrBlobVersion = errors.New("unknown CiphertextBlob version")
	// ErrBlobTruncated: the blob is shorter than its version's minimum.
	ErrBlobTruncated = errors.New("CiphertextBlob truncated")
)

// BlobError reports a CiphertextBlob that cannot be parsed. Kind is
// ErrBlobVersion or ErrBlobTruncated (errors.Is matches it); errors.As
// also finds a *ParamError for FieldCiphertext.
type BlobError struct {
	Kind   error
	Reason string
}

// Error describes the problem, for example
// "CiphertextBlob: unknown version byte 0x02; supported: 0x01".
func (e *BlobError) Error() string { return "CiphertextBlob: " + e.Reason }

// Unwrap returns the sentinel and an equivalent *ParamError.
func (e *BlobError) Unwrap() []error {
	return []error{e.Kind, &ParamError{Field: FieldCiphertext, Msg: e.Reason}}
}

// Blob is a parsed v1 CiphertextBlob.
type Blob struct {
	// VersionID is the CMK version (CKA_ID of the token key) that sealed it.
	VersionID [16]byte
	// IV is the 12-byte AES-GCM nonce.
	IV [12]byte
	// Sealed is the AES-GCM output: ciphertext ‖ 16-byte tag.
	Sealed []byte
}

// ParseBlob parses a v1 CiphertextBlob (the bytes, after base64 decoding).
// It never panics: an unknown first byte is a *BlobError with Kind
// ErrBlobVersion, a blob shorter than BlobMinSize one with Kind
// ErrBlobTruncated. Sealed is a copy of b's tail.
func ParseBlob(b []byte) (*Blob, error) {
	if len(b) == 0 {
		return nil, &BlobError{Kind: ErrBlobTruncated, Reason: "is empty"}
	}
	if b[0] != BlobVersion1 {
		return nil, &BlobError{Kind: ErrBlobVersion, Reason: fmt.Sprintf("unknown version byte 0x%02x; supported: 0x%02x", b[0], BlobVersion1)}
	}
	if len(b) < BlobMinSize {
		return nil, &BlobError{Kind: ErrBlobTruncated, Reason: fmt.Sprintf("is %d bytes; a v1 blob has at least %d", len(b), BlobMinSize)}
	}
	blob := &Blob{Sealed: append([]byte(nil), b[BlobHeaderSize:]...)}
	copy(blob.VersionID[:], b[1:17])
	copy(blob.IV[:], b[17:BlobHeaderSize])
	return blob, nil
}

// Header returns the first BlobHeaderSize bytes of the blob:
// 0x01 ‖ VersionID ‖ IV. It is valid before Sealed is set, so a sealer can
// build the AAD first.
func (b *Blob) Header() []byte {
	h := make([]byte, 0, BlobHeaderSize)
	h = append(h, BlobVersion1)
	h = append(h, b.VersionID[:]...)
	return append(h, b.IV[:]...)
}

// Marshal returns Header ‖ Sealed.
func (b *Blob) Marshal() []byte {
	out := make([]byte, 0, BlobHeaderSize+len(b.Sealed))
	out = append(out, b.Header()...)
	return append(out, b.Sealed...)
}
