package provider

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/p11kms/p11kms/hsm"
)

// SweepOptions changes what Sweep repairs.
type SweepOptions struct {
	// RepairOrphans destroys the token objects no metadata names (orphaned
	// key versions and key pairs, wrapping keys of keys that do not exist)
	// at once, instead of once this Service has seen them for OrphanGrace.
	// Only for a sweep run while no CreateKey, CreateKeyVersion or
	// GetParametersForImport is in flight on the token (p11kms kms Sweep
	// --RepairOrphans with serve stopped): an object made by one of those
	// is nameless until its metadata is written.
	RepairOrphans bool
}

// Sweep does the periodic work any node may run: destroys keys whose
// deletion window has passed (their versions, aliases and metadata),
// destroys expired imported key material, rotates keys whose automatic
// rotation is due, and finds (and after OrphanGrace destroys) token
// objects no metadata names.
func (s *Service) Sweep(ctx context.Context) (*SweepResult, error) {
	return s.SweepWith(ctx, SweepOptions{})
}

// SweepWith is Sweep with options.
func (s *Service) SweepWith(ctx context.Context, o SweepOptions) (*SweepResult, error) {
	keys, err := s.listKeys(ctx)
	if err != nil {
		return nil, err
	}
	res := &SweepResult{Deleted: []string{}, Rotated: []string{}, Repaired: []string{}, Missing: []string{}, Orphans: []string{}}
	now := s.now()
	for _, m := range keys {
		switch {
		case m.KeyState == StatePendingDeletion && !now.Before(m.DeleteDate):
			if err := s.destroyKey(ctx, m); err != nil {
				return res, err
			}
			res.Deleted = append(res.Deleted, m.KeyId)
		case s.materialExpired(m):
			if _, err := s.DeleteKeyMaterial(ctx, &KeyIdRequest{KeyId: m.KeyId}); err != nil {
				return res, err
			}
			res.Repaired = append(res.Repaired, "destroyed the expired key material of "+m.KeyId)
		case s.rotationDue(m):
			if _, err := s.rotate(ctx, m, s.rotationDue); err != nil {
				return res, err
			}
			res.Rotated = append(res.Rotated, m.KeyId)
		}
	}
	if err := s.repairOrphans(ctx, keys, res, o.RepairOrphans); err != nil {
		return res, err
	}
	sort.Strings(res.Deleted)
	sort.Strings(res.Rotated)
	sort.Strings(res.Repaired)
	sort.Strings(res.Missing)
	sort.Strings(res.Orphans)
	return res, nil
}

// DefaultOrphanGrace is how long a CMK version object without metadata must
// have been seen before Sweep destroys it: a CreateKey or CreateKeyVersion
// in flight (possibly in another process) makes the object first and the
// metadata right after.
const DefaultOrphanGrace = 10 * time.Minute

// orphanDue notes an object no metadata names (by ref) and reports
// whether it is to be destroyed now: at once with repairNow, else once
// this Service saw it at least the grace period ago.
func (s *Service) orphanDue(ref string, repairNow bool, seen map[string]bool) bool {
	seen[ref] = true
	if repairNow {
		return true
	}
	grace := s.opt.OrphanGrace
	if grace == 0 {
		grace = DefaultOrphanGrace
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	first, ok := s.orphans[ref]
	if !ok {
		s.orphans[ref] = now
	}
	return ok && now.Sub(first) >= grace
}

// forgetOrphans drops the orphans not seen by this sweep: adopted by
// metadata, or gone.
func (s *Service) forgetOrphans(seen map[string]bool) {
	s.mu.Lock()
	for ref := range s.orphans {
		if !seen[ref] {
			delete(s.orphans, ref)
		}
	}
	s.mu.Unlock()
}

// destroyKey removes a key's aliases, version objects and metadata, in that
// order, so an interrupted destruction leaves metadata a later sweep finishes.
func (s *Service) destroyKey(ctx context.Context, m *keyMeta) error {
	aliases, err := s.aliasesOf(ctx, m.KeyId)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		s.cache.dropAlias(a.AliasName)
		if err := s.tok.DestroyData(ctx, appAliases, a.AliasName); err != nil && !errors.Is(err, hsm.ErrNotFound) {
			return Internal("destroying alias", err)
		}
	}
	s.forgetKey(m.KeyId)
	s.cache.dropKey(m.KeyId)
	if m.Origin == OriginExternal {
		s.destroyWrappingKeys(ctx, m.KeyId)
	}
	for _, v := range m.Versions {
		id, err := uuid.Parse(v.KeyVersionId)
		if err != nil {
			continue
		}
		hs, err := s.tok.ObjectsByID(ctx, id[:]) // a secret key, or both halves of a key pair
		if err != nil {
			return Internal("finding key versions", err)
		}
		for _, h := range hs {
			if err := s.tok.DestroyObject(ctx, h); err != nil {
				return Internal("destroying key version", err)
			}
		}
	}
	if err := s.tok.DestroyData(ctx, appKeys, m.KeyId); err != nil && !errors.Is(err, hsm.ErrNotFound) {
		return Internal("destroying key metadata", err)
	}
	return nil
}
