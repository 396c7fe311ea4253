package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
)

// rememberVersion caches a version's handle.
func (s *Service) rememberVersion(id uuid.UUID, keyID string, h hsm.ObjectHandle) {
	s.mu.Lock()
	s.versions[id] = versionRef{keyID: keyID, handle: h}
	s.mu.Unlock()
}

// forgetKey drops a key's cached version handles and destroys their
// session copies (on disable and deletion, so the key stops working here at once).
func (s *Service) forgetKey(keyID string) {
	var copies []hsm.ObjectHandle
	s.asym.forget(keyID)
	s.mu.Lock()
	for id, v := range s.versions {
		if v.keyID == keyID {
			if v.copy != 0 {
				copies = append(copies, v.copy)
			}
			delete(s.versions, id)
		}
	}
	s.mu.Unlock()
	for _, c := range copies {
		_ = s.tok.DestroySessionObject(context.Background(), c)
	}
}

// forgetOnTokenError drops a key's cached handles after the token refused an
// operation with them, so the next request looks them up again. A request
// that was cancelled or timed out waiting for a session says nothing about
// the handles: forgetting them would make every concurrent request search
// the token (linear in its objects) and copy the key again.
func (s *Service) forgetOnTokenError(keyID string, err error) {
	if _, isCKR := hsm.CodeOf(err); isCKR {
		s.forgetKey(keyID)
	}
}

// isCurrentCopy reports whether c is still the version's registered copy.
// A copy is unregistered before it is destroyed, so a failure with a copy
// that is no longer current may be its destruction.
func (s *Service) isCurrentCopy(id [16]byte, c hsm.ObjectHandle) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.versions[id]
	return ok && v.copy == c
}

// dropCopy forgets a session copy that no longer works.
func (s *Service) dropCopy(id [16]byte, c hsm.ObjectHandle) {
	s.mu.Lock()
	if v, ok := s.versions[id]; ok && v.copy == c {
		v.copy = 0
		s.versions[id] = v
	}
	s.mu.Unlock()
}

// withVersionKey runs op with the fastest handle of a version: its session
// copy (made on first use), falling back to the token object if the copy is
// gone.
func (s *Service) withVersionKey(ctx context.Context, id [16]byte, v versionRef, op func(hsm.ObjectHandle) error) error {
	if v.copy == 0 {
		if c, err := s.tok.CopyToSession(ctx, v.handle); err == nil {
			s.mu.Lock()
			if cur, ok := s.versions[id]; ok && cur.handle == v.handle && cur.copy == 0 {
				cur.copy = c
				s.versions[id] = cur
				v.copy = c
			} else {
				// Another goroutine made one first, or the key was forgotten.
				s.mu.Unlock()
				_ = s.tok.DestroySessionObject(ctx, c)
				s.mu.Lock()
				if cur, ok := s.versions[id]; ok {
					v.copy = cur.copy
				}
			}
			s.mu.Unlock()
		}
	}
	if v.copy != 0 {
		err := op(v.copy)
		if err == nil || !hsm.IsHandleInvalid(err) && s.isCurrentCopy(id, v.copy) {
			return err
		}
		// The copy is gone: the token forgot it, or this process destroyed
		// it while the request used it (a disable, a deletion or a token
		// error forgets the key's copies first, then destroys them).
		// SoftHSM2 answers an operation that meets the destruction with any
		// of CKR_OBJECT_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT,
		// CKR_KEY_FUNCTION_NOT_PERMITTED or CKR_MECHANISM_INVALID. The token
		// object is the same key: the request finishes with it.
		s.dropCopy(id, v.copy)
	}
	err := op(v.handle)
	if err == nil || !hsm.IsHandleInvalid(err) {
		return err
	}
	// The token forgot our handles (all sessions were lost): find the
	// version again and retry once.
	s.forgetKey(v.keyID)
	nv, ferr := s.versionHandle(ctx, id)
	if ferr != nil {
		return err
	}
	return op(nv.handle)
}

// versionHandle finds a version key by its 16-byte ID: from the cache, or
// the token. It returns the owning key id from the object's label.
func (s *Service) versionHandle(ctx context.Context, id [16]byte) (versionRef, error) {
	s.mu.Lock()
	v, ok := s.versions[id]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	// Concurrent requests for one version share one search: a search is
	// linear in the token's objects (~30 ms with 10,000 on SoftHSM2), and
	// sixteen at once would each take ten times as long.
	r, err, _ := s.versionLookups.Do(string(id[:]), func() (any, error) {
		return s.findVersion(context.WithoutCancel(ctx), id)
	})
	if err != nil {
		return versionRef{}, err
	}
	return r.(versionRef), nil
}

// findVersion searches the token for a version key and remembers it.
func (s *Service) findVersion(ctx context.Context, id [16]byte) (versionRef, error) {
	h, err := s.tok.FindSecretKeyByID(ctx, id[:])
	if errors.Is(err, hsm.ErrNotFound) {
		return versionRef{}, errNoVersion
	}
	if err != nil {
		return versionRef{}, Internal("finding the key version", err)
	}
	attrs, err := s.tok.Attributes(ctx, h, hsm.CKA_LABEL)
	if err != nil {
		return versionRef{}, Internal("reading the key version", err)
	}
	parts := strings.Split(string(attrs[hsm.CKA_LABEL]), "/")
	if len(parts) != 3 || parts[0] != "p11kms" || parts[2] != uuid.UUID(id).String() {
		return versionRef{}, errNoVersion
	}
	v := versionRef{keyID: parts[1], handle: h}
	s.rememberVersion(id, v.keyID, h)
	return v, nil
}

var errNoVersion = fmt.Errorf("no such key version")
