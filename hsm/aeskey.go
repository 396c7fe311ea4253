package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// AESKey returns the token's AES-256 key labelled label (encrypt and
// decrypt only; sensitive, never extractable), generating it on first use.
// As with [Token.HMACKey], the search and the generation run under the
// token's object lock, so processes asking at once find or make one key.
func (t *Token) AESKey(ctx context.Context, label string) (ObjectHandle, error) {
	if label == "" {
		return 0, errors.New("hsm: AESKey: the label must not be empty")
	}
	what := fmt.Sprintf("AES key labelled %q", label)
	identity := []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES), attr(pkcs11.CKA_LABEL, label)}
	if h, err := t.findOne(ctx, what, identity); err == nil {
		return h, nil
	}
	if err := t.CheckOpen(); err != nil {
		return 0, err
	}
	t.lockObjects()
	defer t.unlockObjects()
	h, err := t.findOne(ctx, what, identity)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return h, err
	}
	opt := SecretKeyOptions{Label: label, Usage: UsageEncrypt | UsageDecrypt}
	if err := opt.ensureID(ctx, t); err != nil {
		return 0, err
	}
	tmpl := opt.secretTemplate(pkcs11.CKK_AES, 32)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
	h, err = t.createLocked(ctx, opt.identity(), t.excludingSearches(func(s *Session) (ObjectHandle, error) {
		h, err := t.api.GenerateKey(s.handle, mech, tmpl)
		return h, ckr("C_GenerateKey", err)
	}))
	if err != nil {
		return 0, fmt.Errorf("hsm: generating %s: %w", what, err)
	}
	return h, nil
}
