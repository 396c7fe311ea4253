package provider

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/wrap"
)

// ExternalAADTag is the first byte of the AAD of every encryption under a
// CMK version for a caller that chooses the rest of the AAD (and, to
// decrypt, the IV): the XKS proxy (provider/xks). A CiphertextBlob's AAD
// starts with its format byte, wrap.BlobVersion1, so the two AADs are never
// equal and neither API can open what the other sealed.
const ExternalAADTag = 0xFF

// A CiphertextBlob format byte must stay below ExternalAADTag (this does
// not compile otherwise).
const _ uint8 = ExternalAADTag - wrap.BlobVersion1 - 1

// ExternalKey is what the XKS proxy reports of a CMK.
type ExternalKey struct {
	KeyId   string
	Enabled bool // KeyState Enabled (Disabled and PendingDeletion are not)
}

// DescribeExternal resolves ref (a key id, alias or ARN) to an
// AES-256 CMK: ErrorCode CodeKeyNotFound or CodeAliasNotFound, or
// CodeInvalidParameter for another key spec.
func (s *Service) DescribeExternal(ctx context.Context, ref string) (ExternalKey, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return ExternalKey{}, err
	}
	if m.KeySpec != KeySpecAES256 || m.KeyUsage != KeyUsageEncrypt {
		return ExternalKey{}, InvalidParam("KeyId", "the key %s is %s for %s: accepted %s for %s", m.KeyId, m.KeySpec, m.KeyUsage, KeySpecAES256, KeyUsageEncrypt)
	}
	return ExternalKey{KeyId: m.KeyId, Enabled: m.KeyState == StateEnabled}, nil
}

// SealExternal encrypts pt under the primary version of the Enabled CMK
// ref, in the token, with a fresh 12-byte IV from the token's RNG and AAD
// ExternalAADTag ‖ aadFor(version) (the caller's AAD may name the version
// used). It returns the version used.
func (s *Service) SealExternal(ctx context.Context, ref string, pt []byte, aadFor func(version uuid.UUID) []byte) (uuid.UUID, hsm.Sealed, error) {
	k, err := s.primary(ctx, ref)
	if err != nil {
		return uuid.UUID{}, hsm.Sealed{}, err
	}
	if err := s.ensureHandle(ctx, k); err != nil {
		return uuid.UUID{}, hsm.Sealed{}, err
	}
	iv, err := s.tok.Random(ctx, hsm.GCMIVSize)
	if err != nil {
		return uuid.UUID{}, hsm.Sealed{}, Internal("drawing random bytes from the token", err)
	}
	aad := externalAAD(aadFor(k.version))
	var out []byte
	err = s.withVersionKey(ctx, k.version, k.ref, func(h hsm.ObjectHandle) error {
		var err error
		out, err = s.tok.EncryptGCM(ctx, h, iv, pt, aad)
		return err
	})
	if err != nil {
		s.forgetOnTokenError(k.meta.KeyId, err)
		return uuid.UUID{}, hsm.Sealed{}, Internal("encrypting in the token", err)
	}
	n := len(out) - hsm.GCMTagSize
	return k.version, hsm.Sealed{IV: iv, Ciphertext: out[:n:n], Tag: out[n:]}, nil
}

// OpenExternal decrypts what SealExternal sealed under version of the
// Enabled CMK ref: a version of another key, a missing version or a failed
// tag is CodeInvalidCiphertext. The caller must zero the plaintext.
func (s *Service) OpenExternal(ctx context.Context, ref string, version uuid.UUID, sealed hsm.Sealed, aad []byte) ([]byte, error) {
	m, err := s.resolve(ctx, "KeyId", ref)
	if err != nil {
		return nil, err
	}
	if err := usable(m); err != nil {
		return nil, err
	}
	v, err := s.versionHandle(ctx, version)
	if errors.Is(err, errNoVersion) || err == nil && v.keyID != m.KeyId {
		return nil, InvalidCiphertext(errors.New("the ciphertext's key version is not a version of this key"))
	}
	if err != nil {
		return nil, err
	}
	var pt []byte
	err = s.withVersionKey(ctx, version, v, func(h hsm.ObjectHandle) error {
		var err error
		pt, err = s.tok.OpenGCM(ctx, h, sealed, externalAAD(aad))
		return err
	})
	if errors.Is(err, hsm.ErrDecryption) {
		return nil, InvalidCiphertext(err)
	}
	if err != nil {
		s.forgetOnTokenError(v.keyID, err)
		return nil, Internal("decrypting in the token", err)
	}
	return pt, nil
}

func externalAAD(aad []byte) []byte {
	return append([]byte{ExternalAADTag}, aad...)
}
