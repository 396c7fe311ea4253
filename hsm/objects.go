package hsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/pkcs11"
)

// find lists the objects matching tmpl in one session. C_FindObjectsInit,
// where SoftHSM2 matches every object, runs while no token object is being
// written by this process ([Token.excludingSearches]).
func (s *Session) find(tmpl []*pkcs11.Attribute) ([]ObjectHandle, error) {
	api := s.tok.api
	s.tok.locks.scan.RLock()
	err := api.FindObjectsInit(s.handle, tmpl)
	s.tok.locks.scan.RUnlock()
	if err != nil {
		return nil, ckr("C_FindObjectsInit", err)
	}
	var all []ObjectHandle
	for {
		hs, _, err := api.FindObjects(s.handle, 64)
		if err != nil {
			_ = api.FindObjectsFinal(s.handle)
			return nil, ckr("C_FindObjects", err)
		}
		all = append(all, hs...)
		if len(hs) < 64 {
			break
		}
	}
	if err := api.FindObjectsFinal(s.handle); err != nil {
		return nil, ckr("C_FindObjectsFinal", err)
	}
	return all, nil
}

// FindObjects returns every object whose attributes equal those in tmpl.
func (t *Token) FindObjects(ctx context.Context, tmpl []*pkcs11.Attribute) ([]ObjectHandle, error) {
	return Do(ctx, t, func(s *Session) ([]ObjectHandle, error) { return s.find(tmpl) })
}

// findOne returns the single object matching tmpl: ErrNotFound if none,
// ErrAmbiguous if several.
func (t *Token) findOne(ctx context.Context, what string, tmpl []*pkcs11.Attribute) (ObjectHandle, error) {
	hs, err := t.FindObjects(ctx, tmpl)
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 0:
		return 0, fmt.Errorf("%w: %s", ErrNotFound, what)
	case 1:
		return hs[0], nil
	}
	return 0, fmt.Errorf("%w: %d objects for %s", ErrAmbiguous, len(hs), what)
}

// FindSecretKeyByID returns the token (persistent) secret key whose CKA_ID
// is id; session copies of it are not counted.
func (t *Token) FindSecretKeyByID(ctx context.Context, id []byte) (ObjectHandle, error) {
	return t.findOne(ctx, fmt.Sprintf("secret key with ID %x", id), []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_ID, id)})
}

// FindSecretKeyByLabel returns the secret key whose CKA_LABEL is label.
func (t *Token) FindSecretKeyByLabel(ctx context.Context, label string) (ObjectHandle, error) {
	return t.findOne(ctx, fmt.Sprintf("secret key labelled %q", label), []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_LABEL, label)})
}

// FindKeyByLabel returns the object of class (CKO_PRIVATE_KEY,
// CKO_PUBLIC_KEY, CKO_SECRET_KEY) labelled label.
func (t *Token) FindKeyByLabel(ctx context.Context, class uint, label string) (ObjectHandle, error) {
	return t.findOne(ctx, fmt.Sprintf("%s labelled %q", className(class), label), []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, class), attr(pkcs11.CKA_LABEL, label)})
}

// DestroyObject destroys one object. A token object is destroyed under the
// token's object lock ([Token.lockObjects]); a session object is not.
func (t *Token) DestroyObject(ctx context.Context, h ObjectHandle) error {
	if a, err := t.Attributes(ctx, h, pkcs11.CKA_TOKEN); err == nil && len(a[pkcs11.CKA_TOKEN]) == 1 && a[pkcs11.CKA_TOKEN][0] == 0 {
		return t.destroy(ctx, h)
	}
	t.lockObjects()
	defer t.unlockObjects()
	return t.destroy(ctx, h)
}

// DestroySessionObject destroys h, which the caller knows is a session
// object (CKA_TOKEN false): no attribute read, no object lock. A failure
// other than "no such object" is tried twice more: what is destroyed here
// is a temporary or a CMK copy, which would otherwise stay in the token
// until its session ends.
func (t *Token) DestroySessionObject(ctx context.Context, h ObjectHandle) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = t.destroy(ctx, h)
		if err == nil || attempt == 3 || IsHandleInvalid(err) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
}

// SetAttributes changes attributes of an object (C_SetAttributeValue), e.g.
// labels a session key once it is checked. The token refuses attributes
// that may not change (CKR_ATTRIBUTE_READ_ONLY) or may only become
// stricter.
func (t *Token) SetAttributes(ctx context.Context, h ObjectHandle, attrs []*pkcs11.Attribute) error {
	// A token object's file is rewritten ([Token.excludingSearches]); for a
	// session object the exclusion costs less than asking which it is.
	_, err := Do(ctx, t, t.excludingSearches(func(s *Session) (ObjectHandle, error) {
		return h, ckr("C_SetAttributeValue", t.api.SetAttributeValue(s.handle, h, attrs))
	}))
	return err
}

// destroy is DestroyObject for a caller that holds the object lock or
// destroys a session object.
func (t *Token) destroy(ctx context.Context, h ObjectHandle) error {
	return do(ctx, t, func(s *Session) error { return ckr("C_DestroyObject", t.api.DestroyObject(s.handle, h)) })
}

// destroyMatching destroys every object matching tmpl (cleanup after a failed
// creation); it returns how many it destroyed.
func (t *Token) destroyMatching(ctx context.Context, tmpl []*pkcs11.Attribute) (int, error) {
	hs, err := t.FindObjects(ctx, tmpl)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range hs {
		if err := t.destroy(ctx, h); err == nil {
			n++
		}
	}
	return n, nil
}

// Attributes reads the given attribute types of an object. A sensitive or
// unknown attribute makes the whole call fail with the token's CKR code
// (CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID).
func (t *Token) Attributes(ctx context.Context, h ObjectHandle, types ...uint) (map[uint][]byte, error) {
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, ty := range types {
		tmpl[i] = attr(ty, nil)
	}
	got, err := Do(ctx, t, func(s *Session) ([]*pkcs11.Attribute, error) {
		a, err := t.api.GetAttributeValue(s.handle, h, tmpl)
		return a, ckr("C_GetAttributeValue", err)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[uint][]byte, len(got))
	for _, a := range got {
		out[a.Type] = a.Value
	}
	return out, nil
}

// BoolAttribute reads one CK_BBOOL attribute.
func (t *Token) BoolAttribute(ctx context.Context, h ObjectHandle, typ uint) (bool, error) {
	m, err := t.Attributes(ctx, h, typ)
	if err != nil {
		return false, err
	}
	v := m[typ]
	return len(v) == 1 && v[0] != 0, nil
}

// ULongAttribute reads one CK_ULONG attribute.
func (t *Token) ULongAttribute(ctx context.Context, h ObjectHandle, typ uint) (uint, error) {
	m, err := t.Attributes(ctx, h, typ)
	if err != nil {
		return 0, err
	}
	return decodeULong(m[typ])
}

func decodeULong(v []byte) (uint, error) {
	switch len(v) {
	case 8:
		return uint(binary.NativeEndian.Uint64(v)), nil
	case 4:
		return uint(binary.NativeEndian.Uint32(v)), nil
	}
	return 0, fmt.Errorf("hsm: CK_ULONG attribute of %d bytes", len(v))
}

// CountObjects returns how many objects of the token this session can see
// (used by tests to assert that a failed operation left nothing behind).
func (t *Token) CountObjects(ctx context.Context) (int, error) {
	hs, err := t.FindObjects(ctx, nil)
	return len(hs), err
}

func className(class uint) string {
	switch class {
	case pkcs11.CKO_PRIVATE_KEY:
		return "private key"
	case pkcs11.CKO_PUBLIC_KEY:
		return "public key"
	case pkcs11.CKO_SECRET_KEY:
		return "secret key"
	case pkcs11.CKO_DATA:
		return "data object"
	}
	return fmt.Sprintf("object of class %#x", class)
}

// CKA_LABEL re-exports the label attribute type for callers of Attributes.
const CKA_LABEL = pkcs11.CKA_LABEL

// SecretKeyByIDTemplate is the search template for secret keys with CKA_ID id.
func SecretKeyByIDTemplate(id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), attr(pkcs11.CKA_ID, id)}
}
