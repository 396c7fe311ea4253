package provider

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/p11kms/p11kms/hsm"
)

// keyForAlias resolves the KeyId of an alias request: a key id or ARN, never an alias.
func (s *Service) keyForAlias(ctx context.Context, ref string) (*keyMeta, error) {
	keyID, alias, err := s.parseKeyRef("KeyId", ref)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		return nil, InvalidParam("KeyId", "an alias cannot point to another alias: give a key id or key ARN")
	}
	m, _, err := s.loadKey(ctx, keyID)
	if err != nil {
		return nil, err
	}
	if m.KeyState == StatePendingDeletion {
		return nil, NewError(CodePendingDeletion, "the key %s is pending deletion", m.KeyId)
	}
	return m, nil
}

// CreateAlias creates an alias for a key. An existing alias is refused.
func (s *Service) CreateAlias(ctx context.Context, req *AliasRequest) (*RequestIdResponse, error) {
	if err := checkAliasName("AliasName", req.AliasName); err != nil {
		return nil, err
	}
	m, err := s.keyForAlias(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(aliasMeta{KeyId: m.KeyId, CreationDate: s.now()})
	if _, err := s.tok.CreateData(ctx, appAliases, req.AliasName, b); err != nil {
		if errors.Is(err, hsm.ErrExists) {
			return nil, NewError(CodeAliasExists, "the alias %s already exists", req.AliasName)
		}
		return nil, Internal("writing alias", err)
	}
	return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
}

// UpdateAlias points an existing alias at another key.
func (s *Service) UpdateAlias(ctx context.Context, req *AliasRequest) (*RequestIdResponse, error) {
	if err := checkAliasName("AliasName", req.AliasName); err != nil {
		return nil, err
	}
	m, err := s.keyForAlias(ctx, req.KeyId)
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		var refused error
		nobj, err := s.tok.UpdateData(ctx, appAliases, req.AliasName, func(cur *hsm.DataObject) ([]byte, error) {
			var a aliasMeta
			if err := json.Unmarshal(cur.Value, &a); err != nil {
				refused = Internal("decoding alias", err)
				return nil, refused
			}
			a.KeyId = m.KeyId
			return json.Marshal(a)
		})
		switch {
		case refused != nil:
			return nil, refused
		case errors.Is(err, hsm.ErrConflict):
			backoff(ctx, attempt)
			continue
		case errors.Is(err, hsm.ErrNotFound):
			s.cache.dropAlias(req.AliasName)
			return nil, NewError(CodeAliasNotFound, "the alias %s does not exist", req.AliasName)
		case err != nil:
			s.cache.dropAlias(req.AliasName)
			return nil, Internal("writing alias", err)
		}
		s.cache.putAlias(req.AliasName, m.KeyId, nobj)
		return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
	}
	return nil, NewError(CodeConflict, "the alias %s is being changed concurrently; retry", req.AliasName)
}

// DeleteAlias deletes an alias; the key is untouched.
func (s *Service) DeleteAlias(ctx context.Context, req *DeleteAliasRequest) (*RequestIdResponse, error) {
	if err := checkAliasName("AliasName", req.AliasName); err != nil {
		return nil, err
	}
	s.cache.dropAlias(req.AliasName)
	if err := s.tok.DestroyData(ctx, appAliases, req.AliasName); err != nil {
		if errors.Is(err, hsm.ErrNotFound) {
			return nil, NewError(CodeAliasNotFound, "the alias %s does not exist", req.AliasName)
		}
		return nil, Internal("deleting alias", err)
	}
	return &RequestIdResponse{RequestId: RequestID(ctx)}, nil
}

// allAliases reads every alias, sorted by name.
func (s *Service) allAliases(ctx context.Context) ([]Alias, error) {
	objs, err := s.tok.ListData(ctx, appAliases)
	if err != nil {
		return nil, Internal("listing aliases", err)
	}
	out := make([]Alias, 0, len(objs))
	for _, o := range objs {
		var a aliasMeta
		if json.Unmarshal(o.Value, &a) != nil {
			continue
		}
		out = append(out, Alias{AliasName: o.Label, AliasArn: s.aliasArn(o.Label), KeyId: a.KeyId})
	}
	return out, nil
}

func (s *Service) aliasesOf(ctx context.Context, keyID string) ([]Alias, error) {
	all, err := s.allAliases(ctx)
	if err != nil {
		return nil, err
	}
	var out []Alias
	for _, a := range all {
		if a.KeyId == keyID {
			out = append(out, a)
		}
	}
	return out, nil
}

// KeyAliases returns the names (alias/...) of the aliases that point to a
// key id now, for access policies.
func (s *Service) KeyAliases(ctx context.Context, keyID string) ([]string, error) {
	list, err := s.aliasesOf(ctx, keyID)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.AliasName
	}
	return out, nil
}

// visibleAliases keeps the aliases v allows (all when v is nil).
func visibleAliases(list []Alias, v Visibility) []Alias {
	if v == nil {
		return list
	}
	out := make([]Alias, 0, len(list))
	for _, a := range list {
		if v(a.KeyId, a.AliasName) {
			out = append(out, a)
		}
	}
	return out
}

func (s *Service) aliasPage(ctx context.Context, list []Alias, pg pageSpec) *ListAliasesResponse {
	from, to := pg.bounds(len(list))
	resp := &ListAliasesResponse{TotalCount: len(list), PageNumber: pg.number, PageSize: pg.size, RequestId: RequestID(ctx)}
	resp.Aliases.Alias = append([]Alias{}, list[from:to]...)
	return resp
}

// ListAliases lists every alias, a page at a time.
func (s *Service) ListAliases(ctx context.Context, req *ListAliasesRequest) (*ListAliasesResponse, error) {
	pg, err := parsePage(req.PageNumber, req.PageSize)
	if err != nil {
		return nil, err
	}
	all, err := s.allAliases(ctx)
	if err != nil {
		return nil, err
	}
	return s.aliasPage(ctx, visibleAliases(all, req.Visible), pg), nil
}

// ListAliasesByKeyId lists one key's aliases.
func (s *Service) ListAliasesByKeyId(ctx context.Context, req *ListAliasesByKeyIdRequest) (*ListAliasesResponse, error) {
	pg, err := parsePage(req.PageNumber, req.PageSize)
	if err != nil {
		return nil, err
	}
	m, err := s.resolve(ctx, "KeyId", req.KeyId)
	if err != nil {
		return nil, err
	}
	list, err := s.aliasesOf(ctx, m.KeyId)
	if err != nil {
		return nil, err
	}
	return s.aliasPage(ctx, visibleAliases(list, req.Visible), pg), nil
}
