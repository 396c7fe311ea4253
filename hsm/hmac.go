package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// HMACKeyBytes is the size of the generic secret an [HMACKey] holds.
const HMACKeyBytes = 32

// HMACSize is the size of an HMAC-SHA256 tag.
const HMACSize = 32

// HMACKey is an HMAC-SHA256 key (CKK_GENERIC_SECRET, HMACKeyBytes bytes)
// that lives in the token: generated there, sensitive and not extractable,
// usable only for CKM_SHA256_HMAC signing and verifying. Nobody without the
// token (and its PIN) can compute or check a tag.
type HMACKey struct {
	tok   *Token
	h     ObjectHandle // the token object
	label string
	// session is a session copy of h ([Token.CopyToSession]), 0 if none:
	// SoftHSM2 then skips decrypting the private token object on every call.
	session atomic.Uint64
}

// UseSessionCopy makes Sign and Verify use a session copy of the key (it
// stays sensitive and non-extractable); if the copy is lost they fall back
// to the token object.
func (k *HMACKey) UseSessionCopy(ctx context.Context) error {
	c, err := k.tok.CopyToSession(ctx, k.h)
	if err != nil {
		return err
	}
	k.session.Store(uint64(c))
	return nil
}

// handle is the key to use: the session copy if there is one.
func (k *HMACKey) handle() ObjectHandle {
	if c := k.session.Load(); c != 0 {
		return ObjectHandle(c)
	}
	return k.h
}

// withKey runs op with the session copy, and once more with the token
// object if the copy is gone (its keeper session was lost).
func withKey[T any](k *HMACKey, op func(ObjectHandle) (T, error)) (T, error) {
	h := k.handle()
	v, err := op(h)
	if h != k.h && IsHandleInvalid(err) {
		k.session.CompareAndSwap(uint64(h), 0)
		return op(k.h)
	}
	return v, err
}

// Label is the key's CKA_LABEL.
func (k *HMACKey) Label() string { return k.label }

// HMACKey returns the token's HMAC key labelled label, generating it on
// first use. The search and the generation run under the token's object
// lock, so two processes (or goroutines) asking at once find or make one
// key, never two; a creation that fails leaves nothing behind
// ([Token.createLocked]).
func (t *Token) HMACKey(ctx context.Context, label string) (*HMACKey, error) {
	if label == "" {
		return nil, fmt.Errorf("hsm: HMACKey: the label must not be empty")
	}
	identity := hmacIdentity(label)
	if h, err := t.findOne(ctx, fmt.Sprintf("HMAC key labelled %q", label), identity); err == nil {
		return &HMACKey{tok: t, h: h, label: label}, nil
	}
	if err := t.CheckOpen(); err != nil {
		return nil, err
	}
	t.lockObjects()
	defer t.unlockObjects()
	h, err := t.findOne(ctx, fmt.Sprintf("HMAC key labelled %q", label), identity)
	if err == nil {
		return &HMACKey{tok: t, h: h, label: label}, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	opt := SecretKeyOptions{Label: label, Usage: UsageSign | UsageVerify}
	if err := opt.ensureID(ctx, t); err != nil {
		return nil, err
	}
	tmpl := opt.secretTemplate(pkcs11.CKK_GENERIC_SECRET, HMACKeyBytes)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}
	h, err = t.createLocked(ctx, opt.identity(), t.excludingSearches(func(s *Session) (ObjectHandle, error) {
		h, err := t.api.GenerateKey(s.handle, mech, tmpl)
		return h, ckr("C_GenerateKey", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("hsm: generating HMAC key %q: %w", label, err)
	}
	return &HMACKey{tok: t, h: h, label: label}, nil
}

// FindHMACKey returns the token's HMAC key labelled label, or ErrNotFound:
// unlike [Token.HMACKey] it never creates one (a verifier must not).
func (t *Token) FindHMACKey(ctx context.Context, label string) (*HMACKey, error) {
	h, err := t.findOne(ctx, fmt.Sprintf("HMAC key labelled %q", label), hmacIdentity(label))
	if err != nil {
		return nil, err
	}
	return &HMACKey{tok: t, h: h, label: label}, nil
}

func hmacIdentity(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET), attr(pkcs11.CKA_LABEL, label)}
}

var hmacMechanism = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}

// Sign returns the HMAC-SHA256 of msg (C_SignInit, C_Sign: one token
// operation).
func (k *HMACKey) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	return withKey(k, func(h ObjectHandle) ([]byte, error) {
		return Do(ctx, k.tok, func(s *Session) ([]byte, error) {
			if err := k.tok.api.SignInit(s.handle, hmacMechanism, h); err != nil {
				return nil, ckr("C_SignInit", err)
			}
			mac, err := k.tok.api.Sign(s.handle, msg)
			return mac, ckr("C_Sign", err)
		})
	})
}

// Verify reports whether mac is the HMAC-SHA256 of msg (C_VerifyInit,
// C_Verify: the token compares). A wrong tag is false with a nil error;
// err is for a token that could not answer.
func (k *HMACKey) Verify(ctx context.Context, msg, mac []byte) (bool, error) {
	if len(mac) != HMACSize {
		return false, nil
	}
	_, err := withKey(k, func(h ObjectHandle) (struct{}, error) {
		return struct{}{}, do(ctx, k.tok, func(s *Session) error {
			if err := k.tok.api.VerifyInit(s.handle, hmacMechanism, h); err != nil {
				return ckr("C_VerifyInit", err)
			}
			return ckr("C_Verify", k.tok.api.Verify(s.handle, msg, mac))
		})
	})
	if IsCode(err, pkcs11.CKR_SIGNATURE_INVALID, pkcs11.CKR_SIGNATURE_LEN_RANGE) {
		return false, nil
	}
	return err == nil, err
}
