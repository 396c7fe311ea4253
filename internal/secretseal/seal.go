// Package secretseal encrypts access-key secrets at rest under a key that
// never leaves the token: AES-256-GCM (CKM_AES_GCM, in the token) under
// the key labelled KeyLabel, with the access key id as associated data, so
// a sealed secret opens only for its own id and only with the token.
package secretseal

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/p11kms/p11kms/hsm"
)

// KeyLabel is the token's AES key that seals access-key secrets.
const KeyLabel = "p11kms/access-keys"

// Sealer seals and opens access-key secrets with the token (it implements
// wire.SecretSealer).
type Sealer struct {
	ctx     context.Context
	tok     *hsm.Token
	key     hsm.ObjectHandle
	purpose string // "" for access keys; see WithPurpose
}

// New returns the token's sealer, generating its key on first use.
func New(ctx context.Context, tok *hsm.Token) (*Sealer, error) {
	key, err := tok.AESKey(ctx, KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("access-key secrets: %w", err)
	}
	return &Sealer{ctx: ctx, tok: tok, key: key}, nil
}

// aad binds a sealed secret to its id and purpose: KeyLabel, 0x00, id for
// access keys (the original format); KeyLabel, 0x01, purpose, 0x00, id
// otherwise, so the two forms can never be equal.
func (s *Sealer) aad(id string) []byte {
	if s.purpose == "" {
		return []byte(KeyLabel + "\x00" + id)
	}
	return []byte(KeyLabel + "\x01" + s.purpose + "\x00" + id)
}

// WithPurpose returns a sealer under the same token key whose sealed
// secrets open only with a sealer of the same purpose (and those of s only
// with s's): e.g. "xks" for the XKS proxy's SigV4 secrets, so a secret
// sealed for one file cannot be moved into the other, even under an id
// valid in both. purpose must not be empty or hold a NUL byte.
func (s *Sealer) WithPurpose(purpose string) (*Sealer, error) {
	if purpose == "" || strings.IndexByte(purpose, 0) >= 0 {
		return nil, fmt.Errorf("secretseal: purpose %q: accepted a non-empty name without NUL bytes", purpose)
	}
	c := *s
	c.purpose = purpose
	return &c, nil
}

// Seal encrypts the secret of access key id; the result is base64 of
// IV ‖ ciphertext ‖ tag.
func (s *Sealer) Seal(id string, secret []byte) (string, error) {
	iv, err := s.tok.Random(s.ctx, hsm.GCMIVSize)
	if err != nil {
		return "", fmt.Errorf("access-key secrets: %w", err)
	}
	ct, err := s.tok.EncryptGCM(s.ctx, s.key, iv, secret, s.aad(id))
	if err != nil {
		return "", fmt.Errorf("access-key secrets: sealing %s: %w", id, err)
	}
	return base64.StdEncoding.EncodeToString(append(iv, ct...)), nil
}

// ErrNotSealedHere is returned for a sealed secret that does not open with
// this token (another token's key, an edited value, another id).
var ErrNotSealedHere = errors.New("the sealed secret does not open with this token's key (another token, or edited)")

// Open decrypts a sealed secret of access key id. The caller zeroes the
// result after use.
func (s *Sealer) Open(id, sealed string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) <= hsm.GCMIVSize+hsm.GCMTagSize {
		return nil, fmt.Errorf("access-key secrets: %s: SealedSecret is not base64 of IV, ciphertext and tag", id)
	}
	pt, err := s.tok.DecryptGCM(s.ctx, s.key, raw[:hsm.GCMIVSize], raw[hsm.GCMIVSize:], s.aad(id))
	if errors.Is(err, hsm.ErrDecryption) {
		return nil, fmt.Errorf("access-key secrets: %s: %w", id, ErrNotSealedHere)
	}
	if err != nil {
		return nil, fmt.Errorf("access-key secrets: %s: %w", id, err)
	}
	return pt, nil
}
