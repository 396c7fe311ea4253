package importer

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/google/uuid"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// Encrypt encrypts Plaintext with the AES key labelled KeyLabel, in the
// token: AES-GCM with a fresh 12-byte IV from the token RNG and a 128-bit
// tag. CiphertextBlob is base64(iv ‖ ciphertext ‖ tag), which any AES-GCM
// implementation holding the key opens with the same AAD.
//
// AAD defaults to the bytes of [DefaultAAD], not to empty: SoftHSM2 can
// crash on AES-GCM with empty AAD, so p11kms never asks a token for it.
//
// Errors: InvalidParameter (naming the parameter), Forbidden.KeyNotFound,
// InvalidParameter for KeyLabel when the key is not an AES key or may not
// encrypt, InternalFailure for a token fault.
func (s *Service) Encrypt(ctx context.Context, req *EncryptRequest) (*EncryptResponse, error) {
	if req == nil {
		return nil, provider.InvalidParam("request", "is required")
	}
	if err := checkLabel("KeyLabel", req.KeyLabel); err != nil {
		return nil, err
	}
	if len(req.Plaintext) > 2*MaxPlaintextBytes {
		return nil, provider.InvalidParam("Plaintext", "is %d characters; accepted: 1 to %d bytes, base64", len(req.Plaintext), MaxPlaintextBytes)
	}
	pt, err := decodeBase64("Plaintext", req.Plaintext)
	if err != nil {
		return nil, err
	}
	defer wrap.ZeroBytes(pt)
	if len(pt) == 0 || len(pt) > MaxPlaintextBytes {
		return nil, provider.InvalidParam("Plaintext", "is %d bytes; accepted: 1 to %d bytes, base64", len(pt), MaxPlaintextBytes)
	}
	aad, err := parseAAD(req.AAD)
	if err != nil {
		return nil, err
	}
	iv, err := s.tok.Random(ctx, hsm.GCMIVSize)
	if err != nil {
		return nil, internal("drawing an IV", err)
	}
	sealed, err := s.withKey(ctx, req.KeyLabel, func(h hsm.ObjectHandle) ([]byte, error) {
		return s.tok.EncryptGCM(ctx, h, iv, pt, aad)
	})
	if err != nil {
		return nil, keyUseError(req.KeyLabel, "encrypt", err)
	}
	blob := make([]byte, 0, len(iv)+len(sealed))
	blob = append(append(blob, iv...), sealed...)
	return &EncryptResponse{KeyLabel: req.KeyLabel, CiphertextBlob: base64.StdEncoding.EncodeToString(blob), RequestId: uuid.NewString()}, nil
}

// Decrypt opens an Encrypt CiphertextBlob with the AES key labelled
// KeyLabel, in the token. Every authentication failure (other key, other
// AAD, altered or truncated blob) is the one InvalidCiphertext error.
func (s *Service) Decrypt(ctx context.Context, req *DecryptRequest) (*DecryptResponse, error) {
	if req == nil {
		return nil, provider.InvalidParam("request", "is required")
	}
	if err := checkLabel("KeyLabel", req.KeyLabel); err != nil {
		return nil, err
	}
	if req.CiphertextBlob == "" {
		return nil, provider.InvalidParam("CiphertextBlob", "is required: base64(iv ‖ ciphertext ‖ tag) as Encrypt returns it")
	}
	if len(req.CiphertextBlob) > 2*MaxPlaintextBytes {
		return nil, provider.InvalidParam("CiphertextBlob", "is %d characters; accepted: at most %d", len(req.CiphertextBlob), 2*MaxPlaintextBytes)
	}
	blob, err := decodeBase64("CiphertextBlob", req.CiphertextBlob)
	if err != nil {
		return nil, err
	}
	aad, err := parseAAD(req.AAD)
	if err != nil {
		return nil, err
	}
	if len(blob) < hsm.GCMIVSize+hsm.GCMTagSize+1 {
		return nil, invalidBlob()
	}
	iv, sealed := blob[:hsm.GCMIVSize], blob[hsm.GCMIVSize:]
	pt, err := s.withKey(ctx, req.KeyLabel, func(h hsm.ObjectHandle) ([]byte, error) {
		return s.tok.DecryptGCM(ctx, h, iv, sealed, aad)
	})
	if errors.Is(err, hsm.ErrDecryption) {
		return nil, invalidBlob()
	}
	if err != nil {
		return nil, keyUseError(req.KeyLabel, "decrypt", err)
	}
	out := base64.StdEncoding.EncodeToString(pt)
	wrap.ZeroBytes(pt)
	return &DecryptResponse{KeyLabel: req.KeyLabel, Plaintext: out, RequestId: uuid.NewString()}, nil
}

// parseAAD decodes the AAD parameter; empty means DefaultAAD.
func parseAAD(s string) ([]byte, error) {
	if s == "" {
		return []byte(DefaultAAD), nil
	}
	if len(s) > 2*MaxAADBytes {
		return nil, provider.InvalidParam("AAD", "is %d characters; accepted: at most %d bytes, base64", len(s), MaxAADBytes)
	}
	aad, err := decodeBase64("AAD", s)
	if err != nil {
		return nil, err
	}
	switch {
	case len(aad) > MaxAADBytes:
		return nil, provider.InvalidParam("AAD", "is %d bytes; accepted: at most %d bytes, base64", len(aad), MaxAADBytes)
	case len(aad) == 0:
		return []byte(DefaultAAD), nil
	}
	return aad, nil
}

// withKey runs fn with the key labelled label, looking the label up again
// once if the cached handle went stale.
func (s *Service) withKey(ctx context.Context, label string, fn func(hsm.ObjectHandle) ([]byte, error)) ([]byte, error) {
	h, err := s.loadKey(ctx, label, false)
	if err != nil {
		return nil, err
	}
	out, err := fn(h)
	if err != nil && isStale(err) {
		s.forgetKey(label)
		if h, err = s.loadKey(ctx, label, true); err != nil {
			return nil, err
		}
		out, err = fn(h)
	}
	return out, err
}

// keyUseError maps a token refusal to use a key to a parameter error.
func keyUseError(label, op string, err error) error {
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case hsm.IsCode(err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED):
		return provider.InvalidParam("KeyLabel", "the key labelled %q may not %s (its Usage lacks %s)", label, op, op)
	case hsm.IsCode(err, pkcs11.CKR_KEY_TYPE_INCONSISTENT):
		return provider.InvalidParam("KeyLabel", "the key labelled %q is not an AES key; accepted: an AES key imported with Usage %s", label, op)
	}
	return internal("AES-GCM in the token", err)
}
