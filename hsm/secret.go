package hsm

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// Usage is the set of operations a key may be used for.
type Usage uint

// Usage flags, mapped to CKA_ENCRYPT, CKA_DECRYPT, CKA_WRAP, CKA_UNWRAP,
// CKA_SIGN, CKA_VERIFY.
const (
	UsageEncrypt Usage = 1 << iota
	UsageDecrypt
	UsageWrap
	UsageUnwrap
	UsageSign
	UsageVerify
)

func (u Usage) attrs() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		attr(pkcs11.CKA_ENCRYPT, u&UsageEncrypt != 0),
		attr(pkcs11.CKA_DECRYPT, u&UsageDecrypt != 0),
		attr(pkcs11.CKA_WRAP, u&UsageWrap != 0),
		attr(pkcs11.CKA_UNWRAP, u&UsageUnwrap != 0),
		attr(pkcs11.CKA_SIGN, u&UsageSign != 0),
		attr(pkcs11.CKA_VERIFY, u&UsageVerify != 0),
	}
}

// SecretKeyOptions describes a secret key to generate, unwrap, derive or
// create. Every key p11kms makes is CKA_SENSITIVE and not CKA_EXTRACTABLE.
type SecretKeyOptions struct {
	ID    []byte // CKA_ID; a 16-byte random ID from the token RNG if empty
	Label string // CKA_LABEL
	// Ephemeral makes a session object (CKA_TOKEN=false): it disappears when
	// the process ends and costs no token write.
	Ephemeral bool
	Usage     Usage
}

func (o *SecretKeyOptions) ensureID(ctx context.Context, t *Token) error {
	if len(o.ID) > 0 {
		return nil
	}
	id, err := t.Random(ctx, 16)
	if err != nil {
		return err
	}
	o.ID = id
	return nil
}

// secretTemplate is the template of a sensitive, non-extractable secret key.
func (o *SecretKeyOptions) secretTemplate(keyType uint, valueLen int) []*pkcs11.Attribute {
	attrs := []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		attr(pkcs11.CKA_KEY_TYPE, keyType),
		attr(pkcs11.CKA_TOKEN, !o.Ephemeral),
		attr(pkcs11.CKA_PRIVATE, true),
		attr(pkcs11.CKA_SENSITIVE, true),
		attr(pkcs11.CKA_EXTRACTABLE, false),
		attr(pkcs11.CKA_ID, o.ID),
	}
	if o.Label != "" {
		attrs = append(attrs, attr(pkcs11.CKA_LABEL, o.Label))
	}
	if valueLen > 0 {
		attrs = append(attrs, attr(pkcs11.CKA_VALUE_LEN, valueLen))
	}
	return template(attrs, o.Usage.attrs()...)
}

// identity is the template that finds what a creation may have left behind.
func (o *SecretKeyOptions) identity() []*pkcs11.Attribute {
	a := []*pkcs11.Attribute{attr(pkcs11.CKA_ID, o.ID)}
	if o.Label != "" {
		a = append(a, attr(pkcs11.CKA_LABEL, o.Label))
	}
	return a
}

// create runs one object-creating call in a keeper session: session
// objects (Ephemeral keys) belong to the session that made them, and pool
// sessions may be closed at any time. A persistent (token) object is
// created under the token's object lock, so that this process keeps seeing
// other processes' objects and SoftHSM2 < 2.7 does not fail concurrent
// creations ([Token.lockObjects]). On failure it destroys whatever matches
// identity: SoftHSM2 < 2.7 may report an error and still create the object.
func (t *Token) create(ctx context.Context, persistent bool, identity []*pkcs11.Attribute, fn func(*Session) (ObjectHandle, error)) (ObjectHandle, error) {
	if err := t.CheckOpen(); err != nil {
		return 0, err
	}
	if persistent {
		t.lockObjects()
		defer t.unlockObjects()
		fn = t.excludingSearches(fn)
	}
	return t.createLocked(ctx, identity, fn)
}

// createLocked is create for a caller that holds the object lock, or that
// creates a session object. fn must be wrapped by [Token.excludingSearches]
// if it creates a token object.
func (t *Token) createLocked(ctx context.Context, identity []*pkcs11.Attribute, fn func(*Session) (ObjectHandle, error)) (ObjectHandle, error) {
	for attempt := 1; ; attempt++ {
		h, err := t.onKeeper(fn)
		if err == nil || len(identity) == 0 {
			return h, err
		}
		_, _ = t.destroyMatching(context.WithoutCancel(ctx), identity)
		// CKR_GENERAL_ERROR from a creation racing other sessions is
		// transient on SoftHSM2 < 2.7: with what it left removed, try again.
		if !IsCode(err, pkcs11.CKR_GENERAL_ERROR) || attempt == 3 {
			return h, err
		}
	}
}

// GenerateAESKey generates an AES key of bits (128, 192, 256) in the token.
func (t *Token) GenerateAESKey(ctx context.Context, bits int, opt SecretKeyOptions) (ObjectHandle, error) {
	if bits != 128 && bits != 192 && bits != 256 {
		return 0, fmt.Errorf("hsm: GenerateAESKey: %d bits: accepted 128, 192, 256", bits)
	}
	if err := opt.ensureID(ctx, t); err != nil {
		return 0, err
	}
	tmpl := opt.secretTemplate(pkcs11.CKK_AES, bits/8)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
	return t.create(ctx, !opt.Ephemeral, opt.identity(), func(s *Session) (ObjectHandle, error) {
		h, err := t.api.GenerateKey(s.handle, mech, tmpl)
		return h, ckr("C_GenerateKey", err)
	})
}

// CreateSecretKey creates a secret key object holding value (C_CreateObject),
// sensitive and non-extractable. keyType is CKK_AES (16, 24 or 32 bytes) or
// CKK_GENERIC_SECRET. The caller still owns and must zero value.
func (t *Token) CreateSecretKey(ctx context.Context, keyType uint, value []byte, opt SecretKeyOptions) (ObjectHandle, error) {
	if err := checkSecretLen(keyType, len(value)); err != nil {
		return 0, err
	}
	if err := opt.ensureID(ctx, t); err != nil {
		return 0, err
	}
	own := bytes.Clone(value) // pkcs11.NewAttribute keeps the slice it is given
	defer clear(own)
	tmpl := append(opt.secretTemplate(keyType, 0), attr(pkcs11.CKA_VALUE, own))
	return t.create(ctx, !opt.Ephemeral, opt.identity(), func(s *Session) (ObjectHandle, error) {
		h, err := t.api.CreateObject(s.handle, tmpl)
		return h, ckr("C_CreateObject", err)
	})
}

func checkSecretLen(keyType uint, n int) error {
	switch keyType {
	case pkcs11.CKK_AES:
		if n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("hsm: AES key of %d bytes: accepted 16, 24, 32", n)
		}
	case pkcs11.CKK_GENERIC_SECRET:
		if n < 1 || n > 1024 {
			return fmt.Errorf("hsm: generic secret of %d bytes: accepted 1 to 1024", n)
		}
	default:
		return fmt.Errorf("hsm: key type %#x: accepted CKK_AES, CKK_GENERIC_SECRET", keyType)
	}
	return nil
}

// CopyToSession copies a token key into a session object of this process
// (C_CopyObject with CKA_TOKEN=false). It stays sensitive and
// non-extractable; SoftHSM uses it without re-reading and decrypting the
// token object on every call (~2x faster GCM). The copy is made in a
// long-lived session outside the pool, so it lives until the Token closes
// or DestroyObject removes it; if that session is lost, operations on the
// copy fail with CKR_OBJECT_HANDLE_INVALID or CKR_KEY_HANDLE_INVALID and the
// caller falls back to the token object.
func (t *Token) CopyToSession(ctx context.Context, h ObjectHandle) (ObjectHandle, error) {
	if err := t.CheckOpen(); err != nil {
		return 0, err
	}
	tmpl := []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, false)}
	return t.onKeeper(t.excludingSearches(func(s *Session) (ObjectHandle, error) {
		c, err := t.api.CopyObject(s.handle, h, tmpl)
		return c, ckr("C_CopyObject", err)
	}))
}

// keeper is one long-lived session outside the pool. Keepers are never
// closed while the Token is open (unless their session breaks): they anchor
// the login and the object handles, and own the session objects p11kms
// makes (CMK session copies, Ephemeral keys). A Token has up to maxKeepers
// of them so that creations of session objects (an Ephemeral import's
// C_UnwrapKey is a private-key operation) run side by side.
type keeper struct {
	mu sync.Mutex
	s  *Session
}

const maxKeepers = 4

// onKeeper runs fn on a free keeper session (or waits for one), opening it
// if needed and reopening it once if it is lost.
func (t *Token) onKeeper(fn func(*Session) (ObjectHandle, error)) (ObjectHandle, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	n := len(t.keepers)
	start := int(t.nextKeeper.Add(1) % uint32(n))
	var k *keeper
	for i := 0; i < n && k == nil; i++ {
		if c := t.keepers[(start+i)%n]; c.mu.TryLock() {
			k = c
		}
	}
	if k == nil {
		k = t.keepers[start]
		k.mu.Lock()
	}
	defer k.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if k.s == nil {
			if err := t.CheckOpen(); err != nil {
				return 0, err
			}
			s, err := t.openSession()
			if err != nil {
				return 0, err
			}
			k.s = s
		}
		h, err := fn(k.s)
		if err == nil || !sessionBroken(err) || attempt == 1 {
			return h, err
		}
		_ = t.api.CloseSession(k.s.handle)
		k.s = nil
		t.sessionEpoch.Add(1)
	}
}

// IsHandleInvalid reports whether err means an object handle no longer
// names an object (a destroyed session copy, a key deleted meanwhile).
func IsHandleInvalid(err error) bool {
	return IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID)
}
