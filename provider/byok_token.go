package provider

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/p11kms/p11kms/hsm"
)

// importTokenKeyLabel labels the token's HMAC key that authenticates
// import tokens.
const importTokenKeyLabel = "p11kms-import-token"

// importTokenMagic starts every import token (its format version).
const importTokenMagic = "p11kms-import-v1"

// maxImportToken bounds an ImportToken's base64 length.
const maxImportToken = 1024

// importToken is what an ImportToken binds: the key, the wrapping key (by
// its CKA_ID), the algorithm and spec it was issued for, and its expiry.
// The token carries an HMAC-SHA256 under a key that never leaves the HSM,
// so no field can be changed and no token forged.
type importToken struct {
	keyID      string
	wrappingID [16]byte
	alg, spec  string
	expires    time.Time
}

// payload is the authenticated encoding: magic, then each string with a
// one-byte length, the wrapping key id, the expiry in Unix seconds.
func (t *importToken) payload() []byte {
	b := []byte(importTokenMagic)
	for _, f := range []string{t.keyID, t.alg, t.spec} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	b = append(b, t.wrappingID[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(t.expires.Unix()))
}

// parseImportPayload decodes payload; ok is false for any malformed input.
func parseImportPayload(b []byte) (t importToken, ok bool) {
	if len(b) < len(importTokenMagic) || string(b[:len(importTokenMagic)]) != importTokenMagic {
		return t, false
	}
	b = b[len(importTokenMagic):]
	var fields [3]string
	for i := range fields {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return t, false
		}
		fields[i], b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	}
	if len(b) != 16+8 {
		return t, false
	}
	t.keyID, t.alg, t.spec = fields[0], fields[1], fields[2]
	copy(t.wrappingID[:], b[:16])
	sec := binary.BigEndian.Uint64(b[16:])
	if sec > 1<<40 {
		return t, false
	}
	t.expires = time.Unix(int64(sec), 0).UTC()
	return t, true
}

// sealImportToken returns the ImportToken: base64(payload ‖ HMAC).
func (s *Service) sealImportToken(ctx context.Context, t *importToken) (string, error) {
	k, err := s.tok.HMACKey(ctx, importTokenKeyLabel)
	if err != nil {
		return "", Internal("finding the import-token key", err)
	}
	p := t.payload()
	mac, err := k.Sign(ctx, p)
	if err != nil {
		return "", Internal("authenticating the import token", err)
	}
	return base64.StdEncoding.EncodeToString(append(p, mac...)), nil
}

// invalidImportToken is the one answer for a token that is malformed,
// forged or altered.
func invalidImportToken() *Error {
	return InvalidParam("ImportToken", "is not an import token this KMS issued (malformed, altered or forged); call GetParametersForImport for one")
}

// openImportToken checks an ImportToken's HMAC in the token and returns
// what it binds. It does not check the key, the expiry or the wrapping key.
func (s *Service) openImportToken(ctx context.Context, b64 string) (*importToken, error) {
	if b64 == "" {
		return nil, InvalidParam("ImportToken", "is required: the ImportToken GetParametersForImport returned")
	}
	if len(b64) > maxImportToken {
		return nil, InvalidParam("ImportToken", "%d characters: at most %d", len(b64), maxImportToken)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) <= hsm.HMACSize {
		return nil, invalidImportToken()
	}
	p, mac := raw[:len(raw)-hsm.HMACSize], raw[len(raw)-hsm.HMACSize:]
	t, ok := parseImportPayload(p)
	if !ok {
		return nil, invalidImportToken()
	}
	k, err := s.tok.FindHMACKey(ctx, importTokenKeyLabel)
	if errors.Is(err, hsm.ErrNotFound) {
		return nil, invalidImportToken() // this token never issued one
	}
	if err != nil {
		return nil, Internal("finding the import-token key", err)
	}
	good, err := k.Verify(ctx, p, mac) // compared in the token
	if err != nil {
		return nil, Internal("checking the import token", err)
	}
	if !good {
		return nil, invalidImportToken()
	}
	return &t, nil
}

// wrappingLabel labels the wrapping key pair of an import token.
func wrappingLabel(keyID string, expires time.Time) string {
	return fmt.Sprintf("p11kms-import/%s/%d", keyID, expires.Unix())
}
