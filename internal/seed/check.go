package seed

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/p11kms/p11kms/provider"
)

// keyPlan is what Apply is to do to one key, found by reading the KMS only.
type keyPlan struct {
	index    int
	key      *Key
	exists   bool
	state    string      // the key's state now (Enabled for a key to create)
	versions int         // its number of versions now (1 for a key to create)
	create   []string    // aliases to create for it
	move     []AliasMove // aliases to take from other keys (File.MoveAliases)
	moveOK   bool        // File.MoveAliases
}

// plan checks the whole seed against the KMS, writing nothing, and returns
// what Apply is to do. Invalid entries are all reported, joined; a token
// failure ends the check at once.
func plan(ctx context.Context, s *provider.Service, f *File) ([]keyPlan, error) {
	var errs []error
	plans := make([]keyPlan, len(f.Keys))
	for i := range f.Keys {
		p := &plans[i]
		*p = keyPlan{index: i, key: &f.Keys[i], state: provider.StateEnabled, versions: 1, moveOK: f.MoveAliases}
		invalid, idValid, err := p.checkSpec()
		if err != nil {
			return nil, err
		}
		errs = append(errs, invalid...)
		if idValid { // else there is no key to look up
			if err := p.readKey(ctx, s); err != nil {
				return nil, err
			}
		}
		invalid, err = p.checkAliases(ctx, s)
		if err != nil {
			return nil, err
		}
		errs = append(errs, invalid...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return plans, nil
}

// createRequest is the CreateKey request that creates the entry's key.
func (k *Key) createRequest() *provider.CreateKeyRequest {
	req := &provider.CreateKeyRequest{KeyId: k.KeyId, Description: k.Description, KeySpec: k.KeySpec}
	if k.RotationInterval != "" {
		req.EnableAutomaticRotation, req.RotationInterval = true, k.RotationInterval
	}
	return req
}

// checkSpec checks the fields CreateKey takes with provider.ValidateCreateKey
// (which writes nothing), one field at a time so that every invalid field is
// reported. idValid says whether the entry has a valid keyId.
func (p *keyPlan) checkSpec() (invalid []error, idValid bool, err error) {
	k := p.key
	checks := []struct {
		field, value string
		req          provider.CreateKeyRequest
	}{
		{"keyId", k.KeyId, provider.CreateKeyRequest{KeyId: k.KeyId}},
		{"description", k.Description, provider.CreateKeyRequest{Description: k.Description}},
		{"keySpec", k.KeySpec, provider.CreateKeyRequest{KeySpec: k.KeySpec}},
		{"rotationInterval", k.RotationInterval, provider.CreateKeyRequest{EnableAutomaticRotation: true, RotationInterval: k.RotationInterval}},
	}
	for _, c := range checks {
		if c.value == "" {
			continue // a default, or a missing keyId Parse reported
		}
		if cerr := provider.ValidateCreateKey(&c.req); cerr != nil {
			e := provider.AsError(cerr)
			if e.Code != provider.CodeInvalidParameter {
				return nil, false, fmt.Errorf("seed: keys[%d]: checking %s: %w", p.index, c.field, cerr)
			}
			invalid = append(invalid, entryError(e.Code, p.index, k, c.field, "%s", detail(e)))
			continue
		}
		idValid = idValid || c.field == "keyId"
	}
	return invalid, idValid, nil
}

// readKey reads the key's state and versions if it exists.
func (p *keyPlan) readKey(ctx context.Context, s *provider.Service) error {
	id := p.key.KeyId
	d, err := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: id})
	switch provider.ErrorCode(err) {
	case provider.CodeKeyNotFound:
		return nil
	case "":
	default:
		return fmt.Errorf("seed: keys[%d] (keyId %s): %w", p.index, id, err)
	}
	vs, err := s.ListKeyVersions(ctx, &provider.ListKeyVersionsRequest{KeyId: id, PageSize: new(1)})
	if err != nil {
		return fmt.Errorf("seed: keys[%d] (keyId %s): %w", p.index, id, err)
	}
	p.exists, p.state, p.versions = true, d.KeyMetadata.KeyState, vs.TotalCount
	return nil
}

// checkAliases finds which of the entry's aliases are to be created and
// which point to another key: refused, or moved with File.MoveAliases.
func (p *keyPlan) checkAliases(ctx context.Context, s *provider.Service) (invalid []error, err error) {
	for n, a := range p.key.Aliases {
		field := fmt.Sprintf("aliases[%d]", n)
		owner, found, aerr := aliasOwner(ctx, s, a)
		switch e := provider.AsError(aerr); {
		case aerr == nil && !found:
			p.create = append(p.create, a)
		case aerr == nil && owner == p.key.KeyId:
		case aerr == nil:
			if refused := p.takeAlias(a, owner); refused != nil {
				invalid = append(invalid, entryError(provider.CodeAliasExists, p.index, p.key, field, "%s", refused))
			}
		case e.Code == provider.CodeInvalidParameter:
			invalid = append(invalid, entryError(e.Code, p.index, p.key, field, "%s", detail(e)))
		default:
			return nil, fmt.Errorf("seed: keys[%d] (keyId %s): %s %s: %w", p.index, p.key.KeyId, field, a, aerr)
		}
	}
	return invalid, nil
}

// takeAlias plans to move alias from its owner, or says why it is refused.
func (p *keyPlan) takeAlias(alias, owner string) error {
	if p.moveOK {
		p.move = append(p.move, AliasMove{Alias: alias, From: owner, To: p.key.KeyId})
		return nil
	}
	return fmt.Errorf("%s already points to key %s; the seed does not take an alias from another key unless it says moveAliases: true", alias, owner)
}

// aliasOwner returns the id of the key alias points to; found is false if
// the alias does not exist. An alias whose key is gone has the owner
// "(a deleted key)". An invalid alias name is InvalidParameter.
func aliasOwner(ctx context.Context, s *provider.Service, alias string) (owner string, found bool, err error) {
	d, err := s.DescribeKey(ctx, &provider.KeyIdRequest{KeyId: alias})
	switch provider.ErrorCode(err) {
	case "":
		return d.KeyMetadata.KeyId, true, nil
	case provider.CodeAliasNotFound:
		return "", false, nil
	case provider.CodeKeyNotFound:
		return "(a deleted key)", true, nil
	}
	return "", false, err
}

// detail is an InvalidParameter message without the API parameter name it
// starts with: the seed names its own field.
func detail(e *provider.Error) string {
	head, rest, ok := strings.Cut(e.Message, ": ")
	if ok && head != "" && !strings.ContainsAny(head, " \"") {
		return rest
	}
	return e.Message
}
