package xks

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
)

// cmkMetadata is the ciphertextMetadata format of a CMK-backed key: 0x02
// ‖ the 16-byte version id the ciphertext was sealed under (17 bytes,
// within the spec's 20), authenticated with the AAD like format 1.
const cmkMetadata = 0x02

// cmkKey is a p11kms CMK (key id, alias or ARN). The core seals under
// its primary version and opens under the version the metadata names; it
// tags the AAD so that XKS can never open the CMK's CiphertextBlobs
// (provider.ExternalAADTag).
type cmkKey struct {
	kms *provider.Service
	ref string
}

func (s *service) findCMK(ctx context.Context, id string, cfg Key) (*externalKey, error) {
	if s.kms == nil {
		return nil, internal("finding the key", errors.New("a CMK-backed external key needs Config.KMS"))
	}
	ek, err := s.kms.DescribeExternal(ctx, cfg.CMK)
	if err != nil {
		return nil, coreError(id, err)
	}
	return &externalKey{id: id, cfg: cfg, usage: hsm.UsageEncrypt | hsm.UsageDecrypt, enabled: ek.Enabled && !cfg.Disabled,
		backend: cmkKey{kms: s.kms, ref: ek.KeyId}}, nil
}

func (k cmkKey) seal(ctx context.Context, pt, aad []byte) ([]byte, hsm.Sealed, error) {
	// The metadata names the version, which is known only once sealed, and
	// is in the AAD: the core is asked for the primary version first.
	md := make([]byte, 17)
	md[0] = cmkMetadata
	_, sealed, err := k.kms.SealExternal(ctx, k.ref, pt, func(version uuid.UUID) []byte {
		copy(md[1:], version[:])
		return aeadInput(aad, md)
	})
	if err != nil {
		return nil, hsm.Sealed{}, coreError(k.ref, err)
	}
	return md, sealed, nil
}

func (k cmkKey) open(ctx context.Context, md []byte, s hsm.Sealed, aad []byte) ([]byte, error) {
	if len(md) != 17 || md[0] != cmkMetadata {
		return nil, badCiphertext()
	}
	pt, err := k.kms.OpenExternal(ctx, k.ref, uuid.UUID(md[1:]), s, aeadInput(aad, md))
	if err != nil {
		return nil, coreError(k.ref, err)
	}
	return pt, nil
}

// coreError maps the core's codes to the spec's names.
func coreError(id string, err error) *Error {
	switch provider.ErrorCode(err) {
	case provider.CodeKeyNotFound, provider.CodeAliasNotFound:
		return fail(KeyNotFoundException, "the CMK of external key %s does not exist", id)
	case provider.CodeDisabled, provider.CodePendingDeletion:
		return fail(InvalidStateException, "the CMK of external key %s is not enabled", id)
	case provider.CodeInvalidCiphertext:
		return badCiphertext()
	case provider.CodeInvalidParameter:
		return fail(InvalidStateException, "the CMK of external key %s is not an AES-256 encryption key", id)
	}
	return tokenError("using the CMK", err)
}
