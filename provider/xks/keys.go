package xks

import (
	"bytes"
	"context"
	"errors"

	"github.com/p11kms/p11kms/hsm"
)

// externalKey is a configured external key as found: a token AES key
// (tokenKey) or a CMK (cmkKey).
type externalKey struct {
	id      string
	cfg     Key
	usage   hsm.Usage
	derive  bool
	enabled bool
	backend backend
}

// backend seals and opens for one external key; errors are *Error.
type backend interface {
	// seal encrypts pt under aad (the request's) and returns the
	// ciphertextMetadata it made and the token's output.
	seal(ctx context.Context, pt, aad []byte) (md []byte, s hsm.Sealed, err error)
	// open decrypts under aad and the request's ciphertextMetadata.
	open(ctx context.Context, md []byte, s hsm.Sealed, aad []byte) ([]byte, error)
}

// tokenKey is an AES-256 key of the token, by label.
type tokenKey struct {
	tok *hsm.Token
	h   hsm.ObjectHandle
}

func (k tokenKey) seal(ctx context.Context, pt, aad []byte) ([]byte, hsm.Sealed, error) {
	md := ciphertextMetadata
	sealed, err := k.tok.SealGCM(ctx, k.h, pt, aeadInput(aad, md))
	if err != nil {
		return nil, hsm.Sealed{}, tokenError("encrypting in the token", err)
	}
	return md, sealed, nil
}

func (k tokenKey) open(ctx context.Context, md []byte, s hsm.Sealed, aad []byte) ([]byte, error) {
	pt, err := k.tok.OpenGCM(ctx, k.h, s, aeadInput(aad, md))
	if errors.Is(err, hsm.ErrDecryption) {
		return nil, badCiphertext()
	}
	if err != nil {
		return nil, tokenError("decrypting in the token", err)
	}
	return pt, nil
}

// badCiphertext is Decrypt's one answer for any mismatch.
func badCiphertext() *Error {
	return fail(InvalidCiphertextException, "the ciphertext, initializationVector, authenticationTag, "+
		"additionalAuthenticatedData or ciphertextMetadata is not what was encrypted under this key")
}

// usage is the metadata answer's keyUsage, in the spec's words (at most
// ten values).
func (k *externalKey) usageNames() []string {
	out := []string{}
	for _, u := range []struct {
		flag hsm.Usage
		name string
	}{{hsm.UsageEncrypt, "ENCRYPT"}, {hsm.UsageDecrypt, "DECRYPT"}, {hsm.UsageWrap, "WRAP"},
		{hsm.UsageUnwrap, "UNWRAP"}, {hsm.UsageSign, "SIGN"}, {hsm.UsageVerify, "VERIFY"}} {
		if k.usage&u.flag != 0 {
			out = append(out, u.name)
		}
	}
	if k.derive {
		out = append(out, "DERIVE")
	}
	return out
}

// can is InvalidKeyUsageException unless the key allows every flag.
func (k *externalKey) can(what string, flags hsm.Usage) error {
	if k.usage&flags != flags {
		return fail(InvalidKeyUsageException, "the key %s does not allow %s", k.id, what)
	}
	return nil
}

// configured returns the external key's configuration: KeyNotFoundException
// for an externalKeyId the configuration does not list.
func (s *service) configured(id string) (Key, error) {
	k, ok := s.file.Load().Keys[id]
	if !ok {
		return Key{}, fail(KeyNotFoundException, "no external key %s in this proxy", id)
	}
	return k, nil
}

// find looks the configured key up: a CMK, or a key of the token.
func (s *service) find(ctx context.Context, id string, cfg Key) (*externalKey, error) {
	if cfg.CMK != "" {
		return s.findCMK(ctx, id, cfg)
	}
	a, err := s.tok.AESKeyByLabel(ctx, cfg.label(id))
	switch {
	case err == nil && !cfg.Foreign && !bytes.HasPrefix(a.ID, []byte(KeyIDPrefix)):
		return nil, fail(InvalidStateException, "the token key of external key %s was not made for XKS "+
			"(p11kms xks create-key); set \"foreign\": true for it in the XKS configuration if it is meant to be one", id)
	case err == nil:
		return &externalKey{id: id, cfg: cfg, usage: a.Usage, derive: a.Derive, enabled: !cfg.Disabled,
			backend: tokenKey{tok: s.tok, h: a.Handle}}, nil
	case errors.Is(err, hsm.ErrNotFound):
		return nil, fail(KeyNotFoundException, "the token holds no key for external key %s", id)
	case errors.Is(err, hsm.ErrAmbiguous):
		return nil, fail(InvalidStateException, "the token holds several keys labelled as external key %s", id)
	case errors.Is(err, hsm.ErrNotAES256):
		return nil, fail(InvalidStateException, "external key %s is not a 256-bit AES key", id)
	case errors.Is(err, hsm.ErrExtractable):
		return nil, fail(InvalidStateException, "external key %s can leave the token (extractable or not sensitive): refused", id)
	}
	return nil, tokenError("finding the key", err)
}

// tokenError is DependencyTimeoutException when the context ran out
// while waiting for the token, else InternalException.
func tokenError(what string, err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Name: DependencyTimeoutException, Message: "the token did not answer in time", Cause: err}
	}
	return internal(what, err)
}
