package xks

import (
	"bytes"
	"context"
	"errors"

	"github.com/p11kms/p11kms/hsm"
)

// externalKey is a configured external key as found in the token.
type externalKey struct {
	id  string
	cfg Key
	aes hsm.AESKey
}

// usage is the metadata answer's keyUsage, in the spec's words (at most
// ten values).
func (k *externalKey) usage() []string {
	out := []string{}
	for _, u := range []struct {
		flag hsm.Usage
		name string
	}{{hsm.UsageEncrypt, "ENCRYPT"}, {hsm.UsageDecrypt, "DECRYPT"}, {hsm.UsageWrap, "WRAP"},
		{hsm.UsageUnwrap, "UNWRAP"}, {hsm.UsageSign, "SIGN"}, {hsm.UsageVerify, "VERIFY"}} {
		if k.aes.Usage&u.flag != 0 {
			out = append(out, u.name)
		}
	}
	if k.aes.Derive {
		out = append(out, "DERIVE")
	}
	return out
}

// can is InvalidKeyUsageException unless the key allows every flag.
func (k *externalKey) can(what string, flags hsm.Usage) error {
	if k.aes.Usage&flags != flags {
		return fail(InvalidKeyUsageException, "the key %s does not allow %s", k.id, what)
	}
	return nil
}

// configured returns the external key's configuration: KeyNotFoundException
// for an externalKeyId the configuration does not list.
func (s *service) configured(id string) (Key, error) {
	k, ok := s.file.Keys[id]
	if !ok {
		return Key{}, fail(KeyNotFoundException, "no external key %s in this proxy", id)
	}
	return k, nil
}

// find looks the configured key up in the token.
func (s *service) find(ctx context.Context, id string, cfg Key) (*externalKey, error) {
	a, err := s.tok.AESKeyByLabel(ctx, cfg.label(id))
	switch {
	case err == nil && !cfg.Foreign && !bytes.HasPrefix(a.ID, []byte(KeyIDPrefix)):
		return nil, fail(InvalidStateException, "the token key of external key %s was not made for XKS "+
			"(p11kms xks create-key); set \"foreign\": true for it in the XKS configuration if it is meant to be one", id)
	case err == nil:
		return &externalKey{id: id, cfg: cfg, aes: a}, nil
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
