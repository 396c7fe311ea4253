package seed

import (
	"context"
	"fmt"

	"github.com/p11kms/p11kms/provider"
)

// Result says what Apply did.
type Result struct {
	Created, VersionsAdded, AliasesCreated, StatesChanged int
	// AliasesMoved lists the aliases taken from another key (only with
	// File.MoveAliases).
	AliasesMoved []AliasMove
}

// AliasMove is an alias the seed moved from one key to another.
type AliasMove struct {
	Alias, From, To string
}

// String is "alias/x: key-a → key-b".
func (m AliasMove) String() string { return m.Alias + ": " + m.From + " → " + m.To }

// Apply makes the KMS match the seed: missing keys, versions and aliases
// are created and states set; what already matches is left alone. The
// whole seed is checked first (see the package doc): if any entry is
// invalid, or an alias belongs to another key, nothing is written and the
// error joins one error per problem.
func Apply(ctx context.Context, s *provider.Service, f *File) (*Result, error) {
	res := &Result{}
	plans, err := plan(ctx, s, f)
	if err != nil {
		return res, err
	}
	for i := range plans {
		if err := plans[i].apply(ctx, s, res); err != nil {
			return res, fmt.Errorf("seed: keys[%d] (keyId %s): %w", plans[i].index, plans[i].key.KeyId, err)
		}
	}
	return res, nil
}

// apply carries out one key's plan.
func (p *keyPlan) apply(ctx context.Context, s *provider.Service, res *Result) error {
	k := p.key
	id := &provider.KeyIdRequest{KeyId: k.KeyId}
	if !p.exists {
		if _, err := s.CreateKey(ctx, k.createRequest()); err != nil {
			return err
		}
		res.Created++
	}
	stateChanged, err := p.makeWritable(ctx, s)
	if err != nil {
		return err
	}
	for n := p.versions; n < k.wantVersions(); n++ {
		if _, err := s.CreateKeyVersion(ctx, id); err != nil {
			return err
		}
		res.VersionsAdded++
	}
	for _, a := range p.create {
		if err := p.createAlias(ctx, s, a, res); err != nil {
			return err
		}
	}
	for _, m := range p.move {
		if err := moveAlias(ctx, s, m, res); err != nil {
			return err
		}
	}
	set, err := p.setState(ctx, s)
	if err != nil {
		return err
	}
	if stateChanged || set {
		res.StatesChanged++
	}
	return nil
}

// makeWritable readies the key for the versions and aliases the seed adds:
// a key pending deletion has its deletion cancelled (setState schedules it
// again if the seed asks for PendingDeletion); a disabled key that needs
// versions is enabled (and disabled again by setState).
func (p *keyPlan) makeWritable(ctx context.Context, s *provider.Service) (changed bool, err error) {
	id := &provider.KeyIdRequest{KeyId: p.key.KeyId}
	needVersions := p.versions < p.key.wantVersions()
	adds := needVersions || len(p.create)+len(p.move) > 0
	if p.state == provider.StatePendingDeletion && (adds || p.key.wantState() != provider.StatePendingDeletion) {
		if _, err := s.CancelKeyDeletion(ctx, id); err != nil {
			return false, err
		}
		p.state, changed = provider.StateEnabled, true
	}
	if needVersions && p.state == provider.StateDisabled {
		if _, err := s.EnableKey(ctx, id); err != nil {
			return changed, err
		}
		p.state, changed = provider.StateEnabled, true
	}
	return changed, nil
}

// setState puts the key in the state the seed asks for; makeWritable has
// already cancelled a deletion the seed does not ask for.
func (p *keyPlan) setState(ctx context.Context, s *provider.Service) (changed bool, err error) {
	want := p.key.wantState()
	if p.state == want {
		return false, nil
	}
	id := &provider.KeyIdRequest{KeyId: p.key.KeyId}
	switch want {
	case provider.StateEnabled:
		_, err = s.EnableKey(ctx, id)
	case provider.StateDisabled:
		_, err = s.DisableKey(ctx, id)
	case provider.StatePendingDeletion:
		_, err = s.ScheduleKeyDeletion(ctx, &provider.ScheduleKeyDeletionRequest{KeyId: p.key.KeyId, PendingWindowInDays: p.key.pendingWindow()})
	}
	if err != nil {
		return false, err
	}
	p.state = want
	return true, nil
}

// createAlias creates an alias the check found free. If another process
// created it since, it is left alone when it points here, and otherwise
// refused or moved as the check would have.
func (p *keyPlan) createAlias(ctx context.Context, s *provider.Service, alias string, res *Result) error {
	_, err := s.CreateAlias(ctx, &provider.AliasRequest{AliasName: alias, KeyId: p.key.KeyId})
	if provider.ErrorCode(err) != provider.CodeAliasExists {
		if err == nil {
			res.AliasesCreated++
		}
		return err
	}
	owner, found, oerr := aliasOwner(ctx, s, alias)
	switch {
	case oerr != nil:
		return oerr
	case !found:
		return err // gone again: the AliasExists of CreateAlias
	case owner == p.key.KeyId:
		return nil
	}
	if refused := p.takeAlias(alias, owner); refused != nil {
		return provider.NewError(provider.CodeAliasExists, "%s", refused)
	}
	return moveAlias(ctx, s, p.move[len(p.move)-1], res)
}

// moveAlias points an alias at the seed's key.
func moveAlias(ctx context.Context, s *provider.Service, m AliasMove, res *Result) error {
	if _, err := s.UpdateAlias(ctx, &provider.AliasRequest{AliasName: m.Alias, KeyId: m.To}); err != nil {
		return err
	}
	res.AliasesMoved = append(res.AliasesMoved, m)
	return nil
}
